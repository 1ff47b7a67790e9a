"""Which supernet score predicts a configuration's retrained accuracy? Measured on the
configurations already retrained from scratch (benchmarks/results/evolution_targets*.json).

    python benchmarks/evolution_proxies.py --search-dir runs/evolution-3.3M --steps 300

Every configuration retrained at width 0.5 over several seeds is scored twice with the
supernet of --search-dir: BatchNorm recalibration alone (what a trial and a finalist
score) and a --steps fine-tune first (`--finalist-steps`), each the mean over the
search's finalist draws. Reports each proxy's rank correlation with the retrained means,
over all of them and among the picks of the searches at one budget.
--epochs picks the retraining length compared with (2 by default). Results:
benchmarks/results/evolution_proxies.json, with _6epochs for --epochs 6
and _100steps for --steps 100 in its name.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402  (Keras 2 before TensorFlow)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import RESULTS, budget_text, machine, save  # noqa: E402
from search.__main__ import parser as search_parser  # noqa: E402
from search.evolution import finalists  # noqa: E402
from search.evolution.run import (  # noqa: E402
    SUPERNET_WEIGHTS, calibration_draws, fine_tune, prepared_supernet)
from search.evolution.space import SearchSpace  # noqa: E402


def retrained_configurations(width: float = 0.5, min_seeds: int = 2, epochs: int = 2) -> list:
    """Each distinct configuration retrained at `width` for `epochs` over `min_seeds` or more
    seeds, with its mean test top-1 and where it was measured (one retraining length: a
    longer one scores every network higher)."""
    found = {}
    for path in sorted(RESULTS.glob("evolution_targets*.json")):
        result = json.loads(path.read_text())
        if result["epochs"] != epochs:
            continue
        for model in result["models"]:
            if model["width_multiplier"] == width and len(model.get("seeds", [0])) >= min_seeds:
                found.setdefault(tuple(model["groups"]), {
                    "trial_id": f"{path.stem}-{model['name']}", "groups": model["groups"],
                    "retrained_top1": model["top1"], "binary_macs": model["binary_macs"],
                    "budget": budget_text(result["budget"]),
                    "search_pick": _is_search_pick(model)})
    return list(found.values())


def _is_search_pick(model: dict) -> bool:
    """A search's pick, not a uniform baseline (all groups = 1 or all depthwise at its
    width, whatever width it was matched to)."""
    channels = zoo.models.mobilenet.block_channels(model["width_multiplier"])
    return model["groups"] not in ([1] * len(channels), channels)


DEFAULT_STEPS = 300


def _cache_name(proxy: str, steps: int) -> str:
    """Each fine-tune length keeps its own scores: one never overwrites another's."""
    return proxy if proxy == "recalibrated" else f"{proxy}-{steps}steps"


def spearman(a, b) -> float:
    ranks = [np.argsort(np.argsort(x)) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-dir", default="runs/evolution-3.3M",
                        help="a search dir whose supernet.h5 (uniform sampling) scores; "
                             "trained there with the search's defaults if absent")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--epochs", type=int, default=2,
                        help="the retraining length whose results to compare with")
    args = parser.parse_args(argv)
    search_dir = Path(args.search_dir)
    settings = search_parser().parse_args(["evolution", "--output-dir", str(search_dir),
                                           "--finalist-steps", str(args.steps)])
    tf.keras.utils.set_random_seed(settings.seed)
    supernet, (train_x, train_y), (val_x, val_y) = prepared_supernet(
        settings, SearchSpace(settings.model), search_dir)  # loads the supernet if there
    draws = calibration_draws(settings, train_x, np.random.default_rng(settings.seed),
                              settings.finalist_draws)
    rows = retrained_configurations(epochs=args.epochs)
    scored = {}
    for proxy, tuning in (("recalibrated", None),
                          ("fine_tuned", fine_tune(settings, train_x, train_y, args.steps))):
        scored[proxy] = {tuple(r["groups"]): r["rescore_mean"] for r in finalists.rescore(
            supernet, rows, draws=draws, val_images=val_x, val_labels=val_y,
            cache_dir=search_dir / "proxies" / _cache_name(proxy, args.steps),
            fine_tune=tuning)}
    def correlations(subset):
        return {p: spearman([s[tuple(r["groups"])] for r in subset],
                            [r["retrained_top1"] for r in subset]) for p, s in scored.items()}

    # Within a budget is what a search needs: it compares candidates of about one cost.
    budgets = sorted({r["budget"] for r in rows})
    report = {
        "machine": machine(), "supernet": str(search_dir / SUPERNET_WEIGHTS),
        "fine_tune_steps": args.steps, "retrain_epochs": args.epochs,
        "draws": settings.finalist_draws,
        "configurations": [{**{k: r[k] for k in ("trial_id", "groups", "binary_macs",
                                                 "budget", "search_pick",
                                                 "retrained_top1")},
                            **{p: s[tuple(r["groups"])] for p, s in scored.items()}}
                           for r in rows],
        "spearman_with_retrained": correlations(rows),
        "spearman_within_budget": {
            b: correlations([r for r in rows if r["budget"] == b and r["search_pick"]])
            for b in budgets},
    }
    for row in sorted(report["configurations"], key=lambda r: -r["retrained_top1"]):
        print(f"{row['trial_id']:45s} retrained {100 * row['retrained_top1']:.2f}  "
              f"recalibrated {100 * row['recalibrated']:.2f}  "
              f"fine-tuned {100 * row['fine_tuned']:.2f}")
    print(f"rank correlation with the retrained means: {report['spearman_with_retrained']}; "
          f"among one budget's search picks: {report['spearman_within_budget']}")
    name = ("evolution_proxies" + ("" if args.epochs == 2 else f"_{args.epochs}epochs")
            + ("" if args.steps == DEFAULT_STEPS else f"_{args.steps}steps"))
    print(f"saved {save(name, report)}")


if __name__ == "__main__":
    main()
