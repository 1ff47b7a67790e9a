"""The whole evolutionary search: supernet training, aging evolution, outputs.

Every step is resumable: the supernet checkpoints each epoch and keeps its final weights,
keras-tuner keeps every trial, so running the same command again continues.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from search.evolution import finalists, latency, plots
from search.evolution.oracle import AgingEvolutionOracle
from search.evolution.space import LATENCY, SearchSpace
from search.evolution.supernet import Supernet
from search.evolution.tuner import SupernetTuner
from search.data import train_val_arrays
from search.resume import CorruptSearchError, check_readable, check_same_settings, record_or_compare

SUPERNET_WEIGHTS = "supernet.h5"


def train_supernet(supernet: Supernet, images, labels, *, epochs, batch_size, output_dir: Path):
    weights = output_dir / SUPERNET_WEIGHTS
    if weights.exists():
        supernet.net.load_weights(str(weights))
        print(f"supernet: loaded {weights}")
        return
    supernet(images[:1])  # built, so BackupAndRestore can restore into it
    supernet.compile(optimizer=tf.keras.optimizers.Adam(
        tf.keras.optimizers.schedules.CosineDecay(2e-3, epochs * (len(images) // batch_size))),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    supernet.fit(images, labels, batch_size=batch_size, epochs=epochs, verbose=2,
                 callbacks=[tf.keras.callbacks.BackupAndRestore(str(output_dir / "supernet_checkpoint"))])
    tmp = output_dir / "supernet.tmp.h5"
    supernet.net.save_weights(str(tmp))
    os.replace(tmp, weights)
    (output_dir / "supernet_time.json").write_text(
        json.dumps({"seconds": time.perf_counter() - start, "epochs": epochs}))


def wait_for(path: Path, timeout: float = 3600, chief_is="training the supernet") -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear; is the chief {chief_is}?")
        time.sleep(1)


def is_chief() -> bool:
    return os.environ.get("KERASTUNER_TUNER_ID") == "chief"


def is_worker() -> bool:
    return "KERASTUNER_ORACLE_IP" in os.environ and not is_chief()


def check_same_space(output_dir: Path, space: SearchSpace) -> None:
    """Refuse to resume over another space (the supernet's kernels and the trials would
    not fit it)."""
    saved = record_or_compare(output_dir / "space.json", {
        "model": space.model_name, "choices": space.choices,
        **({"config": space.model_config} if space.model_config else {})})
    if saved:
        raise CorruptSearchError(
            f"{output_dir} holds a search of another space ({saved['model']}, group choices "
            f"{saved['choices']}, network overrides {saved.get('config', {})}); rerun it with "
            "the same --model, --model-config and --channels-per-group, "
            "or give a new --output-dir."
        )


SUPERNET_CONFIGURATIONS = 4096  # drawn within the budget for supernet training


def supernet_configurations(args, oracle: AgingEvolutionOracle):
    """What the supernet trains on: None (every configuration) or draws within the budget."""
    if args.supernet_sampling == "uniform" or not oracle.budget:
        return None
    return oracle.sample_within_budget(SUPERNET_CONFIGURATIONS, seed=args.seed)


def check_same_supernet(output_dir: Path, args) -> None:
    """Searches under one --output-dir share its supernet: refuse one that would have
    trained it otherwise."""
    described = {"epochs": args.supernet_epochs, "sampling": args.supernet_sampling}
    if args.supernet_sampling == "budget":
        described["budget"] = budget_of(args)
    saved = record_or_compare(output_dir / "supernet.json", described)
    if saved:
        raise CorruptSearchError(
            f"{output_dir}'s supernet was trained with {saved}, this search would train it "
            f"with {described}: searches under one --output-dir share it. Rerun with the same "
            "--supernet-epochs, --supernet-sampling (and budget, if it samples within it), "
            "or give a new --output-dir."
        )


def budget_of(args) -> dict:
    return {k: v for k, v in (("binary_macs", args.budget_macs),
                              ("float_macs", args.budget_float_macs),
                              ("memory_mb", args.budget_memory_mb),
                              (LATENCY, args.budget_latency_ms)) if v is not None}


def floor_of(args) -> dict:
    return {"binary_macs": args.floor_macs} if args.floor_macs is not None else {}


def attach_latency_table(args, space: SearchSpace, output_dir: Path) -> None:
    """With a latency budget, the costs include LCE latency from the search directory's
    table: measured by the chief (or a single process), shared by workers."""
    if args.budget_latency_ms is None:
        return
    path = output_dir / latency.TABLE_FILE
    if is_worker():
        wait_for(path, chief_is="measuring the LCE latency table")
    space.latency_table = latency.load_or_measure(space, path, threads=args.latency_threads)


def search_settings(args) -> dict:
    """What decides which candidates a search proposes and how it scores them. --trials is
    left out: raising it extends a finished search."""
    return {"strategy": args.strategy, "budget": budget_of(args), "population": args.population,
            "sample_size": args.sample_size, "mutation_rate": args.mutation_rate,
            "crossover": args.crossover, "seed": args.seed, "val_examples": args.val_examples,
            "calibration_batches": args.calibration_batches,
            # Only when set: searches started before these options existed still resume.
            **({"trial_steps": args.trial_steps} if args.trial_steps else {}),
            **({"floor": floor_of(args)} if floor_of(args) else {})}


FINE_TUNE_LEARNING_RATE = 5e-4  # a quarter of the supernet's, decayed to 0


def fine_tune(args, images, labels, steps: int) -> dict | None:
    """The arguments of `Supernet.fine_tuned` for `steps` (--trial-steps, --finalist-steps),
    as the tuner and `finalists.rescore` take them; None for 0: score the shared weights."""
    if not steps:
        return None
    return dict(images=images, labels=labels, steps=steps, batch_size=args.batch_size,
                learning_rate=FINE_TUNE_LEARNING_RATE, seed=args.seed)


def prepared_supernet(args, space: SearchSpace, output_dir: Path, configurations=None):
    """The search's train/validation split and its supernet, trained (or loaded from
    `output_dir`): where a search, and a benchmark that re-scores its candidates, start."""
    (train_x, train_y), validation = train_val_arrays(
        args.dataset, train_examples=args.train_examples, val_examples=args.val_examples,
        data_dir=args.data_dir)
    supernet = Supernet(space, seed=args.seed, configurations=configurations)
    if is_worker():  # the chief (or a single process) trains it; workers share it
        wait_for(output_dir / SUPERNET_WEIGHTS)
    train_supernet(supernet, train_x, train_y, epochs=args.supernet_epochs,
                   batch_size=args.batch_size, output_dir=output_dir)
    return supernet, (train_x, train_y), validation


def calibration_draws(args, images, rng, count: int) -> list:
    """`count` draws of --calibration-batches training batches, the next ones from `rng`."""
    return [finalists.calibration_draw(images, batches=args.calibration_batches,
                                       batch_size=args.batch_size, rng=rng)
            for _ in range(count)]


def run_search(args) -> dict:
    if (args.finalists < 0 or args.finalist_draws < 1 or args.finalist_steps < 0
            or args.trial_steps < 0):
        raise ValueError(f"--finalists {args.finalists} --finalist-draws {args.finalist_draws} "
                         f"--finalist-steps {args.finalist_steps} --trial-steps "
                         f"{args.trial_steps}: give 0 or more finalists (0 picks the top "
                         "trial), 1 or more draws and 0 or more steps.")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    project_name = args.name or args.strategy
    check_readable(output_dir, project_name)
    # Random search is aging evolution whose population never fills up.
    population = args.trials if args.strategy == "random" else args.population
    tf.keras.utils.set_random_seed(args.seed)

    space = SearchSpace(args.model, channels_per_group=args.channels_per_group,
                        **args.model_config)
    check_same_space(output_dir, space)
    attach_latency_table(args, space, output_dir)
    budget = budget_of(args)
    oracle = AgingEvolutionOracle(  # refuses a budget that no configuration meets
        space.choices, space.costs, budget, floor=floor_of(args), population_size=population,
        sample_size=args.sample_size, mutation_rate=args.mutation_rate,
        crossover=args.crossover, max_trials=args.trials, seed=args.seed)
    # Recorded once the budget is known to be feasible, so a corrected rerun is no resume.
    check_same_settings(output_dir / project_name, search_settings(args),
                        elsewhere="give this search another --name: searches under one "
                                  "--output-dir share its supernet")
    check_same_supernet(output_dir, args)
    supernet, (train_x, train_y), (val_x, val_y) = prepared_supernet(
        args, space, output_dir, configurations=supernet_configurations(args, oracle))
    rng = np.random.default_rng(args.seed)
    [search_draw] = calibration_draws(args, train_x, rng, 1)
    tuner = SupernetTuner(oracle, supernet=supernet, space=space, calibration_batches=search_draw,
                          val_images=val_x, val_labels=val_y,
                          fine_tune=fine_tune(args, train_x, train_y, args.trial_steps),
                          directory=str(output_dir), project_name=project_name, overwrite=False)
    start = time.perf_counter()
    tuner.search(verbose=0)
    if is_worker():
        return {}
    rows = plots.trials_table(oracle, len(space.choices))
    rescored = None
    if args.finalists:
        draws = calibration_draws(args, train_x, rng, args.finalist_draws)
        rescored = finalists.rescore(supernet, finalists.top_trials(rows, args.finalists),
                                     draws=draws, val_images=val_x, val_labels=val_y,
                                     fine_tune=fine_tune(args, train_x, train_y,
                                                         args.finalist_steps),
                                     cache_dir=Path(tuner.project_dir) / "finalists")
    results = plots.write_outputs(output_dir, rows, space, budget, project_name,
                                  rejected_over_budget=oracle.rejected_over_budget,
                                  floor=oracle.floor,
                                  rejected_under_floor=oracle.rejected_under_floor,
                                  finalists=rescored, finalist_steps=args.finalist_steps,
                                  trial_steps=args.trial_steps)
    results["search_seconds_this_run"] = time.perf_counter() - start
    return results
