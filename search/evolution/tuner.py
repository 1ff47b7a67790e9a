"""A keras-tuner Tuner that scores configurations with the supernet's shared weights.

It overrides `run_trial` (keras-tuner's default path rejects tf-keras models) and keeps
one supernet for all trials: set the groups, optionally train them alone for a few steps
(`fine_tune`, the arguments of `Supernet.fine_tuned`), recompute BatchNorm statistics on
training batches, measure validation accuracy, report it with the larq-counted costs.
"""

from __future__ import annotations

from pathlib import Path

from keras_tuner.engine import base_tuner

from training.report import read_json, write_json
from search.evolution.oracle import gene_name
from search.evolution.space import LATENCY
from search.evolution.supernet import tuned_if_asked


def config_from_values(values: dict, blocks: int) -> list:
    return [int(values[gene_name(b)]) for b in range(blocks)]


class SupernetTuner(base_tuner.BaseTuner):
    def __init__(self, oracle, *, supernet, space, calibration_batches, val_images, val_labels,
                 fine_tune: dict | None = None, **kwargs):
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.supernet = supernet
        self.space = space
        self.calibration_batches = calibration_batches
        self.val_images = val_images
        self.val_labels = val_labels
        self.fine_tune = fine_tune
        self.evaluations_dir = Path(self.project_dir) / "evaluations"
        self.evaluations_dir.mkdir(parents=True, exist_ok=True)

    def run_trial(self, trial, *args, **kwargs):
        groups = config_from_values(trial.hyperparameters.values, len(self.space.choices))
        path = self.evaluations_dir / f"{trial.trial_id}.json"
        record = read_json(path)
        if record is not None and record["groups"] == groups:
            # Scored, then killed before keras-tuner recorded the trial: not scored again.
            print(f"[{self.tuner_id}] kept the evaluation of trial {trial.trial_id} made "
                  "before the interruption", flush=True)
        else:
            record = self._evaluate(trial.trial_id, groups)
            write_json(path, record)
        costs = {k: float(v) for k, v in record.items()
                 if k not in ("trial_id", "tuner_id", "groups", "val_accuracy")}
        return {"val_accuracy": record["val_accuracy"], **costs}

    def _evaluate(self, trial_id, groups) -> dict:
        self.supernet.set_groups(groups)
        with tuned_if_asked(self.supernet, self.fine_tune):
            self.supernet.recalibrate_batch_norm(self.calibration_batches)
            accuracy = self.supernet.accuracy(self.val_images, self.val_labels)
        costs = self.space.costs(groups)
        latency = f"latency {costs[LATENCY]:.3f} ms  " if LATENCY in costs else ""
        print(f"[{self.tuner_id}] trial {trial_id}: val acc {100 * accuracy:.2f}%  "
              f"binary MACs {costs['binary_macs'] / 1e6:.2f}M  memory "
              f"{costs['memory_mb']:.3f} MB  {latency}groups {groups}", flush=True)
        return {"trial_id": trial_id, "tuner_id": self.tuner_id, "groups": groups,
                "val_accuracy": accuracy, **costs}

    def save_model(self, trial_id, model, step=0):
        """Nothing to save: every trial shares the supernet's weights."""

    def load_model(self, trial):
        raise NotImplementedError("Build the configuration with zoo.build_model(groups=...).")
