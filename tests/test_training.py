"""The training CLI end to end on real data: ImageNet JPEGs, Fashion-MNIST, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
import tensorflow as tf

from tests.conftest import SAMPLES
from tests.imagenet_manual import build_manual_dir
from training import datasets, train

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "training" / "train.py")]


def _run(args, env=None, **kwargs):
    return subprocess.run(TRAIN + args, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, **kwargs)


def _metrics(output_dir):
    return json.loads((Path(output_dir) / "metrics.json").read_text())


@pytest.mark.slow
def test_imagenet_through_the_real_tfds_builder(tmp_path):
    manual = build_manual_dir(tmp_path / "manual", train_images=8, val_images=4)
    out = tmp_path / "run"
    result = _run(
        ["imagenet", "--model", "BinaryDenseNet28", "--data-dir", str(manual),
         "--epochs", "1", "--batch-size", "4", "--output-dir", str(out)],
        env={"TFDS_DATA_DIR": str(tmp_path / "tfds")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _metrics(out)
    assert metrics["input_shape"] == [224, 224, 3] and metrics["preprocessing"] == "imagenet"
    assert metrics["epochs"][0]["optimizer_step"] == 2  # 8 images / batch 4
    assert 0.0 <= metrics["final"]["top1"] <= 1.0
    assert (out / "final.h5").exists() and (out / "curves.png").exists()


@pytest.mark.parametrize("training", [True, False])
def test_grayscale_jpegs_decode_to_three_channels(training):
    import tensorflow as tf

    gray = [p for p in sorted(SAMPLES.glob("*.JPEG"))
            if tf.io.decode_jpeg(p.read_bytes()).shape[-1] == 1]
    assert len(gray) == 23
    dataset = tf.data.Dataset.from_tensor_slices(
        {"image": [p.read_bytes() for p in gray[:2]], "label": [0, 1]}
    )
    spec = datasets.get_spec("imagenet")
    images, _ = next(iter(datasets.pipeline(dataset, spec, training=training, batch_size=2)))
    assert images.shape == (2, 224, 224, 3)


TEST_EXAMPLES = 2000  # the one-epoch run's test images, for every check of it


@pytest.mark.slow
def test_fashion_mnist_one_epoch_learns(tmp_path):
    """One epoch on 12,000 real training images, scored on the first 2,000 test images.

    Chance is 10%; the threshold of 70% cannot be met without learned features (a
    linear classifier on raw pixels needs full-data training to pass ~80%). Every later
    check scores those same 2,000 images (evaluate.py is checked in test_shipped_weights).
    """
    out = tmp_path / "run"
    result = _run(["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1",
                   "--train-examples", "12000", "--test-examples", str(TEST_EXAMPLES),
                   "--output-dir", str(out), "--export-tflite"])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _metrics(out)
    assert metrics["final"]["top1"] >= 0.70, metrics["final"]
    assert metrics["tflite"]["bytes"] == (out / "BinaryDenseNetTiny.tflite").stat().st_size > 0
    assert metrics["tflite"]["lce_agreement"] >= 0.99, metrics["tflite"]  # checked on 1000
    _check_packaging(out, metrics, tmp_path)
    _check_fine_tuning(out, metrics, tmp_path)


def _check_fine_tuning(run_dir, metrics, tmp_path):
    """--init-weights starts from a run's weights: at a negligible rate, the first epoch
    scores what the source run scored (a fresh network scores near chance)."""
    args = train.parse_args([
        "fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1", "--lr", "1e-12",
        "--train-examples", "640", "--test-examples", str(TEST_EXAMPLES),
        "--output-dir", str(tmp_path / "fine-tuned"),
        "--init-weights", str(run_dir / "final.h5"), "--augmentation", "pad_crop_flip"])
    summary = train.run(args)
    assert summary["recipe"]["augmentation"] == "pad_crop_flip"
    assert summary["init_weights"]["sha256"] == metrics["final"]["sha256"]
    assert abs(summary["final"]["top1"] - metrics["final"]["top1"]) < 0.02
    # Its shipped record would reproduce both runs, the source first.
    from training.package import lineage

    assert [m["command"] for m in lineage(summary)] == [metrics["command"], summary["command"]]


def test_lineage_continues_shipped_weights(tmp_path):
    """A fine-tune of shipped weights: its record reproduces theirs, then itself."""
    from training.package import lineage
    from zoo import weights as weights_io

    shipped = tmp_path / "Net-fashion_mnist.h5"
    shipped.write_bytes(b"weights")
    first, second, third = ({"epochs": n} for n in (13, 5, 4))
    earlier_teacher, teacher = {"teacher": "T1"}, {"teacher": "T2", "weights_sha256": "ab"}
    record = {"sha256": weights_io.sha256_of(shipped), "command": "train A && train B",
              "epochs": 18, "train_seconds": 100.0, "recipe": second, "recipes": [first, second],
              "distillation": [earlier_teacher]}
    shipped.with_suffix(".json").write_text(json.dumps(record))
    fine_tune = {"command": "train C", "epochs": [{}] * 4, "wall_time_seconds": 7.0,
                 "recipe": third, "init_weights": {"path": str(shipped), "sha256": record["sha256"]},
                 "distillation": teacher}
    steps = lineage(fine_tune)
    assert [s["command"] for s in steps] == ["train A && train B", "train C"]
    assert [s["epochs"] for s in steps] == [18, 4] and [s["seconds"] for s in steps] == [100.0, 7.0]
    assert [r for s in steps for r in s["recipes"]] == [first, second, third]
    assert [s["distillation"] for s in steps] == [[earlier_teacher], [teacher]]
    shipped.write_bytes(b"weights of a later release")
    shipped.with_suffix(".json").write_text(json.dumps({**record, "sha256": weights_io.sha256_of(shipped)}))
    with pytest.raises(SystemExit, match="restore that record"):
        lineage(fine_tune)


def test_wrong_init_weights_or_an_unknown_model_option_is_refused(tmp_path, capsys):
    from zoo import weights as weights_io

    other = str(weights_io.PACKAGE_WEIGHTS_DIR / "UBNAS-A-fashion_mnist.h5")
    with pytest.raises(SystemExit, match="do not fit BinaryDenseNetTiny"):
        train.main(["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1",
                    "--train-examples", "256", "--output-dir", str(tmp_path / "run"),
                    "--init-weights", other])
    with pytest.raises(SystemExit, match="has no option \\['bogus'\\]"):
        train.main(["fashion_mnist", "--model", "BinaryDenseNetTiny", "--model-config",
                    '{"bogus": 1}', "--output-dir", str(tmp_path / "bogus")])
    assert not (tmp_path / "bogus").exists()
    with pytest.raises(SystemExit):  # argparse's error, before any output is written
        train.parse_args(["fashion_mnist", "--init-weights", str(tmp_path / "missing.h5")])
    assert "missing.h5: no such file" in capsys.readouterr().err


def _check_packaging(run_dir, metrics, tmp_path):
    """package() ships the run: the registry finds it, raw uint8 images classify as in training."""
    import dataclasses

    from training.package import package
    from zoo import build_model, registry, weights as weights_io

    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(weights_io, "PACKAGE_WEIGHTS_DIR", weights_dir)
        entry = json.loads(package(run_dir).read_text())
        assert entry["sha256"] == weights_io.sha256_of(weights_dir / entry["file"])
        assert entry["top1"] == metrics["final"]["top1"] and entry["command"] == metrics["command"]
        shipped = registry.shipped_weights("BinaryDenseNetTiny")
        assert shipped["fashion_mnist"].metrics["top1"] == 100 * entry["top1"]
        record = registry.get_record("BinaryDenseNetTiny")
        patch.setitem(registry._REGISTRY, record.name, dataclasses.replace(record, weights=shipped))
        model = build_model("BinaryDenseNetTiny", weights="fashion_mnist")
        images, labels = datasets.idx_arrays(datasets.find_fashion_mnist(None), "test")
        images, labels = images[:TEST_EXAMPLES], labels[:TEST_EXAMPLES]
        accuracy = np.mean(np.argmax(model.predict(images, batch_size=1000, verbose=0), -1) == labels)
        # The in-model preprocessing rounds like the pipeline's up to float32 order of
        # operations: at most one borderline image may flip.
        assert abs(accuracy - metrics["final"]["top1"]) <= 1 / len(labels) + 1e-6

        # Re-packaging keeps the float twin's result recorded with the same network.
        path = weights_dir / f"{entry['model']}-fashion_mnist.json"
        path.write_text(json.dumps({**entry, "float_twin": {"top1": 0.5, "top5": 0.9}}))
        assert json.loads(package(run_dir).read_text())["float_twin"] == {"top1": 0.5, "top5": 0.9}

        # A run of another configuration than the record's is refused, not shipped.
        other = tmp_path / "other-run"
        other.mkdir()
        key = next(iter(registry.get_record("BinaryDenseNetTiny").config))
        (other / "metrics.json").write_text(json.dumps({**metrics, "model_config": {key: "other"}}))
        with pytest.raises(SystemExit, match="ship it under a new name"):
            package(other)

        # A run that spells out the record's own configuration (its tuples as JSON lists,
        # as --model-config gives them) trained the record's network: it ships.
        explicit = tmp_path / "explicit-run"
        explicit.mkdir()
        (explicit / "final.h5").symlink_to(run_dir / "final.h5")
        config = json.loads(json.dumps(registry.get_record("BinaryDenseNetTiny").config))
        (explicit / "metrics.json").write_text(json.dumps({**metrics, "model_config": config}))
        assert json.loads(package(explicit).read_text())["model_config"] == config

        # `package.py --name` of a variant the code defines ships under it, and leaves
        # searched.json (the searches' configurations) alone.
        from training.package import main as package_main

        searched = tmp_path / "searched.json"
        patch.setattr(registry, "SEARCHED_FILE", searched)
        (weights_dir / f"{entry['model']}-fashion_mnist.json").unlink()
        package_main([str(run_dir), "--name", "binary_densenet_tiny"])
        assert not searched.exists()
        with pytest.raises(SystemExit):  # provenance of a code-defined variant is its code
            package_main([str(run_dir), "--name", "BinaryDenseNetTiny", "--found-by", "a search"])
        shipped_again = json.loads(path.read_text())
        assert shipped_again["top1"] == entry["top1"] and shipped_again["model_config"] == {}
        assert shipped_again["sha256"] == weights_io.sha256_of(weights_dir / entry["file"])


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_the_last_complete_epoch(tmp_path):
    out = tmp_path / "run"
    train_examples, batch_size = 1920, 64
    args = ["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "3",
            "--batch-size", str(batch_size), "--train-examples", str(train_examples),
            "--test-examples", "500",
            "--validation-freq", "2", "--output-dir", str(out)]
    process = subprocess.Popen(TRAIN + args, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "metrics.json").exists() and len(_metrics(out)["epochs"]) >= 1:
            break
        time.sleep(0.2)
    time.sleep(2.0)  # well inside epoch 2 (an epoch takes several seconds)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    completed = len(_metrics(out)["epochs"])
    assert completed in (1, 2)

    with pytest.raises(SystemExit, match="already holds a run. Pass --resume"):
        train.main(args)  # in process: the refusal comes before TensorFlow does any work

    resumed = _run(args + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Epoch {completed + 1}/3" in resumed.stdout + resumed.stderr
    assert f"Epoch {completed}/3" not in resumed.stdout + resumed.stderr
    epochs = _metrics(out)["epochs"]
    steps = train_examples // batch_size
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    # Scored every 2nd epoch and after the last, counted from the run's start.
    assert ["val_accuracy" in e for e in epochs] == [False, True, True]
    assert (out / "curves.png").stat().st_size > 0
    # The optimizer's step (and with it the cosine schedule) carried over the kill.
    assert [e["optimizer_step"] for e in epochs] == [steps, 2 * steps, 3 * steps]
    rates = [e["learning_rate"] for e in epochs]
    expected = [0.001 * (1 + np.cos(np.pi * k / 3)) for k in (1, 2, 3)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)

    # A resume with another recipe (here: learning rate) is refused before it touches the run.
    finished = (out / "metrics.json").read_bytes()
    with pytest.raises(SystemExit, match=r"another recipe .*'learning_rate': 0.002.* not .*0.01"):
        train.main(args + ["--resume", "--lr", "0.01"])
    assert (out / "metrics.json").read_bytes() == finished


def test_validation_frequency_scores_every_nth_epoch_and_always_the_last(tmp_path):
    assert train.validated_epochs(5, 2) == [2, 4, 5]
    assert train.validated_epochs(3, 1) == [1, 2, 3] and train.validated_epochs(3, 9) == [3]
    with pytest.raises(SystemExit, match="--validation-freq must be 1 or more, not 0"):
        train.main(["fashion_mnist", "--model", "BinaryDenseNetTiny", "--validation-freq", "0",
                    "--output-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist"])
def test_other_datasets_end_to_end_with_tfds_mock_data(name, tmp_path):
    args = train.parse_args([name, "--model", "BinaryDenseNetTiny", "--epochs", "1",
                             "--batch-size", "16", "--train-examples", "64",
                             "--test-examples", "32", "--output-dir", str(tmp_path)])
    with tfds.testing.mock_data(num_examples=64):
        summary = train.run(args)
    spec = datasets.get_spec(name)
    assert summary["input_shape"] == list(spec.input_shape)
    assert summary["epochs"][0]["optimizer_step"] == 4


def test_missing_imagenet_says_what_to_download(tmp_path):
    result = _run(["imagenet", "--data-dir", str(tmp_path / "empty"),
                   "--output-dir", str(tmp_path / "run")],
                  env={"TFDS_DATA_DIR": str(tmp_path / "tfds")})
    assert result.returncode != 0
    assert "ILSVRC2012_img_train.tar" in result.stderr and "--data-dir" in result.stderr


def test_fashion_mnist_idx_files_from_a_data_dir(tmp_path):
    source = datasets.find_fashion_mnist(None)
    assert source is not None, "install Debian's dataset-fashion-mnist (see .ci/run)"
    for pair in datasets.FASHION_MNIST_FILES.values():
        for name in pair:
            (tmp_path / name).symlink_to(source / name)
    assert datasets.find_fashion_mnist(str(tmp_path)) == tmp_path
    test = datasets.load_split(datasets.get_spec("fashion_mnist"), "test", str(tmp_path))
    example = next(iter(test))
    assert example["image"].shape == (28, 28, 1) and example["image"].dtype == "uint8"
    assert int(test.cardinality()) == 10_000


@pytest.mark.parametrize("augmentation, max_shift",
                         [("none", 0), ("pad2_crop_flip", 2), ("pad_crop_flip", 4)])
def test_small_image_augmentation_chosen_by_the_recipe(augmentation, max_shift):
    """A single lit pixel stays put without augmentation, and moves by at most the
    padding (or mirrors) with the shifting augmentations, reaching that bound."""
    import tensorflow as tf

    image = np.zeros((28, 28, 1), np.uint8)
    image[10, 14] = 255
    dataset = tf.data.Dataset.from_tensor_slices({"image": [image] * 64, "label": [0] * 64})
    spec = datasets.get_spec("fashion_mnist")
    images, _ = next(iter(datasets.pipeline(dataset, spec, training=True, batch_size=64, seed=1,
                                            augmentation=augmentation)))
    lit = [tuple(np.argwhere(x[..., 0] > 0.5)[0]) for x in images.numpy()]
    assert all(np.count_nonzero(x > 0.5) == 1 for x in images.numpy())
    if augmentation == "none":
        assert set(lit) == {(10, 14)}
    else:
        assert len(set(lit)) > 5
        mirrored_column = 27 - 14  # where a flip sends column 14
        assert all(abs(r - 10) <= max_shift
                   and min(abs(c - 14), abs(c - mirrored_column)) <= max_shift for r, c in lit)
        assert max(abs(r - 10) for r, _ in lit) == max_shift


def test_augmentation_that_does_not_fit_the_data_set_is_refused_before_any_file(tmp_path):
    with pytest.raises(SystemExit, match="'flip' does not apply to imagenet"):
        train.main(["imagenet", "--augmentation", "flip", "--output-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="choose one of"):
        datasets.get_spec("imagenet21k")


def test_export_finds_the_dilated_convolutions_lce_would_leave_in_float():
    """Two dilated binary modules on one input with equal BN values (a fresh build): the
    converter merges their inputs and LCE runs both convolutions in float. With distinct
    BN values (as after training) both are binary. Checked on the real flatbuffers."""
    import tensorflow as tf

    from training.export import convert, distinct_batch_norm, flatbuffer_op_counts, merged_dilated_convs
    from zoo.models.ubnas import OPERATIONS

    inputs = tf.keras.Input((14, 14, 16))
    branches = [OPERATIONS["dil_bconv_5x5"](inputs, 16, 1) for _ in range(2)]
    model = tf.keras.Model(inputs, tf.keras.layers.Add()(branches))

    assert [len(group) for group in merged_dilated_convs(model)] == [2]
    fresh = flatbuffer_op_counts(convert(model))
    assert fresh.get("CONV_2D") == 2 and "LceBconv2d" not in fresh

    distinct_batch_norm(model)
    assert merged_dilated_convs(model) == []
    distinct = flatbuffer_op_counts(convert(model))
    assert distinct.get("LceBconv2d") == 2 and "CONV_2D" not in distinct


def test_merge_check_accepts_custom_layers_without_config():
    """The export's check must not stop an export: BinaryMobileNet's masked training form
    has a custom layer without get_config, and no dilated binary convolution."""
    from training.export import merged_dilated_convs
    from zoo import build_model

    assert merged_dilated_convs(build_model("BinaryMobileNet-Evo", form="masked")) == []


def test_bfloat16_training_saves_float32_weights_that_score_the_same(tmp_path):
    """--precision mixed_bfloat16 computes in bfloat16 but keeps float32 variables: the
    run's result is the score of its weights in float32 (as users run them), which a
    float32 build loading final.h5 reproduces; the policy is restored afterwards."""
    import zoo
    from training import export

    args = train.parse_args([
        "fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1",
        "--precision", "mixed_bfloat16", "--train-examples", "2560", "--test-examples", "1000",
        "--output-dir", str(tmp_path / "run")])
    summary = train.run(args)
    assert summary["recipe"]["precision"] == "mixed_bfloat16"
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    assert summary["final"]["top1"] >= 0.5, summary["final"]  # chance is 10%

    spec = datasets.get_spec("fashion_mnist")
    test = datasets.pipeline(datasets.load_split(spec, "test"), spec, training=False,
                             batch_size=128, preprocessing_name=summary["preprocessing"],
                             limit=1000)
    float32 = zoo.build_model("BinaryDenseNetTiny", weights=str(tmp_path / "run" / "final.h5"))
    assert float32.compute_dtype == "float32"
    train.compile_for_classification(float32)
    _, top1, _ = float32.evaluate(test, verbose=0)
    assert top1 == pytest.approx(summary["final"]["top1"], abs=1e-6), (top1, summary["final"])
    # bfloat16 rounding flips the sign of a few pre-activations: a few images change class
    # (up to 22 of these 1000 measured, on this barely trained network; chance is 10%).
    assert abs(summary["final"]["mixed_bfloat16_top1"] - top1) <= 0.04, summary["final"]

    with train.dtype_policy("mixed_bfloat16"):
        trained = zoo.build_model("BinaryDenseNetTiny")
    deployable = export.deployable_model(trained, {})
    assert trained.compute_dtype == "bfloat16" and deployable.compute_dtype == "float32"
    assert all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), deployable.get_weights()))


def test_unknown_precision_is_refused_and_the_policy_is_restored():
    with pytest.raises(ValueError, match="Unknown precision 'float16'; use one of"):
        with train.dtype_policy("float16"):
            pass
    with pytest.raises(RuntimeError):
        with train.dtype_policy("mixed_bfloat16"):
            raise RuntimeError("a failed build")
    assert tf.keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.slow
def test_deterministic_runs_with_one_seed_train_the_same_weights(tmp_path):
    """Without --deterministic two such CPU runs already differ after one epoch (measured:
    val loss 2.197 against 2.140 on 4096 images), which blurs comparisons paired by seed."""
    args = ["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1",
            "--train-examples", "512", "--test-examples", "256", "--deterministic"]
    runs = [_run(args + ["--output-dir", str(tmp_path / name)]) for name in "ab"]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    first, second = (_metrics(tmp_path / name) for name in "ab")
    assert first["deterministic"] is True
    assert first["epochs"][0]["val_loss"] == second["epochs"][0]["val_loss"]
    assert first["final"]["sha256"] == second["final"]["sha256"]
    # Resumed without it, the run would mix the two modes: refused, the record kept.
    mixed = _run([a for a in args if a != "--deterministic"]
                 + ["--output-dir", str(tmp_path / "a"), "--resume", "--epochs", "2"])
    assert mixed.returncode != 0
    assert "resume it with the same --teacher, --float-twin and --deterministic" in mixed.stderr
    assert _metrics(tmp_path / "a") == first
