"""The evolutionary search's LCE latency budget: the per-block table and its use."""

import json

import pytest

from search.evolution import latency
from search.evolution.space import LCE_CHANNELS_PER_GROUP, SearchSpace
from search.resume import CorruptSearchError
from tests.test_evolution import search_cli


def table_for(choices, base_ms=1.0):
    """A table whose block convolutions cost 1/g ms at g groups (more groups, faster)."""
    return {"threads": 1, "host": "test", "choices": choices,
            "base_groups": [c[0] for c in choices], "base_ms": base_ms,
            "block_ms": [{str(g): 1.0 / g for g in c} for c in choices]}


def test_estimate_is_the_base_network_adjusted_block_by_block():
    table = latency.LatencyTable(json.loads(json.dumps(table_for([[1, 2, 4], [2, 8]], 3.0))))
    assert table.estimate_ms([1, 2]) == pytest.approx(3.0)
    assert table.estimate_ms([4, 2]) == pytest.approx(3.0 - 1.0 + 0.25)
    assert table.estimate_ms([2, 8]) == pytest.approx(3.0 - 0.5 - 0.5 + 0.125)


def test_table_is_measured_once_per_directory_and_refused_for_another_space(tmp_path, monkeypatch):
    space = SearchSpace(channels_per_group=(8, 16))
    measured = []
    monkeypatch.setattr(latency, "measure_table",
                        lambda space, threads, log: measured.append(1) or table_for(space.choices))
    path = tmp_path / latency.TABLE_FILE
    first = latency.load_or_measure(space, path)
    again = latency.load_or_measure(space, path)
    assert len(measured) == 1 and again.table == first.table
    with pytest.raises(ValueError, match="another search space or thread count"):
        latency.load_or_measure(SearchSpace(channels_per_group=(16,)), path)
    with pytest.raises(ValueError, match="another search space or thread count"):
        latency.load_or_measure(space, path, threads=2)
    path.write_text("{ truncated")
    with pytest.raises(CorruptSearchError, match="delete it to measure"):
        latency.load_or_measure(space, path)


def test_a_space_of_group_convolutions_lce_cannot_run_is_refused_before_measuring():
    space = SearchSpace(channels_per_group=LCE_CHANNELS_PER_GROUP)
    with pytest.raises(ValueError, match=r"only its reference kernel runs: \[\(2, 2\)"):
        latency.measure_table(space, log=lambda message: None)


@pytest.mark.slow
def test_table_measures_every_block_convolution_in_lce():
    space = SearchSpace(channels_per_group=(16,))  # one choice per block: 13 convolutions
    table = latency.measure_table(space, threads=1, log=lambda message: None)
    assert [list(map(int, block)) for block in table["block_ms"]] == space.choices
    assert all(ms > 0 for block in table["block_ms"] for ms in block.values())
    # The whole network holds every block convolution plus the pointwise ones: it costs more
    # than its dearest block alone (a loose bound that load on the machine cannot upset).
    assert table["base_ms"] > max(ms for block in table["block_ms"] for ms in block.values())
    assert latency.LatencyTable(table).estimate_ms(table["base_groups"]) == table["base_ms"]


def test_a_latency_budget_rejects_slow_candidates_before_they_are_scored(tmp_path):
    out = tmp_path / "search"
    out.mkdir()
    choices = SearchSpace().choices
    table = table_for(choices)
    fastest = latency.LatencyTable(table).estimate_ms([max(c) for c in choices])
    slowest = latency.LatencyTable(table).estimate_ms([min(c) for c in choices])
    budget = fastest + 0.3 * (slowest - fastest)
    (out / latency.TABLE_FILE).write_text(json.dumps(table))  # as the chief measured it
    search_cli("--output-dir", str(out), "--budget-latency-ms", str(budget))
    rows = json.loads((out / "evolution_trials.json").read_text())
    assert rows and all(fastest <= r["latency_ms"] <= budget for r in rows)
    best = json.loads((out / "evolution_best.json").read_text())
    assert best["budget"] == {"latency_ms": budget} and best["latency_ms"] <= budget
    assert best["rejected_over_budget"] > 0  # the budget did bite


def test_measuring_picks_refuses_a_search_of_another_space():
    from benchmarks.evolution_latency_search import in_space

    space = SearchSpace()
    pick = {"model": space.model_name, "groups": [c[0] for c in space.choices]}
    assert in_space(space, pick)
    assert not in_space(space, {**pick, "model": "BinaryMobileNet"})
    assert not in_space(space, {**pick, "groups": [3] + pick["groups"][1:]})
    assert not in_space(space, {**pick, "groups": pick["groups"][:-1]})
