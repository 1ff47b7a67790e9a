"""Search outputs: the trials table (JSON, CSV), the Pareto plot and the best configuration."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from keras_tuner.engine.trial import TrialStatus  # noqa: E402

from search.evolution.finalists import top_trials  # noqa: E402
from search.evolution.tuner import config_from_values  # noqa: E402
from search.evolution.space import COSTS, LATENCY  # noqa: E402


def trials_table(oracle, blocks: int) -> list:
    rows = []
    for trial in sorted(oracle.trials.values(), key=lambda t: int(t.trial_id)):
        if trial.status != TrialStatus.COMPLETED or trial.score is None:
            continue
        row = {"trial_id": trial.trial_id,
               "groups": config_from_values(trial.hyperparameters.values, blocks),
               "val_accuracy": trial.score}
        for cost in (*COSTS, LATENCY):
            if cost in COSTS or trial.metrics.exists(cost):
                row[cost] = trial.metrics.get_best_value(cost)
        rows.append(row)
    return rows


def pareto_front(rows, cost: str) -> list:
    """Rows no other row beats on both accuracy (higher) and cost (lower)."""
    front, best = [], -1.0
    for row in sorted(rows, key=lambda r: (r[cost], -r["val_accuracy"])):
        if row["val_accuracy"] > best:
            front.append(row)
            best = row["val_accuracy"]
    return front


PARETO_AXES = {"binary_macs": ("binary MACs (M)", 1e6), "memory_mb": ("memory (MB, larq)", 1.0),
               LATENCY: ("LCE latency (ms, estimated)", 1.0)}


def plot_pareto(rows, path) -> None:
    """Accuracy against binary MACs and memory, and against latency when it was a cost."""
    costs = [c for c in PARETO_AXES if c in rows[0]]
    fig, axes = plt.subplots(1, len(costs), figsize=(5.5 * len(costs), 4))
    for ax, cost in zip(axes, costs):
        label, scale = PARETO_AXES[cost]
        ax.scatter([r[cost] / scale for r in rows], [100 * r["val_accuracy"] for r in rows],
                   s=14, alpha=0.6, label="candidate")
        front = pareto_front(rows, cost)
        ax.plot([r[cost] / scale for r in front], [100 * r["val_accuracy"] for r in front],
                "r-o", markersize=4, label="Pareto front")
        ax.set(xlabel=label, ylabel="validation accuracy (%), supernet weights")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Evolutionary group search")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(output_dir: Path, rows: list, space, budget: dict, prefix: str, *,
                  rejected_over_budget=None, floor=None, rejected_under_floor=0,
                  finalists=None, finalist_steps=0, trial_steps=0) -> dict:
    """`{prefix}_trials.json/.csv`, `{prefix}_pareto.png`, `{prefix}_best.json`.

    The best is the top finalist when the finalists were re-scored (`finalists.rescore`),
    else the trial with the highest score."""
    if not rows:
        raise RuntimeError("The search finished without one completed trial.")
    (output_dir / f"{prefix}_trials.json").write_text(json.dumps(rows, indent=1))
    with open(output_dir / f"{prefix}_trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_pareto(rows, output_dir / f"{prefix}_pareto.png")
    best = (finalists or top_trials(rows, 1))[0]
    retrain_config = {**space.model_config, "groups": best["groups"], "form": "masked"}
    result = {
        "model": space.model_name, "groups": best["groups"],
        "width_multiplier": space.network_config["width_multiplier"],
        "val_accuracy": best["val_accuracy"],
        **{k: best[k] for k in (*COSTS, LATENCY) if k in best}, "budget": budget, "trials": len(rows),
        "rejected_over_budget": rejected_over_budget, "trial_fine_tune_steps": trial_steps,
        # Only a search with a floor (--floor-macs) says so.
        **({"floor": floor, "rejected_under_floor": rejected_under_floor} if floor else {}),
        "retrain": (f"python training/train.py fashion_mnist --model {space.model_name} "
                    f"--model-config '{json.dumps(retrain_config)}'"),
    }
    if finalists:
        result["rescore_mean"] = best["rescore_mean"]
        result["finalist_fine_tune_steps"] = finalist_steps
        result["finalists"] = [{k: f[k] for k in ("trial_id", "groups", "val_accuracy", "rescores",
                                                  "rescore_mean", "binary_macs")} for f in finalists]
    (output_dir / f"{prefix}_best.json").write_text(json.dumps(result, indent=2))
    return result
