"""Training-step time of one UBNAS genotype in other shapes (cells, channels, stem stride),
in one process: which shape buys the most capacity for a 90-minute training budget.

    python benchmarks/ubnas_shapes.py [--model UBNAS-B-PReLU] [--repeats 5]

Steps run in mixed bfloat16, as the shipped UBNAS recipes train, batch 128, the shapes
taking turns (`benchmarks.training_step.step_seconds`); each figure is the median wall
time of --repeats steps. Ratios are against the registered shape; minutes per epoch
assume Fashion-MNIST's 469 steps. Results: benchmarks/results/ubnas_shapes.json.
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402

from benchmarks.common import machine, median, save  # noqa: E402
from benchmarks.training_precision import build  # noqa: E402
from benchmarks.training_step import BATCH, step_seconds  # noqa: E402
from zoo.profile import profile  # noqa: E402

STEPS_PER_EPOCH = 469
# name: overrides of the registered configuration
SHAPES = {
    "registered": {},
    "5 cells, 24 channels": {"layers_count": 5, "channels": 24},
    "5 cells, 32 channels": {"layers_count": 5, "channels": 32},
    "5 cells, 48 channels": {"layers_count": 5, "channels": 48},
    "6 cells, 24 channels": {"layers_count": 6, "channels": 24},
    "stem stride 1": {"stem_strides": 1},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="UBNAS-B-PReLU")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    models = {shape: build(args.model, "mixed_bfloat16", **overrides)
              for shape, overrides in SHAPES.items()}
    times = step_seconds(models, {shape: contextlib.nullcontext for shape in models},
                         args.repeats, time.perf_counter)
    base = median(times["registered"])
    rows = []
    for shape, overrides in SHAPES.items():
        seconds = median(times[shape])
        costs = profile(zoo.build_model(args.model, **overrides))  # float32, as larq counts
        rows.append({"shape": shape, "overrides": overrides, "seconds_per_step": seconds,
                     "ratio": seconds / base, "minutes_per_epoch": seconds * STEPS_PER_EPOCH / 60,
                     "params": costs.params, "binary_macs": costs.binary_macs,
                     "memory_mb": costs.memory_mb, "steps": times[shape]})
        print(f"{shape}: {seconds:.3f} s per step ({seconds / base:.2f}x), "
              f"{costs.params:,} parameters, {costs.binary_macs / 1e6:.1f} M binary MACs", flush=True)
    print(f"saved {save('ubnas_shapes', {'machine': machine(), 'model': args.model, 'batch_size': BATCH, 'repeats': args.repeats, 'shapes': rows})}")


if __name__ == "__main__":
    main()
