"""Does re-scoring the finalists change a finished search's pick? Measured on saved trials.

    python benchmarks/evolution_finalists.py --trials-dir benchmarks/results/evolution \
        --search-dir runs/evolution-finalists

Trains the supernet in --search-dir with `python -m search evolution`'s defaults (or
loads it), re-scores the top trials of each saved search (`{name}_trials.json`) with
fresh BatchNorm recalibrations as the search's `--finalists` step does, and writes each
re-picked `{name}_best.json` into --search-dir, where benchmarks/evolution_targets.py
retrains it. The trial scores came from an earlier supernet trained the same way, so each
finalist is also scored once with the search's own calibration batches: how far the
retrained supernet reproduces them. Results: benchmarks/results/evolution_finalists.json.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402,F401  (Keras 2 before TensorFlow)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine, save  # noqa: E402
from search.__main__ import parser as search_parser  # noqa: E402
from search.evolution import finalists, plots  # noqa: E402
from search.evolution.run import calibration_draws, prepared_supernet  # noqa: E402
from search.evolution.space import SearchSpace  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-dir", default="benchmarks/results/evolution")
    parser.add_argument("--search-dir", default="runs/evolution-finalists")
    parser.add_argument("--searches", nargs="+", default=["evolution", "random"])
    args = parser.parse_args(argv)
    search_dir = Path(args.search_dir)
    search_dir.mkdir(parents=True, exist_ok=True)
    settings = search_parser().parse_args(["evolution", "--output-dir", str(search_dir)])

    tf.keras.utils.set_random_seed(settings.seed)  # as the search does
    space = SearchSpace(settings.model)
    supernet, (train_x, _), (val_x, val_y) = prepared_supernet(settings, space, search_dir)
    rng = np.random.default_rng(settings.seed)
    [search_draw] = calibration_draws(settings, train_x, rng, 1)  # the trials' own batches
    draws = calibration_draws(settings, train_x, rng, settings.finalist_draws)

    report = {"machine": machine(), "finalists": settings.finalists,
              "draws": settings.finalist_draws, "searches": {}}
    for name in args.searches:
        rows = json.loads((Path(args.trials_dir) / f"{name}_trials.json").read_text())
        saved_best = json.loads((Path(args.trials_dir) / f"{name}_best.json").read_text())
        start = time.perf_counter()
        rescored = finalists.rescore(supernet, finalists.top_trials(rows, settings.finalists),
                                     draws=draws, val_images=val_x, val_labels=val_y,
                                     cache_dir=search_dir / name / "finalists")
        rescore_seconds = time.perf_counter() - start  # what --finalists adds to a search
        for row in rescored:
            supernet.set_groups(row["groups"])
            supernet.recalibrate_batch_norm(search_draw)
            row["reproduced_trial_score"] = supernet.accuracy(val_x, val_y)
        best = plots.write_outputs(search_dir, rows, space, saved_best["budget"], name,
                                   rejected_over_budget=saved_best["rejected_over_budget"],
                                   finalists=rescored)
        spread = [statistics.pstdev(r["rescores"]) for r in rescored]
        report["searches"][name] = {
            "picked_before": saved_best["groups"], "picked_now": best["groups"],
            "pick_changed": saved_best["groups"] != best["groups"],
            "mean_spread_across_draws": statistics.mean(spread),
            "rescore_seconds": rescore_seconds,
            "finalists": [{k: r[k] for k in ("trial_id", "groups", "val_accuracy",
                                              "reproduced_trial_score", "rescores",
                                              "rescore_mean", "binary_macs")} for r in rescored],
        }
        print(f"{name}: pick {'changed' if saved_best['groups'] != best['groups'] else 'kept'} "
              f"(trial {rescored[0]['trial_id']}); mean spread across draws "
              f"{100 * statistics.mean(spread):.2f} points")
    print(f"saved {save('evolution_finalists', report)}")


if __name__ == "__main__":
    main()
