"""Training step time of each model in float32 and in mixed bfloat16, in one process.

    python benchmarks/training_precision.py [--models ...] [--repeats 10]

`train.py --precision mixed_bfloat16` builds the trained network under Keras'
mixed_bfloat16 policy: float32 variables, bfloat16 compute. Its value depends on the CPU
(AMX or AVX512-BF16 units run it; without them it is slower), so the machine's bfloat16
units are recorded beside the ratios. Batch 128, Adam; steps of the two forms alternate;
each figure is the median of --repeats steps after a warm-up step, in wall-clock time
(what a training run takes on an idle machine) and in process CPU time (the work done).
Results: benchmarks/results/training_precision.json.
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine, median, save  # noqa: E402
from benchmarks.training_step import BATCH, step_seconds  # noqa: E402
from training.train import PRECISIONS, dtype_policy  # noqa: E402

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
SHIPPED_SMALL_MODELS = ["BinaryDenseNetTiny", "BinaryDenseNetSmall", "BinaryDenseNetMedium",
                        "UBNAS-A"]


def bfloat16_units() -> list:
    """The CPU's bfloat16 instruction sets, from /proc/cpuinfo (empty where unknown)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(flag for flag in flags if flag in ("amx_bf16", "avx512_bf16"))


def build(name: str, precision: str, **overrides):
    with dtype_policy(precision):
        model = zoo.build_model(name, **overrides)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=SHIPPED_SMALL_MODELS)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    contexts = {precision: contextlib.nullcontext for precision in PRECISIONS}
    rows = []
    for name in args.models:
        models = {precision: build(name, precision) for precision in PRECISIONS}
        row = {"model": name, "batch_size": BATCH}
        for clock_name, clock in CLOCKS.items():
            times = step_seconds(models, contexts, args.repeats, clock)
            per_step = {p: median(t) for p, t in times.items()}
            speedup = per_step["float32"] / per_step["mixed_bfloat16"]
            row[clock_name] = {"seconds_per_step": per_step, "bfloat16_speedup": speedup,
                               "steps": times}
            print(f"{name}, {clock_name}: float32 {per_step['float32']:.3f} s per step, "
                  f"mixed_bfloat16 {per_step['mixed_bfloat16']:.3f} s ({speedup:.2f}x)", flush=True)
        rows.append(row)
        tf.keras.backend.clear_session()
    result = {"machine": {**machine(), "bfloat16_units": bfloat16_units()},
              "repeats": args.repeats, "models": rows}
    print(f"saved {save('training_precision', result)}")


if __name__ == "__main__":
    main()
