"""Do grouped binary convolutions help the differentiable search? EBNAS's operations
against the same plus grouped variants (`--operations ... bconv_3x3_g2 bconv_5x5_g2`).

    python benchmarks/darts_operations.py [--seeds 0 1] [--epochs 6] [--train-examples 2048]

Per seed, both searches get the same data, settings (ours: partial channels, early
stopping) and supernet size; each derived genotype is retrained from scratch with one
recipe. Reports retrained accuracy, binary MACs (larq) of the derived network, how many
grouped operations it holds, and CPU seconds. Results: benchmarks/results/darts_operations.json.
"""

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402,F401

from benchmarks.common import machine, save  # noqa: E402
from benchmarks.darts_cost import (  # noqa: E402
    data_and_base_config, search_and_score, search_benchmark_parser)
from zoo.models import ubnas  # noqa: E402

SEARCHES = {"ebnas": ubnas.EBNAS_OPERATIONS,
            "ebnas+grouped": (*ubnas.EBNAS_OPERATIONS, *ubnas.GROUPED_OPERATIONS)}


def main(argv=None):
    parser = search_benchmark_parser(__doc__.splitlines()[0], output="darts_operations",
                                     examples=2048, channels=16, stem_strides=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    train, val, base = data_and_base_config(args)
    runs = []
    for seed in args.seeds:
        for name, operations in SEARCHES.items():
            config = replace(base, seed=seed, operations=operations)
            row = search_and_score(f"{name} seed {seed}", config, train, val,
                                   args.retrain_epochs)
            row["grouped_edges"] = sum(op in ubnas.GROUPED_OPERATIONS for cell in
                                       row["genotype"].values() for op, _ in cell)
            runs.append({"search": name, "seed": seed, **row})
    for name in SEARCHES:
        mine = [r for r in runs if r["search"] == name]
        print(f"{name}: retrained {100 * sum(r['retrained_val_accuracy'] for r in mine) / len(mine):.2f}% "
              f"(mean of {len(mine)}), grouped edges {[r['grouped_edges'] for r in mine]}, "
              f"binary MACs {[round(r['binary_macs'] / 1e6, 2) for r in mine]} M")
    save(args.output, {"machine": machine(), "args": vars(args), "runs": runs})


if __name__ == "__main__":
    main()
