"""CPU cost per image of one search step (weights + architecture): partial channels and
the batch size they make affordable, against plain binary DARTS.

    python benchmarks/darts_step_cost.py [--channels 16] [--repeats 5]

PC-DARTS sends 1/K of the channels through the mixed operation, which cuts the step's
compute and memory; the memory saved buys a larger batch (PC-DARTS: 256 against DARTS'
64), which on a CPU also spreads each step's fixed overhead over more images. Medians of
--repeats timed steps after a warm-up step, process CPU time, all in one process.
Results: benchmarks/results/darts_step_cost.json.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402,F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine, median, save  # noqa: E402
from search.darts.search import BilevelSearch, DartsConfig  # noqa: E402

SETTINGS = (("plain", 1, 1, 64), ("ours", 4, 2, 64), ("ours", 4, 2, 256), ("plain", 1, 1, 256))


def step_seconds(config: DartsConfig, repeats: int) -> float:
    search = BilevelSearch(config, (28, 28, 1), 10)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((config.batch_size, 28, 28, 1), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 10, config.batch_size))
    times = []
    for _ in range(repeats + 1):  # the first step traces the functions
        start = time.process_time()
        search.weight_step(images, labels)
        search.arch_step(images, labels)
        times.append(time.process_time() - start)
    tf.keras.backend.clear_session()
    return median(times[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--stem-strides", type=int, default=2, choices=(1, 2))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    for name, k_normal, k_reduce, batch in SETTINGS:
        config = DartsConfig(layers_count=args.layers, channels=args.channels,
                             stem_strides=args.stem_strides, k_normal=k_normal,
                             k_reduce=k_reduce, batch_size=batch)
        seconds = step_seconds(config, args.repeats)
        row = {"search": name, "k_normal": k_normal, "k_reduce": k_reduce, "batch": batch,
               "cpu_seconds_per_step": seconds, "cpu_ms_per_image": 1000 * seconds / batch}
        rows.append(row)
        print(f"{name} K={k_normal}/{k_reduce} batch {batch}: {seconds:.2f} CPU s per step, "
              f"{row['cpu_ms_per_image']:.1f} CPU ms per image", flush=True)
    baseline = rows[0]["cpu_ms_per_image"]
    for row in rows:
        row["plain_64_over_this"] = baseline / row["cpu_ms_per_image"]
    print(f"saved {save('darts_step_cost', {'machine': machine(), 'args': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
