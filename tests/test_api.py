"""The public API: names, signatures, registry, bad input, larq summaries."""

import inspect
import subprocess
import sys
from pathlib import Path

import larq as lq
import pytest

import zoo
from zoo import build_model, get_record, list_models

ROOT = Path(__file__).resolve().parents[1]

SMALL = dict(input_shape=(32, 32, 3), num_classes=10)


def test_entry_points_are_keyword_only_and_build_their_model():
    model = zoo.BinaryDenseNet37Dilated(**SMALL)
    assert model.name == "BinaryDenseNet37Dilated"
    parameters = inspect.signature(zoo.BinaryDenseNet28).parameters.values()
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in parameters)
    with pytest.raises(TypeError):
        zoo.BinaryDenseNet28((32, 32, 3))


@pytest.mark.parametrize("spelling", ["binary_densenet28", "BINARYDENSENET28", "bdn28"])
def test_names_are_case_insensitive_and_accept_larq_zoo_spellings(spelling):
    assert build_model(spelling, **SMALL).name == "BinaryDenseNet28"


def test_unknown_name_lists_the_closest():
    with pytest.raises(ValueError, match="Did you mean: .*BinaryDenseNet28"):
        build_model("BinaryDenseNet29")


@pytest.mark.parametrize(
    "shape, message",
    [((32, 32), "rank 2"), ((0, 32, 3), "positive"), ((1, 1, 3), "minimum .* is 8")],
)
def test_bad_input_shapes(shape, message):
    with pytest.raises(ValueError, match=message):
        build_model("BinaryDenseNet28", input_shape=shape)


def test_num_classes_contradicting_weights_with_top():
    with pytest.raises(ValueError, match="1000 classes, but num_classes=10"):
        build_model("BinaryDenseNet28", weights="imagenet", num_classes=10)


def test_unknown_weights_name_lists_what_exists():
    with pytest.raises(ValueError, match="available: 'imagenet'"):
        build_model("BinaryDenseNet28", weights="cifar10")


def test_unknown_config_option():
    with pytest.raises(TypeError, match="no option \\['groups'\\]"):
        build_model("BinaryDenseNet28", groups=4)


def test_no_top_ends_in_features():
    model = build_model("BinaryDenseNet28", include_top=False, **SMALL)
    assert len(model.output_shape) == 4


@pytest.mark.slow
def test_every_registered_model_has_a_larq_summary_and_its_generated_docs_row(monkeypatch):
    """`python -m zoo list --markdown` (run in process: a subprocess would only add
    TensorFlow's start-up time) prints exactly docs/models.md; larq's summary works on every
    model it built. One build per model serves both checks."""
    import contextlib
    import io

    from zoo import registry
    from zoo.__main__ import main

    built, build = {}, registry.build_model

    def build_and_keep(name, **kwargs):
        built[name] = build(name, **kwargs)
        return built[name]

    monkeypatch.setattr(registry, "build_model", build_and_keep)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["list", "--markdown"])
    generated = printed.getvalue()
    assert "| BinaryDenseNet28 |" in generated
    assert generated.strip() in (ROOT / "docs" / "models.md").read_text(), (
        "docs/models.md is stale: run `make docs`."
    )
    records = list_models()
    assert {r.family for r in records} >= {"BinaryDenseNet"}
    assert sorted(built) == sorted(r.name for r in records)
    for name, model in built.items():
        lines = []
        lq.models.summary(model, print_fn=lines.append)
        text = "\n".join(lines)
        assert "Total params" in text and "Model size" in text, name


def _docs_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    return generate


def test_benchmark_docs_are_generated_from_the_committed_results():
    """docs/benchmarks.md holds no number typed by hand: it is what the results render to."""
    generate = _docs_generator()
    assert generate.benchmarks_markdown() == (ROOT / "docs" / "benchmarks.md").read_text(), (
        "docs/benchmarks.md is stale: run `make docs`.")


def test_retraining_noise_lists_a_configuration_retrained_in_two_separate_runs():
    def report(per_seed, run):
        return {"epochs": 6, "models": [{"groups": [2, 4], "width_multiplier": 0.5,
                                         "seeds": [0, 1], "top1_per_seed": per_seed,
                                         "run_dirs": [run]}]}

    section = _docs_generator().retraining_noise_section
    assert section([report([0.8, 0.9], "a"), report([0.8, 0.9], "copy-of-a")]) == []
    lines = section([report([0.8, 0.9], "a"), report([0.81, 0.88], "b")])
    assert lines[-1].endswith("| +1.00, -2.00; mean -0.50 |")
    lines = section([report([0.8, 0.9], "a"), report([0.81, 0.88], "b"),
                     report([0.79, 0.9], "c")])  # each repeat against the first run
    assert lines[-2].endswith("| +1.00, -2.00; mean -0.50 |")
    assert lines[-1].endswith("| -1.00, +0.00; mean -0.50 |")


def test_evolution_summary_lists_a_comparison_with_the_baselines_alone():
    """A report that retrained no random pick (more seeds for the evolved network and one
    baseline) still gets its row, with its paired gap; one of the evolved network alone
    (a repeat run) does not."""
    def row(name, groups, per_seed, macs):
        return {"name": name, "groups": groups, "width_multiplier": 0.5, "seeds": [0, 1, 2],
                "top1_per_seed": per_seed, "top1": sum(per_seed) / 3, "binary_macs": macs}

    evolved = row("evolution", [8, 16], [0.86, 0.85, 0.86], 3.6e6)
    report = {"epochs": 6, "budget": {"binary_macs": 4e6}, "models": [
        evolved, {**row("dense-equal", [1, 1], [0.85, 0.85, 0.85], 3.7e6),
                  "reused_from": "old", "reused_seeds": [0, 1]}],
        "search": {"trials": 60}, "random_search": {"name": "random", "budget": {}}}
    repeat = {**report, "models": [evolved]}
    lines = _docs_generator().evolution_summary_section([report, repeat])
    rows = [line for line in lines if line.startswith("| evolution")]
    assert len(rows) == 1
    assert "| not retrained | none |" in rows[0]
    assert "| 3.70, 85.00, +0.67 ± 0.33 |" in rows[0]
    assert "not retrained again: dense-equal (seeds 0, 1)." in _docs_generator()._reused(
        report["models"])
    floored = {**report, "models": [evolved, row("random-floor", [1, 16], [0.85, 0.85, 0.85], 3.7e6)],
               "random_search": {"name": "random-floor", "budget": {"binary_macs": 4e6},
                                 "floor": {"binary_macs": 3.6e6}, "own_supernet": True}}
    [floored_row] = [line for line in _docs_generator().evolution_summary_section([floored])
                     if line.startswith("| evolution")]
    assert ("| 3.70, 85.00 (random-floor, under 4M binary MACs, at 3.6M binary MACs or above "
            "(--floor-macs), scored on its own supernet of the same recipe) | +0.67 ± 0.33 |"
            ) in floored_row


def test_import_after_keras3_tensorflow_explains_the_fix():
    code = (
        "import os; os.environ.pop('TF_USE_LEGACY_KERAS', None)\n"
        "import tensorflow as tf; tf.keras.layers.Layer\n"
        "import zoo\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "TF_USE_LEGACY_KERAS=1" in result.stderr


def test_zoo_info_prints_the_record_and_larqs_summary(capsys):
    """`python -m zoo info NAME --summary`: the model card comes from the registry record
    (weights file, SHA-256, metrics) and the summary from larq; a typo is a usage error."""
    from zoo.__main__ import main

    record = get_record("BinaryDenseNetTiny")
    weights = record.weights["fashion_mnist"]
    main(["info", "binarydensenettiny", "--summary"])
    printed = capsys.readouterr().out
    assert printed.startswith("BinaryDenseNetTiny  (")
    assert weights.top.sha256 in printed and weights.source in printed
    assert f"top1 {weights.metrics['top1']:.2f}%" in printed
    assert "Ratio of MACs that are binarized" in printed  # larq's summary
    with pytest.raises(SystemExit):
        main(["info", "BinaryDenseNetTinny"])
    assert "Did you mean: BinaryDenseNetTiny" in capsys.readouterr().err


def test_list_models_filters_by_pattern_family_and_pretrained_weights():
    names = [r.name for r in list_models("binarydensenet3*")]
    assert names == ["BinaryDenseNet37", "BinaryDenseNet37Dilated"], names
    assert {r.family for r in list_models(family="UBNAS")} == {"UBNAS"}
    assert {r.name for r in list_models(pretrained="fashion_mnist")} == {
        r.name for r in list_models() if "fashion_mnist" in r.weights}
    with_any = list_models(pretrained=True)
    assert 0 < len(with_any) < len(list_models()) and all(r.weights for r in with_any)
    assert list_models("*Dilated*", pretrained="imagenet")[0].name == "BinaryDenseNet37Dilated"
    with pytest.raises(ValueError, match="Unknown family 'Resnet'; families: "):
        list_models(family="Resnet")


def test_zoo_list_refuses_a_filter_that_matches_nothing(capsys):
    from zoo.__main__ import main

    with pytest.raises(SystemExit):
        main(["list", "NoSuchNet*"])
    assert "no registered model matches" in capsys.readouterr().err
