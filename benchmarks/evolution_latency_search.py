"""Does a search under `--budget-latency-ms` pick networks that are within it when measured?

    python -m search evolution --budget-latency-ms 0.5 --output-dir runs/evolution-latency
    python -m search evolution --strategy random --budget-latency-ms 0.5 \
        --output-dir runs/evolution-latency
    python benchmarks/evolution_latency_search.py --search-dir runs/evolution-latency \
        --compare benchmarks/results/evolution-3.3M

A latency-budgeted search checks candidates against the table's estimate only. This
measures the whole network of each search's pick in LCE (the picks of --search-dir, and
those of --compare, a search under a binary-MAC budget, for what that budget gives at
the same latency), beside its estimate, binary MACs and supernet score. Run it on the
machine, and as quiet, as the table was measured.
Results: benchmarks/results/evolution_latency_search.json.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402,F401
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine, save  # noqa: E402
from search.evolution import latency  # noqa: E402
from search.evolution.space import SearchSpace  # noqa: E402
from training.export import latency_method  # noqa: E402
from training.report import read_json  # noqa: E402

def picks(search_dir: Path) -> list:
    """Each search's `{name}_best.json` in a search directory (evolution, random, and any
    other `--name`), by name."""
    return [(path.name[:-len("_best.json")], read_json(path))
            for path in sorted(search_dir.glob("*_best.json"))]


def in_space(space, best: dict) -> bool:
    """Whether a search's pick is a configuration of `space` (same model, allowed groups)."""
    try:
        space.validate(best["groups"])
    except ValueError:
        return False
    return best["model"] == space.model_name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-dir", type=Path, required=True,
                        help="searched with --budget-latency-ms: holds the latency table")
    parser.add_argument("--compare", type=Path, action="append", default=[],
                        help="another search directory (same space) whose picks to measure")
    args = parser.parse_args(argv)
    table_data = read_json(args.search_dir / latency.TABLE_FILE)
    if table_data is None:
        parser.error(f"{args.search_dir} holds no {latency.TABLE_FILE}: run the search with "
                     "--budget-latency-ms there first")
    table = latency.LatencyTable(table_data)
    space = SearchSpace()
    if table_data["choices"] != space.choices:
        parser.error(f"{args.search_dir}'s table is of another search space than the default")
    threads = table_data["threads"]

    rows = []
    for search_dir in [args.search_dir, *args.compare]:
        for strategy, best in picks(search_dir):
            groups = best["groups"]
            if not in_space(space, best):
                parser.error(f"{search_dir}'s {strategy} pick ({best['model']}, groups {groups}) is "
                             f"not in the default search space of {space.model_name} "
                             f"{space.choices}: compare searches of that space only")
            measured = latency.network_latency_ms(space, groups, threads)
            tf.keras.backend.clear_session()
            rows.append({"search": str(search_dir), "strategy": strategy,
                         "budget": best["budget"], "groups": groups,
                         "supernet_score": best.get("rescore_mean", best["val_accuracy"]),
                         "binary_macs": best["binary_macs"],
                         "estimated_ms": table.estimate_ms(groups), "measured_ms": measured})
            print(f"{search_dir.name} {strategy}: {groups} estimated "
                  f"{rows[-1]['estimated_ms']:.3f} ms, measured {measured:.3f} ms", flush=True)
    report = {"machine": machine(), "host": latency.host(), "threads": threads,
              "table_host": table_data["host"], "latency_method": latency_method(),
              "search_dir": str(args.search_dir), "picks": rows}
    print(f"saved {save('evolution_latency_search', report)}")


if __name__ == "__main__":
    main()
