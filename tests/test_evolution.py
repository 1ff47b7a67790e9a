"""Evolutionary group search: oracle behaviour, shared weights, resume, distribution."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from keras_tuner.engine.trial import TrialStatus

from search.evolution.oracle import AgingEvolutionOracle, BudgetError
from search.evolution.space import SearchSpace
from search.evolution.supernet import Supernet
from tests.conftest import run_chief_and_workers
from zoo import build_model, layers, quantizers

ROOT = Path(__file__).resolve().parents[1]
CHOICES = [[1, 2, 4], [1, 2], [2, 4, 8], [1, 4]]


def fake_cost(config):
    """More groups, fewer MACs: as in the real network (cheapest here costs 9)."""
    return {"binary_macs": sum(8.0 / g for g in config), "float_macs": 0.0, "memory_mb": 0.0}


def make_oracle(tmp_path, **kwargs):
    options = dict(population_size=4, sample_size=3, max_trials=12, seed=1)
    options.update(kwargs)
    oracle = AgingEvolutionOracle(CHOICES, fake_cost, options.pop("budget", {}), **options)
    oracle._set_project_dir(str(tmp_path), "search")
    return oracle


def drive(oracle, evaluate):
    """The Tuner's loop: ask for trials until STOPPED, report each score."""
    history = []
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status == TrialStatus.STOPPED:
            return history
        config = oracle.config_of(trial.hyperparameters.values)
        oracle.update_trial(trial.trial_id, {"val_accuracy": evaluate(config)})
        trial.status = TrialStatus.COMPLETED
        oracle.end_trial(trial)
        history.append((trial.trial_id, config, [t.trial_id for t in oracle.population()]))


def test_aging_keeps_the_population_size_and_retires_the_oldest_even_if_fittest(tmp_path):
    oracle = make_oracle(tmp_path)
    first = []

    def evaluate(config):
        first.append(config)
        return 1.0 if len(first) == 1 else 0.1 * len(first) / 20  # oldest is the fittest

    history = drive(oracle, evaluate)
    for trial_id, _, population in history[3:]:
        assert len(population) == 4
        assert population == sorted(population, key=int)[-4:]
        assert population[-1] == trial_id  # the newest child joined
    assert history[0][0] not in history[-1][2]  # the best (oldest) member was retired


def test_no_configuration_is_evaluated_twice(tmp_path):
    calls = []
    oracle = make_oracle(tmp_path, max_trials=40, population_size=5)
    drive(oracle, lambda c: calls.append(tuple(c)) or np.random.rand())
    assert len(calls) == len(set(calls))
    assert len(calls) <= np.prod([len(c) for c in CHOICES])  # space of 36: it stops


def test_over_budget_candidates_are_never_evaluated(tmp_path):
    calls = []
    oracle = make_oracle(tmp_path, budget={"binary_macs": 14}, max_trials=15)
    drive(oracle, lambda c: calls.append(c) or sum(c) / 20)
    assert calls and all(fake_cost(c)["binary_macs"] <= 14 for c in calls)
    assert oracle.rejected_over_budget > 0


def test_candidates_under_the_floor_are_never_evaluated(tmp_path):
    """A random search at equal or higher cost than a pick: only the band floor..budget."""
    calls = []
    oracle = make_oracle(tmp_path, budget={"binary_macs": 14}, floor={"binary_macs": 12},
                         population_size=15, max_trials=15)
    drive(oracle, lambda c: calls.append(c) or sum(c) / 20)
    assert calls and all(12 <= fake_cost(c)["binary_macs"] <= 14 for c in calls)
    assert oracle.rejected_under_floor > 0 and oracle.rejected_over_budget > 0
    assert oracle.get_state()["rejected_under_floor"] == oracle.rejected_under_floor
    # The supernet is shared under one directory and records the budget alone: its draws
    # ignore the floor.
    assert min(fake_cost(c)["binary_macs"] for c in oracle.sample_within_budget(200)) < 12


def test_supernet_draws_are_uniform_over_the_configurations_within_the_budget(tmp_path):
    import itertools

    oracle = make_oracle(tmp_path, budget={"binary_macs": 14})
    within = {c for c in itertools.product(*CHOICES) if fake_cost(c)["binary_macs"] <= 14}
    draws = [tuple(c) for c in oracle.sample_within_budget(3000)]
    assert len(draws) == 3000 and set(draws) == within  # all of them, and nothing else
    counts = [draws.count(c) for c in within]
    assert max(counts) < 2 * min(counts)  # 3000 / 13 = 231 expected each
    cheapest_only = make_oracle(tmp_path, budget={"binary_macs": 9})
    assert {tuple(c) for c in cheapest_only.sample_within_budget(5)} == {(4, 2, 8, 4)}


def test_a_supernet_given_configurations_trains_on_those_alone(eager_functions):
    space = SearchSpace()
    table = [[c[0] for c in space.choices], [c[-1] for c in space.choices]]
    supernet = Supernet(space, seed=0, configurations=table)
    seen = set()
    for _ in range(12):
        supernet.sample_groups()
        seen.add(tuple(supernet.groups()))
    assert seen == {tuple(c) for c in table}
    with pytest.raises(ValueError, match="not an allowed choice"):
        Supernet(space, configurations=[[3] * len(space.choices)])


def test_a_search_that_would_train_the_shared_supernet_otherwise_is_refused(tmp_path):
    from search.__main__ import parser
    from search.evolution.run import check_same_supernet
    from search.resume import CorruptSearchError

    def check(folder, *flags):
        check_same_supernet(tmp_path / folder, parser().parse_args(["evolution", *flags]))

    for budget in ("4e6", "5e6"):  # a uniform supernet (the default) serves every budget
        check("uniform", "--budget-macs", budget)
    with pytest.raises(CorruptSearchError, match="--supernet-epochs.*new --output-dir"):
        check("uniform", "--budget-macs", "4e6", "--supernet-epochs", "5")
    within = ("--budget-macs", "4e6", "--supernet-sampling", "budget")
    check("within", *within)
    check("within", *within, "--strategy", "random")  # evolution and random share it
    with pytest.raises(CorruptSearchError, match="budget"):
        check("within", "--budget-macs", "5e6", "--supernet-sampling", "budget")


def test_mutants_take_only_allowed_group_counts(tmp_path):
    import random

    oracle = make_oracle(tmp_path)
    rng = random.Random(0)
    parent = [c[0] for c in CHOICES]
    for _ in range(200):
        child = oracle.mutate(parent, rng)
        assert child != parent
        assert all(g in allowed for g, allowed in zip(child, CHOICES))


def test_infeasible_budget_is_a_clear_error(tmp_path):
    with pytest.raises(BudgetError, match="No configuration meets the budget"):
        make_oracle(tmp_path, budget={"binary_macs": 8.9})
    with pytest.raises(BudgetError, match="No configuration reaches the floor"):
        make_oracle(tmp_path, floor={"binary_macs": 28.1})  # the costliest costs 28
    with pytest.raises(BudgetError, match="above the budget"):
        make_oracle(tmp_path, budget={"binary_macs": 14}, floor={"binary_macs": 15})


@pytest.mark.parametrize("channels, groups, max_group_size",
                         [(32, 32, 16), (32, 16, 16), (32, 8, 16), (32, 4, 16), (32, 2, 16),
                          (128, 2, 64), (128, 4, 64), (18, 18, 16), (18, 2, 16)])
def test_masked_shared_kernel_equals_larq_grouped_conv(channels, groups, max_group_size):
    masked = layers.MaskedGroupConv2D(channels, 3, quantizers.APPROX_SIGN, groups=groups,
                                      max_group_size=max_group_size)
    grouped = layers.binary_conv(channels, 3, quantizers.APPROX_SIGN, groups=groups)
    assert isinstance(grouped, lq.layers.QuantConv2D)
    x = tf.random.normal((2, 9, 9, channels), seed=1)
    masked(x), grouped(x)
    grouped.set_weights([masked.grouped_kernel()])
    np.testing.assert_allclose(masked(x), grouped(x), atol=1e-4)
    # and back: a depthwise-built layer takes the grouped kernel and its group count
    restored = layers.MaskedGroupConv2D(channels, 3, quantizers.APPROX_SIGN, groups=channels,
                                        max_group_size=max_group_size)
    restored(x)
    restored.set_grouped_kernel(grouped.get_weights()[0])
    assert int(restored.groups.numpy()) == groups
    np.testing.assert_allclose(restored(x), grouped(x), atol=1e-4)


def test_lce_space_holds_only_groups_that_lce_runs_in_binary(tmp_path):
    from search.evolution.run import check_same_space
    from search.resume import CorruptSearchError
    from search.evolution.space import LCE_CHANNELS_PER_GROUP
    from zoo.profile import lce_float_group_convs

    default, lce = SearchSpace(), SearchSpace(channels_per_group=LCE_CHANNELS_PER_GROUP)
    assert lce.choices[0] == [1]  # 16 channels: no 32-wide group fits, so a full convolution
    assert lce.choices[-1] == [16, 8, 4] and lce.max_group_size == 128
    assert default.max_group_size == 16
    widest = [max(c) for c in lce.choices]
    assert lce_float_group_convs(lce.build(widest)) == {}
    assert lce_float_group_convs(default.build([max(c) for c in default.choices]))
    check_same_space(tmp_path, default)
    check_same_space(tmp_path, default)  # resuming the same space is fine
    with pytest.raises(CorruptSearchError, match="same --model, --model-config and --channels"):
        check_same_space(tmp_path, lce)


def test_a_search_resumed_with_other_network_overrides_is_refused(tmp_path):
    from search.evolution.run import check_same_space
    from search.resume import CorruptSearchError

    full_resolution = SearchSpace(stem_strides=1)
    assert full_resolution.costs([1] * 13)["binary_macs"] > 3 * SearchSpace().costs([1] * 13)["binary_macs"]
    check_same_space(tmp_path, full_resolution)
    check_same_space(tmp_path, SearchSpace(stem_strides=1))
    with pytest.raises(CorruptSearchError, match="stem_strides"):
        check_same_space(tmp_path, SearchSpace())


def test_a_search_resumed_with_other_settings_is_refused_unless_given_another_name(
        tmp_path, stop_at_data):
    from search.__main__ import parser
    from search.evolution.run import run_search
    from search.resume import CorruptSearchError

    def run(name, *flags):
        run_search(parser().parse_args(["evolution", "--budget-macs", "4e6", "--output-dir",
                                        str(tmp_path), "--name", name, *flags]))

    for name, flags in [("evolution", ()), ("evolution", ("--trials", "200")),  # extends it
                        ("evolution-crossover", ("--crossover",))]:
        with pytest.raises(stop_at_data):  # accepted: it goes on to load the data
            run(name, *flags)
    with pytest.raises(CorruptSearchError, match=r"crossover.*--name"):
        run("evolution", "--crossover")
    with pytest.raises(CorruptSearchError, match="budget"):
        run("evolution", "--budget-macs", "5e6")
    with pytest.raises(CorruptSearchError, match="trial_steps"):  # another score: refused
        run("evolution", "--trial-steps", "100")


def test_group_count_that_does_not_divide_the_channels():
    with pytest.raises(ValueError, match="does not divide the block's 16 input channels"):
        build_model("BinaryMobileNet-Depthwise", groups=[3] + [1] * 12)
    with pytest.raises(ValueError, match="does not divide the block's 16 input channels"):
        SearchSpace().costs([3] + [1] * 12)


def test_costs_summed_per_block_equal_larq_on_the_whole_network():
    from zoo import profile

    space = SearchSpace(stem_strides=1)
    rng = np.random.default_rng(0)
    for groups in ([int(rng.choice(c)) for c in space.choices], [1] * 13):  # [1]: no choice
        whole = profile(space.build(groups))
        costs = space.costs(groups)
        assert costs["binary_macs"] == whole.binary_macs
        assert costs["float_macs"] == whole.float_macs
        assert costs["memory_mb"] == pytest.approx(whole.memory_mb, rel=1e-12)


def test_supernet_shares_weights_across_configurations(eager_functions):
    space = SearchSpace()
    supernet = Supernet(space, seed=0)
    x = np.random.default_rng(0).random((32, 28, 28, 1), dtype=np.float32)
    y = np.arange(32) % 10
    supernet(x[:1])
    count = len(supernet.trainable_variables)
    config_a = [c[-1] for c in space.choices]
    config_b = [c[0] for c in space.choices]
    supernet.set_groups(config_b)
    before = supernet(x, training=False).numpy()
    supernet.set_groups(config_a)
    supernet.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    supernet.train_on_batch(x, y)  # train_step samples its own configuration
    assert len(supernet.trainable_variables) == count
    supernet.set_groups(config_b)
    after = supernet(x, training=False).numpy()
    assert np.abs(after - before).max() > 1e-4


def test_a_fine_tuned_finalist_trains_its_own_configuration_and_the_shared_weights_return():
    space = SearchSpace()
    supernet = Supernet(space, seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = np.arange(64) % 10
    supernet(x[:1])
    groups = [c[0] for c in space.choices]
    supernet.set_groups(groups)
    shared = [w.copy() for w in supernet.net.get_weights()]
    before = supernet(x, training=False).numpy()
    tuned = []
    for _ in range(2):  # the second starts afresh: no optimizer state left by the first
        with supernet.fine_tuned(x, y, steps=2, batch_size=32, learning_rate=1e-2, seed=0):
            assert supernet.groups() == groups  # trained as itself, not sampled
            tuned.append(supernet(x, training=False).numpy())
        assert all(np.array_equal(a, b) for a, b in zip(supernet.net.get_weights(), shared))
    assert np.abs(tuned[0] - before).max() > 1e-4
    np.testing.assert_allclose(tuned[1], tuned[0], atol=1e-5)


# Eager: at this size tracing the supernet costs more than running it.
SEARCH_TRIALS = 6
SEARCH = [sys.executable, "-m", "search", "evolution", "--eager", "--trials", str(SEARCH_TRIALS),
          "--population", "3", "--supernet-epochs", "1", "--train-examples", "128", "--val-examples", "128",
          "--calibration-batches", "1", "--batch-size", "64"]


def _evaluations(project: Path):
    return [json.loads(p.read_text()) for p in sorted((project / "evaluations").glob("*.json"))]


@pytest.mark.slow
def test_killed_search_resumes_without_losing_or_repeating_trials(tmp_path):
    out = tmp_path / "search"
    args = SEARCH + ["--output-dir", str(out)]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((out / "evolution" / "evaluations").glob("*.json"))) >= 3:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the search ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = {e["trial_id"]: e["groups"] for e in _evaluations(out / "evolution")}
    assert len(done_before) >= 3

    resumed = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "supernet: loaded" in resumed.stdout
    rows = json.loads((out / "evolution_trials.json").read_text())
    assert len(rows) == SEARCH_TRIALS
    configs = [tuple(r["groups"]) for r in rows]
    assert len(set(configs)) == SEARCH_TRIALS
    for trial_id, groups in done_before.items():  # finished trials kept, not re-run
        assert f"] trial {trial_id}:" not in resumed.stdout  # the tuner's "[tuner0] trial N:"
        assert [r["groups"] for r in rows if r["trial_id"] == trial_id] == [groups]
    assert (out / "evolution_pareto.png").exists()
    best = json.loads((out / "evolution_best.json").read_text())
    build_model("BinaryMobileNet-Depthwise", groups=best["groups"])


def test_a_kill_while_saving_leaves_the_previous_trial_and_oracle_files_whole(tmp_path, monkeypatch):
    """keras-tuner rewrites trial.json and oracle.json in place: a kill mid-write left an
    empty file and a search that could not resume. The oracle writes and renames instead."""
    oracle = make_oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    files = [tmp_path / "search" / f"trial_{trial.trial_id}" / "trial.json",
             tmp_path / "search" / "oracle.json"]
    before = [path.read_text() for path in files]

    def killed(*args):
        raise KeyboardInterrupt("killed between the write and the rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    with pytest.raises(KeyboardInterrupt):
        oracle.save()
    assert [path.read_text() for path in files] == before
    assert all(json.loads(text) for text in before)


def test_a_trial_killed_before_the_oracle_listed_it_is_retried_on_resume(tmp_path, monkeypatch):
    """keras-tuner writes a new trial's trial.json, then oracle.json: killed in between,
    the trial was never retried yet counted against max_trials (seen in CI)."""
    oracle = make_oracle(tmp_path)
    done = oracle.create_trial("tuner0")
    oracle.update_trial(done.trial_id, {"val_accuracy": 0.5})
    done.status = "COMPLETED"  # as the tuner ends a scored trial
    oracle.end_trial(done)

    def killed():
        raise KeyboardInterrupt("killed before oracle.json listed the new trial")

    monkeypatch.setattr(oracle, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        oracle.create_trial("tuner0")
    orphan = [p.parent.name for p in (tmp_path / "search").glob("trial_*/trial.json")]
    assert len(orphan) == 2

    resumed = make_oracle(tmp_path)
    resumed.reload()
    retried = resumed.create_trial("tuner0")
    assert f"trial_{retried.trial_id}" in orphan and retried.trial_id != done.trial_id
    assert retried.status == "RUNNING"


def test_a_trial_killed_after_it_completed_is_not_run_again_on_resume(tmp_path):
    """keras-tuner's end_trial saves oracle.json before it takes the finished trial off
    the ongoing list: killed before the next save, the resumed search ran it again."""
    oracle = make_oracle(tmp_path)
    done = oracle.create_trial("tuner0")
    oracle.update_trial(done.trial_id, {"val_accuracy": 0.5})
    done.status = "COMPLETED"
    oracle.end_trial(done)  # killed here, before the next trial is created
    listed = json.loads((tmp_path / "search" / "oracle.json").read_text())["ongoing_trials"]
    assert done.trial_id in listed.values()  # the window exists

    resumed = make_oracle(tmp_path)
    resumed.reload()
    assert resumed.trials[done.trial_id].status == "COMPLETED"
    next_trial = resumed.create_trial("tuner0")
    assert next_trial.trial_id != done.trial_id and next_trial.status == "RUNNING"
    assert resumed.trials[done.trial_id].status == "COMPLETED"


def search_cli(*flags):
    """`python -m search` with SEARCH's flags, in this process; without --eager, which would
    switch eager execution on for the tests that follow in it."""
    from search.__main__ import main

    main([flag for flag in SEARCH[3:] if flag != "--eager"] + list(flags))


def test_a_refused_budget_records_no_settings_so_a_corrected_rerun_starts_afresh(tmp_path):
    out = tmp_path / "search"
    with pytest.raises(SystemExit, match="error: No configuration meets the budget"):
        search_cli("--output-dir", str(out), "--budget-macs", "1")
    assert not (out / "evolution" / "settings.json").exists()
    with pytest.raises(SystemExit, match="error: No configuration reaches the floor"):
        search_cli("--output-dir", str(out), "--budget-macs", "4e6", "--floor-macs", "1e9")
    assert not (out / "evolution" / "settings.json").exists()


def test_corrupt_search_directory_is_a_clear_error(tmp_path):
    project = tmp_path / "search" / "evolution"
    project.mkdir(parents=True)
    (project / "oracle.json").write_text("{ truncated")
    with pytest.raises(SystemExit, match="error: .*corrupt"):
        search_cli("--output-dir", str(tmp_path / "search"))


@pytest.mark.slow
def test_chief_and_workers_share_one_search(tmp_path):
    """keras-tuner's own distributed mode: the chief runs the oracle, workers evaluate."""
    out = tmp_path / "search"
    trials = 4
    args = SEARCH + ["--output-dir", str(out), "--trials", str(trials)]
    run_chief_and_workers(args, ROOT, workers=2)
    evaluations = _evaluations(out / "evolution")
    assert len(evaluations) == trials
    assert {e["tuner_id"] for e in evaluations} == {"tuner0", "tuner1"}
    assert len({tuple(e["groups"]) for e in evaluations}) == trials
    assert len(json.loads((out / "evolution_trials.json").read_text())) == trials


def test_batch_norm_recalibration_gives_the_mean_of_the_batches():
    supernet = Supernet(SearchSpace(), seed=0)
    rng = np.random.default_rng(0)
    batches = [rng.random((16, 28, 28, 1), dtype=np.float32) for _ in range(3)]
    supernet(batches[0])
    supernet.recalibrate_batch_norm(batches)
    first_norm = next(l for l in supernet.net.layers if isinstance(l, tf.keras.layers.BatchNormalization))
    stem = tf.keras.Model(supernet.net.input, first_norm.input)
    means = [tf.reduce_mean(stem(b), axis=[0, 1, 2]).numpy() for b in batches]
    m = first_norm.momentum
    weights = np.array([(1 - m) * m ** (2 - k) for k in range(3)]) / (1 - m ** 3)
    np.testing.assert_allclose(first_norm.moving_mean.numpy(),
                               sum(w * mu for w, mu in zip(weights, means)), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_masked_training_form_converts_to_the_deployable_grouped_model(tmp_path, eager_functions):
    """What package.py ships and train.py --export-tflite converts (`deployable_model`), and
    back: a shipped (grouped, sign-bits) file loads into the masked form, which
    train.py --init-weights fine-tunes and Keras runs faster on a CPU."""
    from training.export import deployable_model
    from zoo import weights as weights_io

    # Groups wider than the masked form's default band too (64 channels in blocks 3 and 6).
    groups = [16, 8, 32, 1, 32, 128, 4, 16, 256, 32, 128, 64, 512]
    masked = build_model("BinaryMobileNet-Depthwise", groups=groups, form="masked")
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    masked.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    masked.fit(x, np.arange(4), epochs=2, verbose=0)  # move BN statistics and kernels
    grouped = deployable_model(masked, {"groups": groups, "form": "masked"})
    assert not any(isinstance(l, layers.MaskedGroupConv2D) for l in grouped.layers)
    assert any(isinstance(l, lq.layers.QuantConv2D) and l.groups > 1 for l in grouped.layers)
    np.testing.assert_allclose(grouped.predict(x, verbose=0), masked.predict(x, verbose=0), atol=1e-4)
    shipped = tmp_path / "shipped.h5"
    weights_io.save(grouped, shipped, "BinaryMobileNet-Depthwise", sign_bits=True)
    fine_tuned = build_model("BinaryMobileNet-Depthwise", groups=groups, form="masked",
                             weights=str(shipped))
    assert any(isinstance(l, layers.MaskedGroupConv2D) for l in fine_tuned.layers)
    np.testing.assert_allclose(fine_tuned.predict(x, verbose=0), grouped.predict(x, verbose=0), atol=1e-4)


def test_prelus_start_as_the_identity_and_take_weights_trained_without_them(tmp_path):
    """residual_activation="prelu" fine-tunes a nonlinearity into weights trained without
    one: such a file loads (into the masked form too) and computes what it did."""
    from zoo import weights as weights_io
    from zoo.weights import WeightsError

    def build(**config):
        return build_model("BinaryMobileNet-Depthwise", input_shape=(8, 8, 1), **config)

    rng = np.random.default_rng(0)
    plain = build()
    for layer in plain.layers:  # trained-looking BatchNorms, so the comparison is not trivial
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.set_weights([rng.normal(1, 0.3, w.shape) if i != 3 else rng.uniform(0.5, 2, w.shape)
                               for i, w in enumerate(layer.get_weights())])
    plain_file = tmp_path / "plain.h5"
    weights_io.save(plain, plain_file, "BinaryMobileNet-Depthwise", sign_bits=True)
    x = rng.random((4, 8, 8, 1), dtype=np.float32)

    def outputs(model):  # eager: tracing predict's function costs more than these calls
        return model(x, training=False).numpy()

    with_prelus = build(form="masked", residual_activation="prelu", weights=str(plain_file))
    prelus = [l for l in with_prelus.layers if isinstance(l, tf.keras.layers.PReLU)]
    assert len(prelus) == 26  # one after each of the 13 blocks' two modules
    np.testing.assert_allclose(outputs(with_prelus), outputs(plain), atol=1e-5)
    for prelu in prelus:  # a slope below 1: now a nonlinearity the plain network lacks
        prelu.set_weights([np.full_like(w, 0.25) for w in prelu.get_weights()])
    assert not np.allclose(outputs(with_prelus), outputs(plain), atol=1e-3)

    prelu_file = tmp_path / "prelu.h5"
    weights_io.save(with_prelus, prelu_file, "BinaryMobileNet-Depthwise")
    with pytest.raises(WeightsError, match="do not fit"):  # the PReLUs cannot be dropped
        build(weights=str(prelu_file))
    with pytest.raises(ValueError, match="residual_activation='relu' is not one of"):
        build(residual_activation="relu")


def test_a_trial_scored_before_a_kill_is_not_scored_again(tmp_path):
    """Killed between writing a trial's evaluation and keras-tuner recording the trial,
    the resumed search runs that trial again: it takes the evaluation, not a new score."""
    from types import SimpleNamespace

    from search.evolution.oracle import gene_name
    from search.evolution.tuner import SupernetTuner

    groups = [2, 4]
    record = {"trial_id": "02", "tuner_id": "chief", "groups": groups, "val_accuracy": 0.5,
              "binary_macs": 1e6, "memory_mb": 0.2}
    (tmp_path / "02.json").write_text(json.dumps(record))

    def never(*args):
        raise AssertionError("scored again")

    tuner = SimpleNamespace(evaluations_dir=tmp_path, tuner_id="chief", _evaluate=never,
                            space=SimpleNamespace(choices=[[1, 2], [1, 4]]))
    trial = SimpleNamespace(trial_id="02", hyperparameters=SimpleNamespace(
        values={gene_name(b): g for b, g in enumerate(groups)}))
    assert SupernetTuner.run_trial(tuner, trial) == {
        "val_accuracy": 0.5, "binary_macs": 1e6, "memory_mb": 0.2}
    trial.hyperparameters.values[gene_name(0)] = 1  # another configuration: scored
    with pytest.raises(AssertionError, match="scored again"):
        SupernetTuner.run_trial(tuner, trial)


class ScoringSupernet:
    """The supernet interface `finalists.rescore` uses; a score is the group sum plus a
    per-draw offset (the draw's first pixel), and every recalibration is counted."""

    def __init__(self):
        self.recalibrations = 0
        self.offset_from_tuning = 0.0

    def set_groups(self, groups):
        self.groups = groups

    def recalibrate_batch_norm(self, batches):
        self.recalibrations += 1
        self.offset = float(batches[0][0])

    @contextlib.contextmanager
    def fine_tuned(self, steps, **kwargs):  # tuning adds steps/1000 to every score inside
        self.offset_from_tuning = steps / 1000
        yield
        self.offset_from_tuning = 0.0

    def accuracy(self, images, labels):
        return sum(self.groups) / 100 + self.offset + self.offset_from_tuning


def test_trial_steps_score_each_trial_after_its_own_fine_tune_then_restore_the_shared_weights():
    from types import SimpleNamespace

    from search.evolution.tuner import SupernetTuner

    supernet = ScoringSupernet()
    tuner = SimpleNamespace(supernet=supernet, calibration_batches=[np.array([0.2])],
                            val_images=None, val_labels=None, tuner_id="chief",
                            space=SimpleNamespace(costs=fake_cost), fine_tune=None)
    shared = SupernetTuner._evaluate(tuner, "01", [2, 4])
    tuner.fine_tune = {"steps": 50}
    tuned = SupernetTuner._evaluate(tuner, "02", [2, 4])
    assert shared["val_accuracy"] == pytest.approx(0.06 + 0.2)
    assert tuned["val_accuracy"] == pytest.approx(0.06 + 0.2 + 0.05)  # scored inside the tune
    assert supernet.offset_from_tuning == 0.0  # and the shared weights came back after it
    assert tuned["binary_macs"] == fake_cost([2, 4])["binary_macs"]


def test_finalists_are_the_top_trials_re_scored_and_ranked_by_their_mean(tmp_path):
    from search.evolution import finalists

    rows = [{"trial_id": str(i), "groups": [i], "val_accuracy": score, "binary_macs": 10 - i}
            for i, score in enumerate([0.5, 0.9, 0.7, 0.8, 0.9])]
    draws = [[np.array([0.0])], [np.array([0.2])]]
    supernet = ScoringSupernet()
    top = finalists.top_trials(rows, 3)
    picked = finalists.rescore(supernet, top, draws=draws, val_images=None, val_labels=None,
                               cache_dir=tmp_path)
    # Top 3 by trial score: trials 4 and 1 (tied at 0.9), then 3; trial 2 (0.7) is left out.
    assert [r["trial_id"] for r in picked] == ["4", "3", "1"]  # ranked by the re-scores
    assert picked[0]["rescores"] == pytest.approx([0.04, 0.24])
    assert picked[0]["rescore_mean"] == pytest.approx(0.14)
    assert supernet.recalibrations == 3 * len(draws)
    again = finalists.rescore(supernet, top, draws=draws, val_images=None, val_labels=None,
                              cache_dir=tmp_path)
    assert again == picked and supernet.recalibrations == 6  # resumed from disk: none redone
    tuned = finalists.rescore(supernet, top, draws=draws, val_images=None, val_labels=None,
                              cache_dir=tmp_path, fine_tune={"steps": 5})
    assert supernet.recalibrations == 12  # the cached scores were of untuned weights: redone
    assert tuned[0]["rescores"] == pytest.approx([0.045, 0.245])


def test_a_finished_search_re_picks_from_its_finalists_without_new_trials(tmp_path, eager_functions):
    out = tmp_path / "search"
    search_cli("--output-dir", str(out), "--trials", "3", "--finalists", "0")
    top_trial = json.loads((out / "evolution_best.json").read_text())
    assert "finalists" not in top_trial
    search_cli("--output-dir", str(out), "--trials", "3", "--finalists", "2",
               "--finalist-draws", "2", "--finalist-steps", "1")
    best = json.loads((out / "evolution_best.json").read_text())
    assert len(json.loads((out / "evolution_trials.json").read_text())) == 3
    assert len(best["finalists"]) == 2
    assert best["groups"] == best["finalists"][0]["groups"]
    assert top_trial["groups"] in [f["groups"] for f in best["finalists"]]
    assert all(len(f["rescores"]) == 2 for f in best["finalists"])
    assert best["finalist_fine_tune_steps"] == 1 and best["trial_fine_tune_steps"] == 0
    with pytest.raises(SystemExit, match="error: --finalists -1"):
        search_cli("--output-dir", str(out), "--finalists", "-1")


def test_a_search_at_another_width_records_it_for_its_retraining(tmp_path, eager_functions):
    """At width 0.5 the pointwise convolutions take nine tenths of a 3.1M-MAC budget; a
    narrower search leaves its groups room. Its pick is retrained at the width it was found."""
    from benchmarks.evolution_targets import searched_width

    out = tmp_path / "search"
    search_cli("--output-dir", str(out), "--trials", "2", "--finalists", "0",
               "--model-config", '{"width_multiplier": 0.25}')
    best = json.loads((out / "evolution_best.json").read_text())
    assert searched_width(best) == best["width_multiplier"] == 0.25
    assert SearchSpace(width_multiplier=0.25).costs(best["groups"])["binary_macs"] == best["binary_macs"]
    assert '"width_multiplier": 0.25' in best["retrain"]
    assert searched_width({"model": "BinaryMobileNet-Depthwise"}) == 0.5  # before it was recorded


def test_deterministic_retraining_runs_apart_from_the_runs_without_it(tmp_path, monkeypatch):
    """train.py refuses to resume a run under another --deterministic mode, so the
    benchmark keeps such runs in folders of their own."""
    import argparse

    from benchmarks import evolution_targets

    calls = []

    def fake_run(args):
        calls.append(args)
        return {"final": {"top1": 0.5 + 0.1 * args.seed}, "wall_time_seconds": 1.0}

    monkeypatch.setattr(evolution_targets.train, "run", fake_run)
    args = argparse.Namespace(search_dir=str(tmp_path), seeds=[0, 1], epochs=1, repeat=0,
                              deterministic=True)
    row = evolution_targets.retrain("evolution", [8] * 13, "masked", args, 0.25)
    assert all(call.deterministic for call in calls)
    assert [Path(call.output_dir).name for call in calls] == [
        "retrain-evolution-deterministic", "retrain-evolution-deterministic-seed1"]
    assert row["top1"] == pytest.approx(0.55) and row["width_multiplier"] == 0.25
    assert row["binary_macs"] == SearchSpace(width_multiplier=0.25).costs([8] * 13)["binary_macs"]


def test_a_retraining_report_names_how_the_pick_was_scored():
    from benchmarks.evolution_targets import picked_by

    assert picked_by({"trial_fine_tune_steps": 0}) == "top trial score"
    assert picked_by({"finalists": [{}], "finalist_fine_tune_steps": 0}) == "re-scored finalists"
    assert picked_by({"trial_fine_tune_steps": 300, "finalists": [{}],
                      "finalist_fine_tune_steps": 300}) == (
        "trials fine-tuned 300 steps; finalists fine-tuned 300 steps, then re-scored")


def test_an_equal_cost_baseline_is_the_narrowest_width_that_reaches_the_evolved_cost(monkeypatch):
    """The issue's target puts the evolved network at equal or lower binary MACs than each
    baseline: the baseline must reach its cost, and one step narrower must not."""
    from benchmarks import evolution_targets

    monkeypatch.setattr(evolution_targets, "binary_costs",
                        lambda groups, width: {"binary_macs": 1e8 * width ** 2})
    width = evolution_targets.narrowest_reaching("dense", 3.6e6)
    assert 1e8 * width ** 2 >= 3.6e6 > 1e8 * (width - 1 / 256) ** 2
    assert (256 * width).is_integer()
    with pytest.raises(SystemExit, match="no width of the dense network reaches"):
        evolution_targets.narrowest_reaching("dense", 1e9)
    within = evolution_targets.widest_within("dense", 3.6e6)  # the other side, 1/32 steps
    assert 1e8 * within ** 2 <= 3.6e6 < 1e8 * (within + 1 / 32) ** 2
    assert (32 * within).is_integer()
    with pytest.raises(SystemExit, match="no width of the dense network fits"):
        evolution_targets.widest_within("dense", 1e3)


def test_reuse_takes_an_earlier_reports_networks_only_with_its_recipe(monkeypatch):
    import argparse

    from benchmarks import evolution_targets

    row = {"name": "evolution", "groups": [8] * 13, "width_multiplier": 0.5, "seeds": [0, 1],
           "top1": 0.85, "reused_from": "older"}
    fewer_seeds = {**row, "groups": [2] * 13, "seeds": [1]}
    del fewer_seeds["reused_from"]
    a_seed_not_asked = {**row, "groups": [1] * 13, "seeds": [0, 2]}
    monkeypatch.setattr(evolution_targets, "load", lambda name: {
        "epochs": 6, "deterministic": False,
        "models": [row, fewer_seeds, a_seed_not_asked]} if name == "old" else None)
    args = argparse.Namespace(epochs=6, deterministic=False, seeds=[0, 1])
    reused = evolution_targets.reusable_rows("old", args)
    assert list(reused) == [((8,) * 13, 0.5), ((2,) * 13, 0.5)]
    # a row the old report itself reused names where it was measured
    assert reused[(8,) * 13, 0.5] == {**row, "reused_from": "older", "reused_seeds": [0, 1]}
    assert reused[(2,) * 13, 0.5] == {**fewer_seeds, "reused_from": "old", "reused_seeds": [1]}
    with pytest.raises(SystemExit, match="it retrained 6 epochs .* this run 3"):
        evolution_targets.reusable_rows("old", argparse.Namespace(epochs=3, deterministic=False,
                                                                  seeds=[0, 1]))
    with pytest.raises(SystemExit, match="no benchmarks/results/missing.json"):
        evolution_targets.reusable_rows("missing", args)


def test_more_seeds_join_an_earlier_rows_in_seed_order():
    from benchmarks import evolution_targets

    earlier = {"name": "evolution", "seeds": [0, 2], "top1_per_seed": [0.80, 0.84],
               "run_dirs": ["r", "r-seed2"], "train_seconds": 10.0, "reused_from": "old",
               "reused_seeds": [0, 2], "binary_macs": 3}
    new = {"name": "evolution", "seeds": [1], "top1_per_seed": [0.90], "run_dirs": ["r-seed1"],
           "train_seconds": 4.0}
    row = evolution_targets.with_more_seeds(earlier, new, [0, 1, 2])
    assert row["seeds"] == [0, 1, 2]
    assert row["top1_per_seed"] == [0.80, 0.90, 0.84]
    assert row["run_dirs"] == ["r", "r-seed1", "r-seed2"]
    assert row["top1"] == pytest.approx((0.80 + 0.90 + 0.84) / 3)
    assert row["train_seconds"] == 14.0
    assert (row["reused_from"], row["reused_seeds"], row["binary_macs"]) == ("old", [0, 2], 3)
