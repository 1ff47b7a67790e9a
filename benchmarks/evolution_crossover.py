"""Does crossover help the evolutionary search? Searches with and without it, one supernet.

    python benchmarks/evolution_crossover.py --search-dir runs/evolution-v2 --budget-macs 4e6 \
        --trials 60 --seeds 0

Every search runs under its own --name in --search-dir and shares the supernet trained
there, so all scores come from the same weights and none retrains it. A finished search
is read back, not redone (the mutation-only search of seed 0 is the directory's
`evolution` search). Reported per search: the best supernet score, the mean of the top 5
(less noisy than one maximum), and the best's binary MACs.
Results: benchmarks/results/evolution_crossover.json.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, save  # noqa: E402

TOP = 5


def search_name(crossover: bool, seed: int) -> str:
    return "evolution" + ("-crossover" if crossover else "") + (f"-seed{seed}" if seed else "")


def run_search(args, crossover: bool, seed: int) -> dict:
    name = search_name(crossover, seed)
    command = [sys.executable, "-m", "search", "evolution", "--output-dir", args.search_dir,
               "--name", name, "--budget-macs", str(args.budget_macs),
               "--trials", str(args.trials), "--seed", str(seed),
               *(["--crossover"] if crossover else [])]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    seconds = time.perf_counter() - start
    rows = json.loads((Path(args.search_dir) / f"{name}_trials.json").read_text())
    ranked = sorted(rows, key=lambda r: r["val_accuracy"], reverse=True)
    return {"name": name, "crossover": crossover, "seed": seed, "trials": len(rows),
            "best_val_accuracy": ranked[0]["val_accuracy"],
            f"top{TOP}_mean_val_accuracy": statistics.mean(r["val_accuracy"] for r in ranked[:TOP]),
            "best_binary_macs": ranked[0]["binary_macs"], "best_groups": ranked[0]["groups"],
            "seconds_this_run": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-dir", default="runs/evolution",
                        help="a directory whose supernet is trained (by `python -m search evolution`)")
    parser.add_argument("--budget-macs", type=float, default=4e6)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    if not (Path(args.search_dir) / "supernet.h5").exists():
        sys.exit(f"error: {args.search_dir} has no trained supernet.h5; run "
                 f"`python -m search evolution --output-dir {args.search_dir}` first")
    searches = [run_search(args, crossover, seed)
                for seed in args.seeds for crossover in (False, True)]
    for s in searches:
        print(f"{s['name']:28s} best {100 * s['best_val_accuracy']:.2f}%  top-{TOP} mean "
              f"{100 * s[f'top{TOP}_mean_val_accuracy']:.2f}%  @{s['best_binary_macs'] / 1e6:.2f}M")
    save("evolution_crossover", {"machine": machine(), "budget": {"binary_macs": args.budget_macs},
                                 "trials": args.trials, "top": TOP, "searches": searches})


if __name__ == "__main__":
    main()
