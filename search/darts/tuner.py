"""keras-tuner drives the differentiable search: one trial = one search.

A trial's hyperparameters (K per cell type, architecture learning rate, seed) configure a
`BilevelSearch`; the trial reports the derived genotype's validation accuracy after a
short training of the derived network from scratch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import keras_tuner as kt
import tensorflow as tf
from keras_tuner.engine import base_tuner

import zoo
from search.darts import plots
from search.darts.search import BilevelSearch, DartsConfig
from search.resume import KillSafeOracle, check_readable, check_same_settings


class RandomSearchOracle(KillSafeOracle, kt.oracles.RandomSearchOracle):
    """keras-tuner's random search, with files that survive a kill."""


def define_space(hp, base: DartsConfig, vary: bool):
    """Fixed at the command line's values, or a small space when `vary`."""
    if vary:
        hp.Choice("k_normal", sorted({base.k_normal, 2, 4, 8}))
        hp.Choice("k_reduce", sorted({base.k_reduce, 2, 4}))
        hp.Float("arch_lr", 1e-4, 1e-3, sampling="log")
    else:
        hp.Fixed("k_normal", base.k_normal)
        hp.Fixed("k_reduce", base.k_reduce)
        hp.Fixed("arch_lr", base.arch_lr)
    hp.Int("seed", 0, 10_000)


def score_genotype(genotype, train, val, *, epochs, config: DartsConfig, batch_size=64):
    """Validation accuracy of the derived network (the supernet's skeleton from `config`)
    trained briefly from scratch."""
    (train_x, train_y), (val_x, val_y) = train, val
    model = zoo.models.ubnas.ubnas(input_shape=train_x.shape[1:], num_classes=10,
                                   include_top=True, name="derived", genotype=genotype,
                                   layers_count=config.layers_count, channels=config.channels,
                                   stem_strides=config.stem_strides)
    model.compile(tf.keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(train_x, train_y, batch_size=batch_size, epochs=epochs, verbose=0)
    return float(model.evaluate(val_x, val_y, verbose=0)[1])


class DartsTuner(base_tuner.BaseTuner):
    def __init__(self, oracle, *, base_config: DartsConfig, train, val, score_epochs, **kwargs):
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.base_config, self.train, self.val = base_config, train, val
        self.score_epochs = score_epochs

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        config = replace(self.base_config, k_normal=hp.get("k_normal"), k_reduce=hp.get("k_reduce"),
                         arch_lr=hp.get("arch_lr"), seed=hp.get("seed"))
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        tf.keras.utils.set_random_seed(config.seed)
        search = BilevelSearch(config, self.train[0].shape[1:], 10)
        result = search.run(self.train, self.val, trial_dir / "search",
                            log=lambda m: print(f"[trial {trial.trial_id}] {m}", flush=True))
        accuracy = score_genotype(result["genotype"], self.train, self.val,
                                  epochs=self.score_epochs, config=config)
        summary = {"trial_id": trial.trial_id, "tuner_id": self.tuner_id,
                   "genotype": result["genotype"],
                   "val_accuracy": accuracy, "cpu_seconds": result["cpu_seconds"],
                   "epochs_run": len(result["epochs"]), "stopped": result["stopped"],
                   "config": result["config"],
                   "operation_costs": result.get("operation_costs"),
                   "genotype_cost": result["epochs"][-1].get("genotype_cost")}
        (trial_dir / "result.json").write_text(json.dumps(summary, indent=1))
        plots.plot_alphas(result["epochs"], trial_dir / "alphas.png", search.arch.primitives)
        plots.draw_cells(result["genotype"], trial_dir / "cells.png")
        plots.plot_curve(result["epochs"], trial_dir / "search_curve.png")
        print(f"[trial {trial.trial_id}] genotype val acc {100 * accuracy:.2f}% after "
              f"{summary['epochs_run']} epochs, {result['cpu_seconds']:.0f} CPU s", flush=True)
        tf.keras.backend.clear_session()
        return {"val_accuracy": accuracy, "cpu_seconds": float(result["cpu_seconds"])}

    def save_model(self, trial_id, model, step=0):
        """The trial's genotype and search state are its outputs (result.json)."""

    def load_model(self, trial):
        raise NotImplementedError("Build the genotype with zoo.models.ubnas.ubnas(genotype=...).")


def best_result(output_dir: Path, project: str) -> dict:
    results = [json.loads(p.read_text()) for p in (output_dir / project).glob("trial_*/result.json")]
    if not results:
        raise RuntimeError(f"No finished trial under {output_dir / project}.")
    return max(results, key=lambda r: r["val_accuracy"])


def search_settings(args, base: DartsConfig) -> dict:
    """What decides a trial's search and score. --trials is left out (raising it extends a
    search) except for whether it is above 1, which varies the hyperparameters."""
    return {"dataset": args.dataset, "train_examples": args.train_examples,
            "val_examples": args.val_examples, "score_epochs": args.score_epochs,
            "vary_hyperparameters": varies(args), **asdict(base)}


def varies(args) -> bool:
    return args.trials > 1 and not args.plain


def run_darts(args) -> dict:
    from search.data import train_val_arrays

    output_dir = Path(args.output_dir)
    base = DartsConfig(epochs=args.epochs, batch_size=args.batch_size, layers_count=args.layers,
                       channels=args.channels, stem_strides=args.stem_strides,
                       k_normal=1 if args.plain else args.k_normal,
                       k_reduce=1 if args.plain else args.k_reduce,
                       warmup_epochs=args.warmup_epochs, arch_lr=args.arch_lr,
                       max_parameter_free=None if args.plain else args.max_parameter_free,
                       patience=None if args.plain else args.patience, seed=args.seed,
                       operations=tuple(args.operations), cost_weight=args.cost_weight,
                       cost_channels=args.cost_channels)
    project = "darts_plain" if args.plain else "darts"
    check_readable(output_dir, project)
    check_same_settings(output_dir / project, search_settings(args, base),
                        elsewhere="give another --output-dir")
    train, val = train_val_arrays(args.dataset, train_examples=args.train_examples,
                                  val_examples=args.val_examples, data_dir=args.data_dir)
    oracle = RandomSearchOracle(objective=kt.Objective("val_accuracy", "max"),
                                max_trials=args.trials, seed=args.seed)
    define_space(oracle.hyperparameters, base, vary=varies(args))
    tuner = DartsTuner(oracle, base_config=base, train=train, val=val,
                       score_epochs=args.score_epochs, directory=str(output_dir),
                       project_name=project, overwrite=False)
    tuner.search(verbose=0)
    best = best_result(output_dir, project)
    (output_dir / f"{project}_genotype.json").write_text(json.dumps(best, indent=1))
    return best
