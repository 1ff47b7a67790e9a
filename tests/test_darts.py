"""Differentiable binary search (UBNAS): operations, supernet, derivation, stopping."""


import json
import sys
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from search.darts import costs, supernet as darts
from search.darts.early_stopping import EarlyStopping
from search.darts.search import BilevelSearch, DartsConfig
from tests.conftest import run_chief_and_workers
from zoo.models import ubnas

ROOT = Path(__file__).resolve().parents[1]

GENOTYPE = {
    "normal": [["bconv_3x3", 0], ["skip_connect", 1], ["dil_bconv_3x3", 0], ["bconv_5x5", 2],
               ["avg_pool_3x3", 1], ["bconv_3x3", 3], ["max_pool_3x3", 0], ["dil_bconv_5x5", 4]],
    "reduce": [["bconv_5x5", 0], ["max_pool_3x3", 1], ["dil_bconv_5x5", 2], ["bconv_3x3", 0],
               ["skip_connect", 2], ["avg_pool_3x3", 3], ["bconv_3x3", 1], ["dil_bconv_3x3", 4]],
}


def test_approx_sign_gradient():
    x = tf.constant([-2, -1, -0.5, 0, 0.25, 0.5, 1, 2], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = lq.quantizers.approx_sign(x)
    np.testing.assert_allclose(tape.gradient(y, x), [0, 0, 1, 2, 1.5, 1, 0, 0])
    np.testing.assert_array_equal(y, [-1, -1, -1, 1, 1, 1, 1, 1])


def test_softmax_alpha_rows_and_node_beta_sum_to_one():
    arch = darts.ArchitectureParameters(seed=3)
    arch.beta["normal"].assign(tf.random.normal((darts.EDGES,)))
    for cell_type in darts.CELL_TYPES:
        rows = tf.nn.softmax(arch.alpha[cell_type])
        np.testing.assert_allclose(tf.reduce_sum(rows, -1), np.ones(darts.EDGES), rtol=1e-6)
        start = 0
        for node in range(ubnas.NODES):
            weights = darts.NodeSoftmax(arch, cell_type, start, node + 2).weights_row()
            assert weights.shape == (node + 2,)
            np.testing.assert_allclose(float(tf.reduce_sum(weights)), 1.0, rtol=1e-6)
            start += node + 2


@pytest.mark.parametrize("channels, groups", [(8, 2), (12, 3), (16, 4)])
def test_channel_shuffle_is_a_permutation_and_inverts(channels, groups):
    x = tf.reshape(tf.range(2 * 3 * 3 * channels, dtype=tf.float32), (2, 3, 3, channels))
    shuffled = darts.channel_shuffle(x, groups)
    assert sorted(shuffled[0, 0, 0].numpy()) == sorted(x[0, 0, 0].numpy())
    assert not np.array_equal(shuffled, x)
    np.testing.assert_array_equal(darts.channel_shuffle(shuffled, channels // groups), x)


def test_partial_channel_mixed_op_with_k1_is_the_plain_mixed_op():
    arch = darts.ArchitectureParameters(seed=1)
    arch.alpha["normal"].assign(tf.random.normal(arch.alpha["normal"].shape))
    inputs = tf.keras.Input((8, 8, 8))
    mixed = darts.mixed_edge(inputs, 8, 1, 1, arch, "normal", 5)
    weighted_sum = mixed.node.layer
    branches = tf.keras.Model(inputs, weighted_sum.input)  # each operation's output
    x = tf.random.normal((2, 8, 8, 8), seed=2)
    outputs = branches(x)
    weights = tf.nn.softmax(arch.alpha["normal"][5]).numpy()
    plain = sum(weights[k + 1] * out for k, out in enumerate(outputs))  # "none" adds 0
    np.testing.assert_allclose(tf.keras.Model(inputs, mixed)(x), plain, atol=1e-5)


def _random_arch(seed):
    arch = darts.ArchitectureParameters(seed=seed)
    rng = np.random.default_rng(seed)
    for c in darts.CELL_TYPES:
        arch.alpha[c].assign(rng.normal(size=arch.alpha[c].shape) * 3)
        arch.beta[c].assign(rng.normal(size=arch.beta[c].shape) * 3)
    return arch


def test_derived_genotypes_have_two_distinct_earlier_inputs_and_no_none():
    for seed in range(20):
        genotype = darts.derive_genotype(_random_arch(seed))
        for cell_type in darts.CELL_TYPES:
            edges = genotype[cell_type]
            assert len(edges) == 2 * ubnas.NODES
            for node in range(ubnas.NODES):
                sources = [s for _, s in edges[2 * node:2 * node + 2]]
                assert len(set(sources)) == 2 and all(0 <= s < node + 2 for s in sources)
            assert all(op in ubnas.OPERATIONS for op, _ in edges)


def test_none_is_never_picked_even_when_strongest():
    arch = _random_arch(0)
    for c in darts.CELL_TYPES:
        alpha = np.zeros(arch.alpha[c].shape, np.float32)
        alpha[:, 0] = 10.0  # "none" dominates every edge
        alpha[:, 4] = 1.0
        arch.alpha[c].assign(alpha)
    genotype = darts.derive_genotype(arch)
    assert all(op == arch.primitives[4] for c in darts.CELL_TYPES for op, _ in genotype[c])


def test_a_search_over_grouped_operations_mixes_and_derives_them():
    """--operations adds alpha columns; a grouped operation is larq's group convolution
    with half the weights of its full one, and can win an edge."""
    operations = (*ubnas.EBNAS_OPERATIONS, *ubnas.GROUPED_OPERATIONS)
    arch = darts.ArchitectureParameters(seed=0, operations=operations)
    assert arch.alpha["normal"].shape == (darts.EDGES, 1 + len(operations))
    winner = arch.primitives.index("bconv_5x5_g2")
    for c in darts.CELL_TYPES:
        alpha = np.zeros(arch.alpha[c].shape, np.float32)
        alpha[:, winner] = 1.0
        arch.alpha[c].assign(alpha)
    genotype = darts.derive_genotype(arch)
    assert {op for c in darts.CELL_TYPES for op, _ in genotype[c]} == {"bconv_5x5_g2"}

    inputs = tf.keras.Input((8, 8, 16))
    mixed = darts.mixed_edge(inputs, 16, 1, 2, arch, "normal", 0)  # 8 of 16 channels mixed
    convs = [l for l in tf.keras.Model(inputs, mixed).layers
             if isinstance(l, lq.layers.QuantConv2D)]
    assert sorted((l.groups, tuple(l.kernel.shape)) for l in convs if l.kernel_size == (5, 5)
                  and l.dilation_rate == (1, 1)) == [(1, (5, 5, 8, 8)), (2, (5, 5, 4, 8))]


@pytest.mark.parametrize("operations, error", [
    (("bconv_3x3", "none"), "distinct names"),
    (("bconv_3x3", "conv_7x7"), "distinct names"),
    (("bconv_3x3", "bconv_3x3"), "distinct names"),
])
def test_unknown_or_repeated_search_operations_are_refused(operations, error):
    with pytest.raises(ValueError, match=error):
        darts.ArchitectureParameters(operations=operations)


def test_a_grouped_operation_on_an_odd_channel_count_says_what_to_change():
    with pytest.raises(ValueError, match="divisible by 2, got 3"):
        ubnas.OPERATIONS["bconv_3x3_g2"](tf.keras.Input((8, 8, 3)), 3, 1)


def _genotype_with_free_ops(count):
    normal = [list(e) for e in GENOTYPE["normal"]]
    convs = [e for e in normal if e[0] not in ubnas.PARAMETER_FREE]
    frees = [e for e in normal if e[0] in ubnas.PARAMETER_FREE]
    for edge in frees[count:]:
        edge[0] = "bconv_3x3"
    for edge in convs[: max(0, count - len(frees))]:
        edge[0] = "skip_connect"
    return {"normal": normal, "reduce": GENOTYPE["reduce"]}


def test_early_stopping_on_parameter_free_collapse_not_one_epoch_early():
    stopper = EarlyStopping(max_parameter_free=2, patience=None)
    assert stopper.update(_genotype_with_free_ops(0)) is None
    assert stopper.update(_genotype_with_free_ops(1)) is None
    assert "2 parameter-free" in stopper.update(_genotype_with_free_ops(2))


def test_early_stopping_on_a_stable_genotype_not_one_epoch_early():
    stopper = EarlyStopping(max_parameter_free=None, patience=3)
    a, b = _genotype_with_free_ops(0), _genotype_with_free_ops(1)
    trace = [a, b, b, b]  # b unchanged for 2 epochs after it appears: not yet
    assert [stopper.update(g) for g in trace] == [None] * 4
    assert "unchanged for 3 epochs" in stopper.update(b)


def test_plain_darts_settings_never_stop_early():
    stopper = EarlyStopping(max_parameter_free=None, patience=None)
    assert all(stopper.update(_genotype_with_free_ops(4)) is None for _ in range(10))


@pytest.fixture(scope="module")
def tiny_search():
    config = DartsConfig(epochs=2, batch_size=16, layers_count=3, channels=8, k_normal=4,
                         k_reduce=2, warmup_epochs=1)
    return BilevelSearch(config, (16, 16, 1), 10)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.random((16, 16, 16, 1), np.float32)),
            tf.constant(rng.integers(0, 10, 16), tf.int64))


def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_architecture_step_leaves_weights_and_weight_step_leaves_alpha_beta(tiny_search):
    s = tiny_search
    weights, arch = _values(s.weight_variables), _values(s.arch_variables)
    s._step(*_batch(1), s.arch_variables, s.arch_optimizer)
    assert all(np.array_equal(a, b) for a, b in zip(weights, _values(s.weight_variables)))
    assert any(not np.array_equal(a, b) for a, b in zip(arch, _values(s.arch_variables)))
    arch = _values(s.arch_variables)
    s._step(*_batch(2), s.weight_variables, s.weight_optimizer)
    assert all(np.array_equal(a, b) for a, b in zip(arch, _values(s.arch_variables)))
    assert any(not np.array_equal(a, b) for a, b in zip(weights, _values(s.weight_variables)))


@pytest.mark.slow
def test_search_resumes_from_its_epoch_checkpoint(tmp_path, eager_functions, monkeypatch):
    """A cost-aware search: its operations are priced once, and the resumed search keeps
    the recorded prices (a new measurement would change its objective mid-search)."""
    rng = np.random.default_rng(0)
    data = (rng.random((32, 16, 16, 1), np.float32), rng.integers(0, 10, 32))
    measured = []

    def measure(operations, channels, size):
        measured.append((channels, size))
        return {name: (index + 1) / len(operations) for index, name in enumerate(operations)}

    monkeypatch.setattr(costs, "measure", measure)
    # One cell, and architecture steps only in the resumed epoch: each step is traced once.
    config = DartsConfig(epochs=1, batch_size=16, layers_count=1, channels=8, warmup_epochs=1,
                         max_parameter_free=None, patience=None, cost_weight=0.5,
                         cost_channels=12, stem_strides=2)
    first = BilevelSearch(config, (16, 16, 1), 10).run(data, data, tmp_path, log=lambda m: None)
    assert len(first["epochs"]) == 1 and measured == [(12, 8)]
    config.epochs = 2
    messages = []
    second = BilevelSearch(config, (16, 16, 1), 10).run(data, data, tmp_path, log=messages.append)
    assert messages[0] == "darts: resumed after epoch 1"
    assert measured == [(12, 8)] and second["operation_costs"] == first["operation_costs"]
    assert [e["epoch"] for e in second["epochs"]] == [1, 2]
    assert second["epochs"][0] == first["epochs"][0]
    assert [e["arch_updates"] for e in second["epochs"]] == [False, True]
    genotype, prices = second["epochs"][1]["genotype"], second["operation_costs"]
    assert second["epochs"][1]["genotype_cost"]["normal"] == pytest.approx(
        np.mean([prices[op] for op, _ in genotype["normal"]]))


def test_the_cost_term_moves_alpha_between_binary_convolutions_only():
    """From expensive to cheap binary convolutions; "none" and the parameter-free
    operations are not priced (pricing them collapsed a search into pooling cells)."""
    arch = darts.ArchitectureParameters(seed=0)
    priced = costs.priced_operations(arch.primitives)
    assert priced == ["bconv_3x3", "bconv_5x5", "dil_bconv_3x3", "dil_bconv_5x5"]
    prices = {name: 0.01 for name in ubnas.PARAMETER_FREE}
    prices.update({name: (index + 1) / len(priced) for index, name in enumerate(priced)})
    with tf.GradientTape() as tape:
        cost = costs.expected_cost(arch, prices, normal_fraction=0.6)
    # alpha ~ 0: every operation about equally likely, so the expected cost is the mean price
    assert float(cost) == pytest.approx(np.mean([prices[name] for name in priced]), abs=1e-2)
    gradient = tape.gradient(cost, arch.alpha["normal"]).numpy()
    columns = [arch.primitives.index(name) for name in priced]
    unpriced = [i for i in range(len(arch.primitives)) if i not in columns]
    assert np.all(np.abs(gradient[:, unpriced]) < 1e-6)
    assert np.all(gradient[:, columns[0]] < 0) and np.all(gradient[:, columns[-1]] > 0)
    assert np.all(np.diff(gradient[:, columns], axis=1) > 0)  # descent: cheap ones up
    normal_only = costs.expected_cost(arch, prices, normal_fraction=1.0)
    assert float(normal_only) == pytest.approx(float(cost), abs=1e-2)


def test_measured_operation_prices_name_every_operation_relative_to_the_slowest():
    operations = ("skip_connect", "max_pool_3x3", "bconv_3x3")
    prices = costs.measure(operations, channels=8, size=8, batch=4, repeats=1)
    assert set(prices) == set(operations) and max(prices.values()) == 1.0
    assert all(0 < price <= 1 for price in prices.values())


def test_genotype_network_builds_and_bad_genotypes_are_named():
    model = ubnas.ubnas(input_shape=(28, 28, 1), num_classes=10, include_top=True, name="u",
                        genotype=GENOTYPE, layers_count=3, channels=8)
    assert model.output_shape == (None, 10)
    unknown = {**GENOTYPE, "normal": [["conv_7x7", 0]] + GENOTYPE["normal"][1:]}
    with pytest.raises(ubnas.GenotypeError, match="unknown operation 'conv_7x7'"):
        ubnas.validate_genotype(unknown)
    impossible = {**GENOTYPE, "normal": GENOTYPE["normal"][:2] + [["bconv_3x3", 3]] + GENOTYPE["normal"][3:]}
    with pytest.raises(ubnas.GenotypeError, match="impossible: node 1 can only take inputs 0..2"):
        ubnas.validate_genotype(impossible)


def test_ubnas_entry_point_takes_any_genotype_and_a_strided_stem():
    import zoo

    model = zoo.UBNAS(genotype=GENOTYPE, layers=3, channels=8, stem_strides=2)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    stem = next(layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D))
    assert stem.strides == (2, 2)
    with pytest.raises(ubnas.GenotypeError, match="needs genotype="):
        zoo.UBNAS(genotype=None)


def test_ubnas_prelus_follow_every_binary_module_and_start_as_the_identity():
    from zoo import layers

    def build(**config):  # features, not softmax: an untrained softmax can saturate
        return ubnas.ubnas(input_shape=(28, 28, 1), num_classes=10, include_top=False,
                           name="u", genotype=GENOTYPE, layers_count=3, channels=8, **config)

    plain, with_prelus = build(), build(residual_activation="prelu")
    prelus = [l for l in with_prelus.layers if isinstance(l, tf.keras.layers.PReLU)]
    binary_convs = [l for l in with_prelus.layers if isinstance(l, layers.BinaryConv2D)]
    assert len(prelus) == len(binary_convs) > 0
    others = [l for l in with_prelus.layers if l.weights and l not in prelus]
    for source, target in zip([l for l in plain.layers if l.weights], others, strict=True):
        target.set_weights(source.get_weights())
    images = np.random.default_rng(0).standard_normal((4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(with_prelus(images), plain(images), atol=1e-5)
    for prelu in prelus:
        prelu.set_weights([np.full_like(w, 0.25) for w in prelu.get_weights()])
    assert not np.allclose(with_prelus(images), plain(images), atol=1e-3)
    with pytest.raises(ValueError, match="residual_activation='relu' is not one of"):
        build(residual_activation="relu")


def test_a_search_result_registers_as_a_named_ubnas_model(tmp_path, monkeypatch):
    from training import package
    from zoo import registry

    monkeypatch.setattr(registry, "SEARCHED_FILE", tmp_path / "searched.json")
    result = tmp_path / "darts_genotype.json"
    result.write_text(json.dumps({
        "genotype": GENOTYPE, "epochs_run": 3, "stopped": None, "cpu_seconds": 12.0,
        "config": {"layers_count": 3, "channels": 8, "k_normal": 4, "k_reduce": 2,
                   "stem_strides": 2}}))
    package.main(["--genotype", str(result), "--name", "UBNAS-Test", "--layers", "3",
                  "--channels", "8"])
    entry = json.loads((tmp_path / "searched.json").read_text())[0]
    assert entry["config"] == {"genotype": GENOTYPE, "layers_count": 3, "channels": 8,
                               "stem_strides": 2}
    registry.register_searched("UBNAS")  # as package.py does: the zoo knows the template
    try:
        record = registry.get_record("ubnas-test")
        assert record.family == "UBNAS" and "K=4/2" in record.paper
        assert registry.build_model("UBNAS-Test").output_shape == (None, 10)
    finally:
        registry._REGISTRY.pop("UBNAS-Test")
        registry._LOOKUP.pop(registry._key("UBNAS-Test"))


# Eager: at this size tracing the supernet costs more than running it.
DARTS_CLI = [sys.executable, "-m", "search", "darts", "--eager", "--layers", "1", "--channels",
             "8", "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "16",
             "--train-examples", "32", "--val-examples", "32", "--score-epochs", "1",
             "--trials", "1"]


def test_a_darts_search_resumed_with_other_settings_is_refused(tmp_path, stop_at_data):
    from search.__main__ import parser
    from search.darts.tuner import run_darts
    from search.resume import CorruptSearchError

    def run(*flags):
        run_darts(parser().parse_args(DARTS_CLI[3:] + ["--output-dir", str(tmp_path), *flags]))

    with pytest.raises(stop_at_data):
        run()
    with pytest.raises(stop_at_data):
        run()  # the same settings resume
    with pytest.raises(CorruptSearchError, match=r"patience.*another --output-dir"):
        run("--patience", "7")
    with pytest.raises(CorruptSearchError, match="vary_hyperparameters"):
        run("--trials", "3")  # more than one trial varies K and the architecture rate
    assert json.loads((tmp_path / "darts" / "settings.json").read_text())["patience"] != 7


@pytest.mark.slow
def test_darts_trial_runs_on_a_keras_tuner_worker(tmp_path):
    """keras-tuner's distributed mode on 127.0.0.1: the chief serves, the worker searches."""
    out = tmp_path / "darts"
    run_chief_and_workers(DARTS_CLI + ["--output-dir", str(out)], ROOT, workers=1)
    results = [json.loads(p.read_text()) for p in out.glob("darts/trial_*/result.json")]
    assert [r["tuner_id"] for r in results] == ["tuner0"]
    ubnas.validate_genotype(results[0]["genotype"])
    best = json.loads((out / "darts_genotype.json").read_text())
    assert best["genotype"] == results[0]["genotype"]
