"""CPU time of one training step (UBNAS-A, and a control) with each of
`zoo.layers.BinaryConv2D`'s two savings taken away, in one process.

    python benchmarks/training_step.py [--models UBNAS-A BinaryDenseNetTiny] [--repeats 10]

All variants compute the same function and gradients (tests/test_layers.py):
- `ours`: kernel taps that only ever read zero padding are skipped, and training steps
  pad with zeros directly.
- `lce_form_in_training`: training steps also trace the +1-padded form with its
  correction, which inference needs so that LCE computes zero padding exactly.
- `every_tap`: that form, and every kernel tap applied (the layer before both savings).
A model without such layers (BinaryDenseNetTiny) is the control: its ratios should be 1.
Steps alternate between the variants (batch 128, Adam); each figure is the median process
CPU time of --repeats steps after a warm-up. Results: benchmarks/results/training_step.json.
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
_call = layers.BinaryConv2D.call


def _lce_form_call(self, inputs, training=None):
    return _call(self, inputs, training=None)


def _lce_form_in_training():
    return mock.patch.object(layers.BinaryConv2D, "call", _lce_form_call)


@contextlib.contextmanager
def _every_tap():
    with _lce_form_in_training(), \
            mock.patch.object(layers, "_reachable_taps", lambda *args: slice(None)):
        yield


# Each variant's patches hold while it is built and while it steps (the first step traces).
VARIANTS = {"ours": contextlib.nullcontext, "lce_form_in_training": _lce_form_in_training,
            "every_tap": _every_tap}


def build(name: str, variant: str):
    with VARIANTS[variant]():
        model = zoo.build_model(name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def step_seconds(models: dict, contexts: dict, repeats: int, clock=time.process_time) -> dict:
    """Seconds (process CPU time unless `clock` says otherwise) of `repeats` training steps
    of each model on one random batch, the models taking turns (each step inside its
    context) so that drifts of the machine reach all of them alike. The first step of each
    traces the graph and is not counted."""
    first = next(iter(models.values()))
    rng = np.random.default_rng(0)
    images = rng.standard_normal((BATCH, *first.input_shape[1:])).astype(np.float32)
    labels = rng.integers(0, first.output_shape[-1], BATCH)
    times = {variant: [] for variant in models}
    for step in range(repeats + 1):
        for variant, model in models.items():
            with contexts[variant]():
                start = clock()
                model.train_on_batch(images, labels)
                if step:
                    times[variant].append(clock() - start)
    return times


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
        models = {variant: build(name, variant) for variant in VARIANTS}
        times = step_seconds(models, VARIANTS, args.repeats)
        skipped, total = skipped_weights(models["ours"])
        per_step = {v: median(t) for v, t in times.items()}
        row = {"model": name, "batch_size": BATCH, "skipped_weights": skipped,
               "binary_kernel_weights": total, "cpu_seconds_per_step": per_step,
               "speedup": {v: per_step[v] / per_step["ours"] for v in per_step if v != "ours"},
               "steps": times}
        rows.append(row)
        print(f"{name}: {per_step['ours']:.3f} s per step; " + ", ".join(
            f"{v} {per_step[v]:.3f} s ({x:.2f}x)" for v, x in row["speedup"].items()), flush=True)
        tf.keras.backend.clear_session()
    print(f"saved {save('training_step', {'machine': machine(), 'repeats': args.repeats, 'models': rows})}")


if __name__ == "__main__":
    main()
