"""CPU time of one training step with the binary convolutions' unreachable taps skipped,
against the same network applying every tap (`zoo.layers.BinaryConv2D`).

    python benchmarks/training_step.py [--models UBNAS-A BinaryDenseNetTiny] [--repeats 10]

A kernel tap that only ever reads zero padding changes neither outputs nor gradients, so
both variants compute the same function; UBNAS-A's dilated 5x5 convolutions on 4x4 maps
have 16 of their 25 taps there. A model without such taps (BinaryDenseNetTiny) is the
control: its ratio should be 1. Steps alternate between the two variants (batch 128,
Adam, in one process) and each figure is the median process CPU time of --repeats steps
after a warm-up. Results: benchmarks/results/training_step.json.
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine, median, save  # noqa: E402
from zoo import layers  # noqa: E402

BATCH = 128


def build(name: str, every_tap: bool):
    """The model compiled for training; `every_tap` builds the convolutions unskipped."""
    every = mock.patch.object(layers, "_reachable_taps", lambda *args: slice(None))
    with every if every_tap else contextlib.nullcontext():
        model = zoo.build_model(name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def skipped_weights(model) -> tuple:
    """(binary kernel weights the model never applies, all binary kernel weights)."""
    convs = [layer for layer in model.layers if isinstance(layer, layers.BinaryConv2D)]
    return (sum(conv.unapplied_weights for conv in convs),
            sum(conv.kernel.shape.num_elements() for conv in convs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["UBNAS-A", "BinaryDenseNetTiny"])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        models = {"skipped": build(name, False), "every_tap": build(name, True)}
        shape = models["skipped"].input_shape[1:]
        rng = np.random.default_rng(0)
        images = rng.standard_normal((BATCH, *shape)).astype(np.float32)
        labels = rng.integers(0, models["skipped"].output_shape[-1], BATCH)
        times = {variant: [] for variant in models}
        for step in range(args.repeats + 1):
            for variant, model in models.items():
                start = time.process_time()
                model.train_on_batch(images, labels)
                if step:  # the first step traces the graph
                    times[variant].append(time.process_time() - start)
        skipped, total = skipped_weights(models["skipped"])
        row = {"model": name, "batch_size": BATCH, "skipped_weights": skipped,
               "binary_kernel_weights": total,
               "cpu_seconds_per_step": {v: median(t) for v, t in times.items()},
               "steps": {v: t for v, t in times.items()}}
        row["speedup"] = row["cpu_seconds_per_step"]["every_tap"] / row["cpu_seconds_per_step"]["skipped"]
        rows.append(row)
        print(f"{name}: {row['cpu_seconds_per_step']['skipped']:.3f} s per step with unreachable "
              f"taps skipped, {row['cpu_seconds_per_step']['every_tap']:.3f} s with every tap: "
              f"{row['speedup']:.2f}x", flush=True)
        tf.keras.backend.clear_session()
    print(f"saved {save('training_step', {'machine': machine(), 'repeats': args.repeats, 'models': rows})}")


if __name__ == "__main__":
    main()
