"""Issue targets of the evolutionary search, measured: retrain and compare from scratch.

    python benchmarks/evolution_targets.py --search-dir runs/evolution --epochs 3

Retrains, with one recipe, the best configuration of the evolutionary search, the best
of the same number of random configurations, and the two uniform baselines (all
depthwise, all groups = 1), then reports test top-1 against binary MACs (larq) and the
search's own time. Results: benchmarks/results/evolution_targets.json.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402

from benchmarks.common import machine, save  # noqa: E402
from training import train  # noqa: E402


def retrain(name, groups, form, args):
    out = Path(args.search_dir) / f"retrain-{name}"
    config = {"groups": groups, "form": form}
    argv = ["fashion_mnist", "--model", "BinaryMobileNet-Depthwise", "--epochs", str(args.epochs),
            "--model-config", json.dumps(config), "--output-dir", str(out)]
    if (out / "metrics.json").exists():
        argv.append("--resume")
    summary = train.run(train.parse_args(argv))
    costs = zoo.profile(zoo.build_model("BinaryMobileNet-Depthwise", groups=groups)).as_dict()
    return {"name": name, "groups": groups, "top1": summary["final"]["top1"],
            "binary_macs": costs["binary_macs"], "memory_mb": costs["memory_mb"],
            "train_seconds": summary["wall_time_seconds"], "run_dir": str(out)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-dir", default="runs/evolution")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["evolution", "random", "depthwise", "dense"],
                        help="which of the four to retrain (finished runs are resumed, not redone)")
    args = parser.parse_args(argv)
    search_dir = Path(args.search_dir)
    evolved = json.loads((search_dir / "evolution_best.json").read_text())
    random_best = json.loads((search_dir / "random_best.json").read_text())
    channels = zoo.models.mobilenet.block_channels(0.5)
    candidates = [("evolution", evolved["groups"], "masked"),
                  ("random", random_best["groups"], "masked"),
                  ("depthwise", channels, "masked"),
                  ("dense", [1] * len(channels), "grouped")]  # groups=1: a plain conv
    rows = [retrain(name, groups, form, args) for name, groups, form in candidates
            if name in args.models]
    supernet = json.loads((search_dir / "supernet_time.json").read_text())
    by_name = {r["name"]: r for r in rows}
    ours = by_name["evolution"]
    report = {
        "machine": machine(), "epochs": args.epochs, "models": rows,
        "budget": evolved["budget"],
        "search": {"supernet_seconds": supernet["seconds"], "trials": evolved["trials"],
                   "rejected_over_budget": evolved["rejected_over_budget"]},
        "not_retrained": sorted(set(n for n, _, _ in candidates) - set(by_name)),
        "evolution_beats": {n: ours["top1"] > r["top1"] for n, r in by_name.items() if n != "evolution"},
        "evolution_macs_not_above": {n: ours["binary_macs"] <= r["binary_macs"]
                                     for n, r in by_name.items() if n != "evolution"},
    }
    for r in rows:
        print(f"{r['name']:10s} top-1 {100 * r['top1']:.2f}%  binary MACs {r['binary_macs'] / 1e6:.2f}M")
    print(f"saved {save('evolution_targets', report)}")


if __name__ == "__main__":
    main()
