"""How close is the evolutionary search's latency table to whole networks measured in LCE?

    python benchmarks/evolution_latency.py [--configurations 12]

`--budget-latency-ms` estimates a configuration's LCE latency from a per-block table
(`search.evolution.latency`) instead of converting and timing each candidate. This
measures the table, then the whole network of random configurations of the search
space (plus its two ends, all groups at their first and at their last choice), and
reports the estimate's error over the random ones, its rank correlation with the
measurement, and what each costs in time; and the same for the table scaled to be exact
at both ends (one more whole network measured). Run it on a quiet machine: other load
adds to every latency.
Results: benchmarks/results/evolution_latency.json.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402,F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine, save  # noqa: E402
from benchmarks.evolution_proxies import spearman  # noqa: E402
from search.evolution import latency  # noqa: E402
from search.evolution.space import SearchSpace  # noqa: E402
from training.export import latency_method  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    space = SearchSpace()
    start = time.perf_counter()
    table = latency.LatencyTable(latency.measure_table(space, args.threads))
    table_seconds = time.perf_counter() - start

    rng = np.random.default_rng(args.seed)
    configurations = [[c[0] for c in space.choices], [c[-1] for c in space.choices]] + [
        [int(rng.choice(c)) for c in space.choices] for _ in range(args.configurations)]
    rows, network_seconds = [], []
    for groups in configurations:
        start = time.perf_counter()
        measured = latency.network_latency_ms(space, groups, args.threads)
        network_seconds.append(time.perf_counter() - start)
        tf.keras.backend.clear_session()
        estimated = table.estimate_ms(groups)
        rows.append({"groups": groups, "measured_ms": measured, "estimated_ms": estimated,
                     "error_percent": 100 * (estimated - measured) / measured,
                     "binary_macs": space.costs(groups)["binary_macs"]})
        print(f"{groups}: measured {measured:.3f} ms, estimated {estimated:.3f} ms "
              f"({rows[-1]['error_percent']:+.1f}%)", flush=True)
    # The same table scaled so that it is exact at both ends: does one more whole-network
    # measurement (the far end) correct what timing convolutions alone misses?
    base, far = rows[0], rows[1]
    span = far["estimated_ms"] - base["estimated_ms"]
    scale = (far["measured_ms"] - base["estimated_ms"]) / span
    for r in rows:
        r["scaled_ms"] = base["estimated_ms"] + scale * (r["estimated_ms"] - base["estimated_ms"])
        r["scaled_error_percent"] = 100 * (r["scaled_ms"] - r["measured_ms"]) / r["measured_ms"]
    random_rows = rows[2:]  # the ends are exact by construction for the scaled table
    errors = [abs(r["error_percent"]) for r in random_rows]
    scaled_errors = [abs(r["scaled_error_percent"]) for r in random_rows]
    measured = [r["measured_ms"] for r in random_rows]
    report = {
        "machine": machine(), "host": latency.host(), "threads": args.threads,
        "model": space.model_name, "choices": space.choices,
        "latency_method": latency_method(),
        "table_seconds": table_seconds, "table_entries": sum(map(len, space.choices)),
        "network_seconds_median": float(np.median(network_seconds)),
        "mean_abs_error_percent": float(np.mean(errors)),
        "max_abs_error_percent": float(np.max(errors)),
        "scale_at_far_end": scale,
        "scaled_mean_abs_error_percent": float(np.mean(scaled_errors)),
        "scaled_max_abs_error_percent": float(np.max(scaled_errors)),
        "spearman_estimated_measured": spearman([r["estimated_ms"] for r in random_rows], measured),
        "spearman_binary_macs_measured": spearman([r["binary_macs"] for r in random_rows],
                                                  measured),
        "configurations": rows, "table": table.table,
    }
    print(f"table: {report['table_entries']} entries in {table_seconds:.0f} s; one whole "
          f"network {report['network_seconds_median']:.1f} s. Estimate error: mean "
          f"{report['mean_abs_error_percent']:.1f}%, max {report['max_abs_error_percent']:.1f}% "
          f"(scaled to the far end: {report['scaled_mean_abs_error_percent']:.1f}%, "
          f"{report['scaled_max_abs_error_percent']:.1f}%); "
          f"rank correlation with the measurement {report['spearman_estimated_measured']:.2f} "
          f"(binary MACs: {report['spearman_binary_macs_measured']:.2f})")
    print(f"saved {save('evolution_latency', report)}")


if __name__ == "__main__":
    main()
