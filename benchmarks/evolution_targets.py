"""Issue targets of the evolutionary search, measured: retrain and compare from scratch.

    python benchmarks/evolution_targets.py --search-dir runs/evolution --epochs 3

Retrains, with one recipe, the best configuration of the evolutionary search, the best
of the same number of random configurations, and the two uniform baselines (all
depthwise, all groups = 1), then reports test top-1 against binary MACs (larq) and the
search's own time. With --seeds each is retrained once per seed and the means compared:
one 2-epoch run differs from the next by about as much as the top configurations do.
With --match-macs the uniform baselines are also retrained at the widest width
multiplier (a multiple of 1/32) whose binary MACs do not exceed the evolved network's;
with --equal-macs [KIND] at the narrowest multiple of 1/256 whose binary MACs reach it,
so that the evolved network is at equal or lower cost (the issue's target). With
--match-latency they are retrained at the widest width whose whole network, measured in
LCE, is within the evolved search's latency budget (a search with --budget-latency-ms;
measure on a quiet machine). --evolution and --random name the searches to compare (their
`--name` in `python -m search`, e.g. a random search under another budget, or one with
`--floor-macs` at the evolved network's binary MACs: the best random configuration at
equal or higher cost). --repeat N
retrains the same networks in new runs (the retraining-noise table of
docs/benchmarks.md). --reuse REPORT takes the networks an earlier report retrained with
the same recipe from it rather than training them again (its rows say so), and trains
only the seeds it lacks: `--seeds 0 1 2 3 4 5 --reuse R` adds three seeds to R's three.
Results: benchmarks/results/evolution_targets.json.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402

from benchmarks.common import load, machine, result_name, save  # noqa: E402
from search.evolution import latency  # noqa: E402
from search.evolution.space import SearchSpace  # noqa: E402
from training import train  # noqa: E402
from training.report import read_json, write_json  # noqa: E402


def retrain(name, groups, form, args, width, run_name=None, seeds=None):
    """Train the network once per seed (data order and initialisation; default: --seeds);
    its score is the mean. Runs are kept under `run_name` (default: name), so that a rerun
    resumes them; --repeat N keeps them apart from the first runs, to train the same
    networks again, and --deterministic from runs that trained without op determinism."""
    config = {"groups": groups, "form": form, "width_multiplier": width}
    scores, seconds, run_dirs = [], 0.0, []
    seeds = list(args.seeds if seeds is None else seeds)
    run_name = ((run_name or name) + ("-deterministic" if args.deterministic else "")
                + (f"-repeat{args.repeat}" if args.repeat else ""))
    for seed in seeds:
        out = Path(args.search_dir) / (f"retrain-{run_name}" if seed == 0
                                       else f"retrain-{run_name}-seed{seed}")
        argv = ["fashion_mnist", "--model", "BinaryMobileNet-Depthwise", "--epochs", str(args.epochs),
                "--model-config", json.dumps(config), "--seed", str(seed), "--output-dir", str(out)]
        if args.deterministic:
            argv.append("--deterministic")
        if (out / "metrics.json").exists():
            argv.append("--resume")
        summary = train.run(train.parse_args(argv))
        scores.append(summary["final"]["top1"])
        seconds += summary["wall_time_seconds"]
        run_dirs.append(str(out))
    costs = binary_costs(groups, width)
    return {"name": name, "groups": groups, "width_multiplier": width,
            "top1": sum(scores) / len(scores), "top1_per_seed": scores, "seeds": seeds,
            "binary_macs": costs["binary_macs"], "memory_mb": costs["memory_mb"],
            "train_seconds": seconds, "run_dirs": run_dirs}


def reusable_rows(report_name: str, args) -> dict:
    """The rows of an earlier report with this run's recipe whose seeds are all among this
    run's, by (groups, width): the networks it measured need not be trained again, only its
    missing seeds (a row with a seed this run does not ask for is not split)."""
    report = load(report_name)
    if report is None:
        raise SystemExit(f"--reuse {report_name}: no benchmarks/results/{report_name}.json")
    if (report["epochs"], report.get("deterministic", False)) != (args.epochs, args.deterministic):
        raise SystemExit(f"--reuse {report_name}: it retrained {report['epochs']} epochs "
                         f"(deterministic: {report.get('deterministic', False)}), this run "
                         f"{args.epochs} (deterministic: {args.deterministic}); reuse a report "
                         "with this recipe")
    return {(tuple(r["groups"]), r["width_multiplier"]):
            {**r, "reused_from": r.get("reused_from", report_name), "reused_seeds": r["seeds"]}
            for r in report["models"] if set(r["seeds"]) <= set(args.seeds)}


def with_more_seeds(earlier: dict, new: dict, seeds: list) -> dict:
    """One row from an earlier report's seeds and the ones trained now, in --seeds order."""
    by_seed = {}
    for row in (earlier, new):
        for seed, top1, run_dir in zip(row["seeds"], row["top1_per_seed"], row["run_dirs"]):
            by_seed[seed] = (top1, run_dir)
    scores = [by_seed[s][0] for s in seeds]
    return {**earlier, "top1": sum(scores) / len(scores), "top1_per_seed": scores,
            "seeds": list(seeds), "run_dirs": [by_seed[s][1] for s in seeds],
            "train_seconds": earlier["train_seconds"] + new["train_seconds"]}


def binary_costs(groups, width) -> dict:
    """The search's own cost count (larq), for the network at this width."""
    return SearchSpace(width_multiplier=width).costs(groups)


UNIFORM_KINDS = ("depthwise", "dense")


def uniform_groups(kind: str, width: float) -> list:
    channels = zoo.models.mobilenet.block_channels(width)
    return channels if kind == "depthwise" else [1] * len(channels)


def uniform_macs(kind: str, width: float) -> float:
    """Binary MACs of the uniform network at this width: grows with width, so the two
    searches below bisect (each cost profiles a network; a scan of every width held ~12 GB)."""
    return binary_costs(uniform_groups(kind, width), width)["binary_macs"]


def widest_within(kind: str, binary_macs: float) -> float:
    """The widest multiple of 1/32 at which the uniform network costs at most binary_macs."""
    low, high = 2, 64
    if uniform_macs(kind, low / 32) > binary_macs:
        raise SystemExit(f"no width of the {kind} network fits {binary_macs:,.0f} binary MACs")
    while low < high:
        k = (low + high + 1) // 2
        low, high = (k, high) if uniform_macs(kind, k / 32) <= binary_macs else (low, k - 1)
    return low / 32


def narrowest_reaching(kind: str, binary_macs: float) -> float:
    """The narrowest multiple of 1/256 at which the uniform network costs at least
    binary_macs: the evolved network is then at equal or lower cost than the baseline, and
    the baseline at most one step of width above it."""
    low, high = 8, 512
    if uniform_macs(kind, high / 256) < binary_macs:
        raise SystemExit(f"no width of the {kind} network reaches {binary_macs:,.0f} binary MACs")
    while low < high:
        k = (low + high) // 2
        low, high = (low, k) if uniform_macs(kind, k / 256) >= binary_macs else (k + 1, high)
    return low / 256


def widest_within_latency(kind: str, latency_ms: float, threads: int, search_dir: Path) -> tuple:
    """The widest multiple of 1/32 at which the uniform network measures at most latency_ms
    in LCE, and its measured latency. Bisection: latency grows with width. Measured once
    per search directory (like its latency table) and reused, as a rerun may share the
    machine with training."""
    path = search_dir / "uniform_latency_widths.json"
    known = read_json(path, {})
    key = f"{kind} {latency_ms} ms {threads} thread(s)"
    if key in known:
        return tuple(known[key])

    def measure(k):
        space = SearchSpace(width_multiplier=k / 32)
        ms = latency.network_latency_ms(space, uniform_groups(kind, k / 32), threads)
        print(f"{kind} width {k}/32: {ms:.3f} ms", flush=True)
        return ms

    low, high, fitting = 2, 64, None
    while low <= high:
        k = (low + high) // 2
        ms = measure(k)
        if ms <= latency_ms:
            fitting, low = (k / 32, ms), k + 1
        else:
            high = k - 1
    if fitting is None:
        raise SystemExit(f"no width of the {kind} network measures within {latency_ms} ms")
    write_json(path, {**known, key: fitting})
    return fitting


def searched_width(best: dict) -> float:
    """The width multiplier a search ran at (`{strategy}_best.json`; one from before it was
    recorded ran at its model's registered width)."""
    return best.get("width_multiplier",
                    zoo.get_record(best["model"]).config["width_multiplier"])


def picked_by(best: dict) -> str:
    """How the search chose its pick (`{strategy}_best.json`), for the report's heading."""
    trial_steps = best.get("trial_fine_tune_steps", 0)
    scored = f"trials fine-tuned {trial_steps} steps; " if trial_steps else ""
    if "finalists" not in best:
        return scored + "top trial score"
    steps = best.get("finalist_fine_tune_steps", 0)
    return scored + (f"finalists fine-tuned {steps} steps, then re-scored" if steps
                     else "re-scored finalists")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-dir", default="runs/evolution")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="retrain every model once per seed and compare the means")
    parser.add_argument("--models", nargs="+", default=["evolution", "random", "depthwise", "dense"],
                        help="which of the four to retrain (finished runs are resumed, not redone)")
    parser.add_argument("--match-macs", action="store_true",
                        help="also retrain both uniform baselines at the widest width within "
                             "the evolved network's binary MACs")
    parser.add_argument("--equal-macs", nargs="*", choices=UNIFORM_KINDS, metavar="KIND",
                        help="also retrain these uniform baselines (default: both, "
                             f"{' and '.join(UNIFORM_KINDS)}) at the narrowest width whose "
                             "binary MACs reach the evolved network's")
    parser.add_argument("--match-latency", action="store_true",
                        help="also retrain both uniform baselines at the widest width within "
                             "the evolved search's latency budget, measured in LCE")
    for strategy in ("evolution", "random"):
        parser.add_argument(f"--{strategy}", default=strategy,
                            help=f"the {strategy} search to compare (its --name): its "
                                 f"{{name}}_best.json in --search-dir (default: {strategy})")
    parser.add_argument("--random-own-supernet", action="store_true",
                        help="the random search scored its candidates on a supernet of its "
                             "own (same recipe, e.g. retrained in a new --output-dir): the "
                             "report says so")
    parser.add_argument("--repeat", type=int, default=0, metavar="N",
                        help="retrain in new runs (suffix -repeatN) rather than resume the "
                             "first: the gap to the first runs is the retraining noise")
    parser.add_argument("--deterministic", action="store_true",
                        help="retrain with train.py --deterministic, so that a seed trains "
                             "one network (runs of their own: suffix -deterministic)")
    parser.add_argument("--reuse", type=result_name, metavar="REPORT",
                        help="take networks that this earlier report (benchmarks/results/"
                             "REPORT.json) retrained with the same recipe from it; train "
                             "only the seeds it lacks")
    parser.add_argument("--result", default="evolution_targets", type=result_name,
                        help="name of the JSON in benchmarks/results (one per comparison)")
    args = parser.parse_args(argv)
    if args.reuse and args.repeat:
        parser.error("--repeat trains the networks again; it cannot --reuse a report's runs")
    search_dir = Path(args.search_dir)
    evolved = json.loads((search_dir / f"{args.evolution}_best.json").read_text())
    random_best = json.loads((search_dir / f"{args.random}_best.json").read_text())
    # Measure before any training: latency needs a quiet machine.
    latency_matched = []
    if args.match_latency:
        if "latency_ms" not in evolved["budget"]:
            parser.error(f"{search_dir}'s evolution searched without --budget-latency-ms")
        threads = read_json(search_dir / latency.TABLE_FILE)["threads"]
        for kind in UNIFORM_KINDS:
            width, ms = widest_within_latency(kind, evolved["budget"]["latency_ms"], threads,
                                              search_dir)
            latency_matched.append((kind, width, ms))
    # (groups, width) -> its row: a network asked for twice is trained once (a width
    # matched both ways, a configuration both searches picked, one an earlier report has)
    trained = reusable_rows(args.reuse, args) if args.reuse else {}

    def retrain_once(name, groups, form, width, run_name=None):
        key = (tuple(groups), width)
        earlier = trained.get(key)
        if earlier is None:
            trained[key] = retrain(name, groups, form, args, width, run_name)
        elif missing := [s for s in args.seeds if s not in earlier["seeds"]]:
            new = retrain(name, groups, form, args, width, run_name, seeds=missing)
            trained[key] = with_more_seeds(earlier, new, args.seeds)
        return {**trained[key], "name": name}

    def retrain_uniform(name, kind, width):
        """One uniform network's runs per width, whatever it is matched to (and kept by its
        width: a comparison at another budget must not resume them)."""
        form = "masked" if kind == "depthwise" else "grouped"  # groups=1: a plain conv
        return retrain_once(name, uniform_groups(kind, width), form, width,
                            run_name=f"{kind}-width{width:g}")

    searched = {"evolution": (args.evolution, evolved), "random": (args.random, random_best)}
    rows = [retrain_once(name, best["groups"], "masked", searched_width(best))
            for role, (name, best) in searched.items() if role in args.models]
    evolved_width = searched_width(evolved)
    rows += [retrain_uniform(kind, kind, evolved_width) for kind in UNIFORM_KINDS
             if kind in args.models]
    for kind, width, ms in latency_matched:
        rows.append({**retrain_uniform(f"{kind}-latency-matched", kind, width), "measured_ms": ms})
    if args.match_macs or args.equal_macs is not None:
        evolved_macs = binary_costs(evolved["groups"], evolved_width)["binary_macs"]
    if args.match_macs:
        for kind in UNIFORM_KINDS:
            rows.append(retrain_uniform(f"{kind}-matched", kind, widest_within(kind, evolved_macs)))
    if args.equal_macs is not None:
        for kind in args.equal_macs or UNIFORM_KINDS:
            rows.append(retrain_uniform(f"{kind}-equal", kind, narrowest_reaching(kind, evolved_macs)))
    supernet = json.loads((search_dir / "supernet_time.json").read_text())
    supernet_settings = search_dir / "supernet.json"  # absent: a search before budget sampling
    sampling = (json.loads(supernet_settings.read_text())["sampling"]
                if supernet_settings.exists() else "uniform")
    by_name = {r["name"]: r for r in rows}
    ours = by_name[args.evolution]
    report = {
        "machine": machine(), "epochs": args.epochs, "deterministic": args.deterministic,
        "models": rows,
        "budget": evolved["budget"],
        "picked_by": picked_by(evolved),
        "random_search": {"name": args.random, "budget": random_best["budget"],
                          "binary_macs": random_best["binary_macs"],
                          **({"floor": random_best["floor"]} if "floor" in random_best else {}),
                          **({"own_supernet": True} if args.random_own_supernet else {})},
        "search": {"supernet_seconds": supernet["seconds"], "supernet_sampling": sampling,
                   "trials": evolved["trials"],
                   "rejected_over_budget": evolved["rejected_over_budget"]},
        "not_retrained": sorted({"depthwise", "dense", args.evolution, args.random} - set(by_name)),
        "evolution_beats": {n: ours["top1"] > r["top1"] for n, r in by_name.items() if n != args.evolution},
        "evolution_macs_not_above": {n: ours["binary_macs"] <= r["binary_macs"]
                                     for n, r in by_name.items() if n != args.evolution},
    }
    for r in rows:
        per_seed = ", ".join(f"{100 * t:.2f}" for t in r["top1_per_seed"])
        print(f"{r['name']:17s} width {r['width_multiplier']:.4g}  top-1 {100 * r['top1']:.2f}% "
              f"({per_seed})  "
              f"binary MACs {r['binary_macs'] / 1e6:.2f}M")
    print(f"saved {save(args.result, report)}")


if __name__ == "__main__":
    main()
