"""Re-score the search's best candidates before one is picked.

A trial is scored once: BatchNorm statistics from one draw of training batches, then
validation accuracy. The best candidates of a search differ by about as much as that one
draw moves a score, so the single highest trial is partly luck. The finalists (the top
trials by their trial score) are each re-scored with several fresh draws, and the pick is
the best mean. With `fine_tune`, each finalist is first trained alone for a few steps from
the shared weights (`Supernet.fine_tuned`), a costlier proxy that measures how far the
configuration gets rather than how well the compromise weights suit it. Each finalist's
scores are kept on disk, so a killed re-scoring resumes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.evolution.supernet import tuned_if_asked
from training.report import read_json, write_json


def calibration_draw(images: np.ndarray, *, batches: int, batch_size: int, rng) -> list:
    """`batches` batches of training images drawn at random, for one BatchNorm recalibration."""
    picks = rng.choice(len(images), size=batches * batch_size)
    return [images[picks[i:i + batch_size]] for i in range(0, len(picks), batch_size)]


def top_trials(rows: list, count: int) -> list:
    """The `count` best trials by trial score; ties go to the cheaper configuration."""
    return sorted(rows, key=lambda r: (-r["val_accuracy"], r["binary_macs"]))[:count]


def rescore(supernet, rows: list, *, draws: list, val_images, val_labels, cache_dir: Path,
            fine_tune: dict | None = None) -> list:
    """`rows` (e.g. `top_trials`), each with `rescores` (one per draw) and their mean, best first.

    `fine_tune`: the arguments of `supernet.fine_tuned` (training images, labels, steps, ...),
    or None to score the shared weights."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    steps = fine_tune["steps"] if fine_tune else 0
    finalists = []
    for row in rows:
        path = cache_dir / f"{row['trial_id']}.json"
        cached = read_json(path)
        if (cached is not None and cached["groups"] == row["groups"]
                and len(cached["rescores"]) == len(draws)
                and cached.get("fine_tune_steps", 0) == steps):
            scores = cached["rescores"]
        else:
            supernet.set_groups(row["groups"])
            scores = []
            with tuned_if_asked(supernet, fine_tune):
                for batches in draws:
                    supernet.recalibrate_batch_norm(batches)
                    scores.append(supernet.accuracy(val_images, val_labels))
            write_json(path, {"groups": row["groups"], "rescores": scores,
                              "fine_tune_steps": steps})
        finalists.append({**row, "rescores": scores, "rescore_mean": float(np.mean(scores))})
        trial_score = (f"trial score {100 * row['val_accuracy']:.2f}%, "
                       if "val_accuracy" in row else "")
        print(f"finalist {row['trial_id']}: {trial_score}re-scored {100 * np.mean(scores):.2f}% "
              f"({', '.join(f'{100 * s:.2f}' for s in scores)})", flush=True)
    return sorted(finalists, key=lambda r: (-r["rescore_mean"], r["binary_macs"]))
