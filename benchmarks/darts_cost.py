"""Search cost of UBNAS settings against plain binary DARTS, side by side.

    python benchmarks/darts_cost.py [--epochs 6] [--train-examples 1024] [--channels 16]

Both searches get the same data, epochs budget and supernet size: ours with partial
channels (K=4 normal, K=2 reduce) and early stopping, plain DARTS with K=1 and no early
stopping. Reports CPU seconds of each search (process time, so the ratio holds on a
loaded machine), and the accuracy of each derived genotype retrained from scratch with
one recipe. Results: benchmarks/results/darts_cost.json.
"""

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine, save  # noqa: E402
from zoo.models import ubnas  # noqa: E402
from search.darts.search import BilevelSearch, DartsConfig  # noqa: E402
from search.darts.tuner import score_genotype  # noqa: E402
from search.data import train_val_arrays  # noqa: E402


def search_and_score(name, config: DartsConfig, train, val, retrain_epochs) -> dict:
    """One search in a scratch folder, then its genotype retrained from scratch: CPU
    seconds, epochs, stop reason, genotype, retrained accuracy, binary MACs (larq)."""
    tf.keras.utils.set_random_seed(config.seed)  # the supernet's weights too
    with tempfile.TemporaryDirectory() as tmp:
        result = BilevelSearch(config, train[0].shape[1:], 10).run(
            train, val, Path(tmp), log=lambda m: print(f"[{name}] {m}", flush=True))
    accuracy = score_genotype(result["genotype"], train, val, epochs=retrain_epochs,
                              config=config)
    derived = ubnas.ubnas(input_shape=train[0].shape[1:], num_classes=10, include_top=True,
                          name="derived", genotype=result["genotype"],
                          layers_count=config.layers_count, channels=config.channels,
                          stem_strides=config.stem_strides)
    print(f"{name}: {result['cpu_seconds']:.0f} CPU s over {len(result['epochs'])} epochs, "
          f"retrained genotype {100 * accuracy:.2f}%", flush=True)
    return {"cpu_seconds": result["cpu_seconds"], "epochs_run": len(result["epochs"]),
            "stopped": result["stopped"], "genotype": result["genotype"],
            "retrained_val_accuracy": accuracy, "binary_macs": zoo.profile(derived).binary_macs}


def search_benchmark_parser(description, *, output, examples, channels, stem_strides):
    """The options every search-against-search benchmark shares: data, supernet size,
    epochs budget, retraining, results file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-examples", type=int, default=examples)
    parser.add_argument("--val-examples", type=int, default=examples)
    parser.add_argument("--retrain-epochs", type=int, default=3)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--channels", type=int, default=channels)
    parser.add_argument("--stem-strides", type=int, default=stem_strides, choices=(1, 2))
    parser.add_argument("--output", default=output, help="results file name")
    return parser


def data_and_base_config(args):
    """Fashion-MNIST train/validation arrays and our search settings at the given size."""
    train, val = train_val_arrays("fashion_mnist", train_examples=args.train_examples,
                                  val_examples=args.val_examples)
    base = DartsConfig(epochs=args.epochs, warmup_epochs=1, layers_count=args.layers,
                       channels=args.channels, stem_strides=args.stem_strides)
    return train, val, base


def main(argv=None):
    args = search_benchmark_parser(__doc__.splitlines()[0], output="darts_cost", examples=1024,
                                   channels=8, stem_strides=1).parse_args(argv)
    train, val, base = data_and_base_config(args)
    settings = {
        "ours": base,
        "plain": replace(base, k_normal=1, k_reduce=1, max_parameter_free=None, patience=None),
    }
    rows = {name: search_and_score(name, config, train, val, args.retrain_epochs)
            for name, config in settings.items()}
    ratio = rows["plain"]["cpu_seconds"] / rows["ours"]["cpu_seconds"]
    gap = 100 * (rows["ours"]["retrained_val_accuracy"] - rows["plain"]["retrained_val_accuracy"])
    print(f"plain / ours CPU time = {ratio:.2f}x; ours - plain accuracy = {gap:+.2f} points")
    save(args.output, {"machine": machine(), "args": vars(args), "runs": rows,
                        "cost_ratio_plain_over_ours": ratio, "accuracy_gap_points": gap})


if __name__ == "__main__":
    main()
