"""Knowledge distillation (`train.py --teacher`): the loss it adds, what it trains and saves."""

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from training import datasets, distill, train
from training.evaluate import evaluate


def _classifier(seed):
    tf.keras.utils.set_random_seed(seed)
    return tf.keras.Sequential([
        tf.keras.Input((6,)),
        tf.keras.layers.Dense(8, activation="relu"),
        tf.keras.layers.Dense(3),
        tf.keras.layers.Activation("softmax"),
    ])


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def _distiller(weight, temperature=4.0):
    distiller = distill.Distiller(_classifier(1), _classifier(2), weight=weight,
                                  temperature=temperature)
    train.compile_for_classification(distiller, tf.keras.optimizers.SGD(0.1))
    return distiller


def _quantized_layers(model) -> int:
    return sum(1 for layer in model.layers
               if isinstance(getattr(layer, "kernel_quantizer", None), lq.quantizers.Quantizer))


def test_softening_keeps_the_ranking_and_flattens_the_distribution():
    """Dividing logits by T takes each probability to the power 1/T, then renormalises."""
    probabilities = np.array([[0.7, 0.2, 0.1]], "float32")
    soft = distill.softened(tf.constant(probabilities), 4.0).numpy()
    np.testing.assert_allclose(soft, probabilities**0.25 / np.sum(probabilities**0.25), rtol=1e-5)
    assert list(np.argsort(soft[0])) == [2, 1, 0] and soft.max() < probabilities.max()
    np.testing.assert_allclose(distill.softened(probabilities, 1.0), probabilities, rtol=1e-5)


def test_at_weight_zero_a_step_is_exactly_the_undistilled_one():
    images, labels = _data()
    distiller = _distiller(weight=0.0)
    plain = _classifier(1)
    train.compile_for_classification(plain, tf.keras.optimizers.SGD(0.1))
    distiller.fit(images, labels, batch_size=64, epochs=1, verbose=0)
    plain.fit(images, labels, batch_size=64, epochs=1, verbose=0)
    for ours, theirs in zip(distiller.student.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_the_soft_loss_pulls_the_student_towards_a_frozen_teacher():
    images, labels = _data()
    distiller = _distiller(weight=1.0)
    teacher_before = [w.copy() for w in distiller.teacher.get_weights()]
    gap_before = float(distiller.soft_loss(images, distiller.student(images)))
    history = distiller.fit(images, labels, batch_size=16, epochs=5, verbose=0).history
    gap_after = float(distiller.soft_loss(images, distiller.student(images)))
    assert gap_after < 0.5 * gap_before, (gap_before, gap_after)
    assert history["distillation_loss"][-1] < history["distillation_loss"][0]
    for before, after in zip(teacher_before, distiller.teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    teacher_gap = float(distiller.soft_loss(images, distiller.teacher(images)))
    assert teacher_gap == pytest.approx(0, abs=1e-6)


def test_an_ensemble_teaches_the_geometric_mean_of_its_members():
    images, _ = _data()
    first, second = _classifier(1), _classifier(2)
    np.testing.assert_allclose(distill.Ensemble([first, first])(images), first(images), atol=1e-6)
    mean_log = (np.log(first(images).numpy()) + np.log(second(images).numpy())) / 2
    expected = np.exp(mean_log) / np.exp(mean_log).sum(-1, keepdims=True)
    np.testing.assert_allclose(distill.Ensemble([first, second])(images), expected, atol=1e-6)


def test_a_step_on_cached_teacher_predictions_is_the_step_on_the_teacher():
    """`--cache-teacher` feeds the teacher's predictions with the batch instead of running it."""
    images, labels = _data()
    online, cached = _distiller(weight=0.5), _distiller(weight=0.5)
    predictions = online.teacher(images).numpy()
    online.fit(images, labels, batch_size=64, epochs=1, verbose=0)
    cached.fit(tf.data.Dataset.from_tensors(((images, predictions), labels)), epochs=1, verbose=0)
    for ours, theirs in zip(cached.student.get_weights(), online.student.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    # A cache that is not the teacher's predictions would change the step: the test can fail.
    wrong = _distiller(weight=0.5)
    wrong.fit(tf.data.Dataset.from_tensors(((images, predictions[::-1]), labels)), epochs=1, verbose=0)
    assert not np.allclose(wrong.student.get_weights()[0], online.student.get_weights()[0])


def test_cached_predictions_stay_with_their_images_through_shuffling_and_flips():
    """Real Fashion-MNIST through the training pipeline (shuffled, flipped): a teacher that
    sees only each row's mean brightness, which a flip keeps, must match its cache."""
    spec = datasets.get_spec("fashion_mnist")
    teacher = tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)), tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10, kernel_initializer=tf.keras.initializers.RandomNormal(0, 30)),
        tf.keras.layers.Activation("softmax")])
    examples = distill.with_teacher_predictions(
        datasets.load_split(spec, "train"), teacher, spec, "unit_range", limit=512)
    batches = datasets.pipeline(examples, spec, training=True, batch_size=128,
                                preprocessing_name="unit_range", seed=3)
    for (images, cached), labels in batches:
        np.testing.assert_allclose(cached, teacher(images), atol=1e-5)
    assert float(tf.reduce_max(cached)) - float(tf.reduce_min(cached)) > 0.1  # not constant


@pytest.mark.parametrize("extra, error", [
    (["--cache-teacher"], "--cache-teacher needs --teacher NAME"),
    (["--teacher", "BinaryDenseNetTiny", "BinaryDenseNetSmall", "--teacher-weights", "t.h5"],
     "--teacher-weights takes one --teacher NAME"),
])
def test_meaningless_teacher_options_are_refused(extra, error, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["fashion_mnist", *extra])
    assert error in capsys.readouterr().err


def test_cached_teachers_are_refused_where_augmentation_crops_the_image(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["imagenet", "--teacher", "BinaryDenseNet28", "--cache-teacher"])
    assert "--cache-teacher is for small-image data sets" in capsys.readouterr().err


@pytest.mark.parametrize("weight, temperature", [(1.5, 4.0), (0.5, 0.0)])
def test_meaningless_distillation_settings_are_refused(weight, temperature):
    with pytest.raises(ValueError, match="weight must lie|temperature must be positive"):
        distill.Distiller(_classifier(1), _classifier(2), weight=weight, temperature=temperature)


@pytest.mark.slow
def test_a_distilled_run_saves_the_student_alone_and_records_its_teacher(tmp_path):
    """Real Fashion-MNIST; the teacher is the shipped BinaryDenseNetTiny."""
    from zoo import build_model, registry, weights as weights_io

    out = tmp_path / "run"
    argv = ["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1",
            "--train-examples", "256", "--test-examples", "256", "--output-dir", str(out),
            "--teacher", "BinaryDenseNetTiny", "--temperature", "2"]
    summary = train.run(train.parse_args(argv))
    shipped = registry.get_record("BinaryDenseNetTiny").weights["fashion_mnist"]
    assert summary["distillation"] == {"teacher": "BinaryDenseNetTiny", "weight": 0.5,
                                       "temperature": 2.0, "weights_sha256": shipped.top.sha256,
                                       "command": shipped.source}
    assert "val_distillation_loss" in summary["epochs"][0]
    # The run's own arguments, not the command line of the process that called run().
    assert summary["command"] == "python training/train.py " + " ".join(argv)
    student = build_model("BinaryDenseNetTiny", input_shape=(28, 28, 1), num_classes=10)
    weights_io.load_into(student, out / "final.h5", "BinaryDenseNetTiny")  # no teacher inside

    # Resuming under another teacher setting is refused and leaves the record as it was.
    with pytest.raises(SystemExit, match="resume it with the same --teacher, --float-twin and --deterministic"):
        train.main(argv[:-1] + ["3", "--resume", "--epochs", "2"])
    assert json.loads((out / "metrics.json").read_text())["distillation"]["temperature"] == 2.0
    # Under the same one, the checkpoint (student, frozen teacher, optimizer) carries on.
    resumed = train.run(train.parse_args(argv + ["--resume", "--epochs", "2"]))
    steps = 256 // 128
    assert [e["optimizer_step"] for e in resumed["epochs"]] == [steps, 2 * steps]


def test_a_run_distils_from_an_ensemble_whose_predictions_are_cached_once(tmp_path):
    """Real Fashion-MNIST: the record names every member, and the cached test predictions
    are the ensemble's (the validation soft loss equals the one with the teacher running)."""
    from zoo import build_model, registry, weights as weights_io

    out = tmp_path / "run"
    members = ["BinaryDenseNetTiny", "BinaryDenseNetSmall"]
    summary = train.run(train.parse_args(
        ["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1", "--train-examples",
         "256", "--test-examples", "256", "--output-dir", str(out), "--teacher", *members,
         "--cache-teacher"]))
    described = summary["distillation"]
    assert described["teacher"] == members and described["cached_on_unaugmented_images"]
    assert [m["weights_sha256"] for m in described["members"]] == [
        registry.get_record(name).weights["fashion_mnist"].top.sha256 for name in members]

    spec = datasets.get_spec("fashion_mnist")
    student = build_model("BinaryDenseNetTiny", input_shape=(28, 28, 1), num_classes=10)
    weights_io.load_into(student, out / "final.h5", "BinaryDenseNetTiny")
    teacher, _ = distill.load_teacher(members, None, spec, (28, 28, 1), "unit_range")
    distiller = distill.Distiller(student, teacher, temperature=4.0)
    test = datasets.pipeline(datasets.load_split(spec, "test"), spec, training=False,
                             batch_size=128, preprocessing_name="unit_range", limit=256)
    online = np.mean([float(distiller.soft_loss(images, student(images))) for images, _ in test])
    assert summary["epochs"][0]["val_distillation_loss"] == pytest.approx(online, rel=1e-4)


def test_a_mixed_bfloat16_run_on_cached_predictions_scores_its_student_in_float32(tmp_path):
    """A bfloat16 run's result is the float32 score of its weights: the test batches, which
    carry the teacher's cached predictions, must reach that score as (images, labels)."""
    out = tmp_path / "run"
    summary = train.run(train.parse_args(
        ["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1", "--train-examples",
         "128", "--test-examples", "128", "--output-dir", str(out), "--teacher",
         "BinaryDenseNetTiny", "--cache-teacher", "--precision", "mixed_bfloat16"]))
    scored = evaluate("fashion_mnist", "BinaryDenseNetTiny", str(out / "final.h5"), limit=128)
    assert summary["final"]["top1"] == pytest.approx(scored["top1"])
    assert "mixed_bfloat16_top1" in summary["final"]


@pytest.mark.parametrize("teacher, weights, error", [
    ("BinaryDenseNet28", None, "no shipped weights for fashion_mnist.*--teacher-weights"),
    ("BinaryDenseNetTiny", b"not HDF5", "is not a readable HDF5 weights file"),
])
def test_a_teacher_without_usable_weights_is_refused(teacher, weights, error, tmp_path):
    argv = ["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1",
            "--train-examples", "256", "--output-dir", str(tmp_path / "run"), "--teacher", teacher]
    if weights:
        (tmp_path / "teacher.h5").write_bytes(weights)
        argv += ["--teacher-weights", str(tmp_path / "teacher.h5")]
    with pytest.raises(SystemExit, match=error):
        train.main(argv)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_teacher_weights_without_a_teacher_are_refused(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["fashion_mnist", "--teacher-weights", "teacher.h5"])
    assert "--teacher-weights needs --teacher NAME" in capsys.readouterr().err


@pytest.mark.slow
def test_a_float_twin_trains_without_quantizers_and_teaches_as_one(tmp_path, monkeypatch):
    """`--float-twin` trains full-precision weights (here taught by the shipped binary
    model, which stays binary); as --teacher-weights they are loaded into the float twin,
    which a binary network would only approximate."""
    from zoo import build_float_twin, build_model, weights as weights_io

    teachers, distiller = [], distill.Distiller
    monkeypatch.setattr(distill, "Distiller", lambda student, teacher, **kwargs: (
        teachers.append(teacher) or distiller(student, teacher, **kwargs)))
    out = tmp_path / "float"
    argv = ["fashion_mnist", "--model", "BinaryDenseNetTiny", "--epochs", "1", "--float-twin",
            "--teacher", "BinaryDenseNetTiny", "--train-examples", "512", "--test-examples",
            "512", "--output-dir", str(out)]
    summary = train.run(train.parse_args(argv))
    assert summary["float_twin"] is True and summary["distillation"]["teacher"] == "BinaryDenseNetTiny"
    assert _quantized_layers(teachers[0]) > 0
    assert _quantized_layers(build_float_twin("BinaryDenseNetTiny")) == 0
    assert weights_io.saved_for(out / "final.h5") == "BinaryDenseNetTiny (float twin)"
    images = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    as_float = build_float_twin("BinaryDenseNetTiny", input_shape=(28, 28, 1), num_classes=10,
                                weights=str(out / "final.h5"))
    as_binary = build_model("BinaryDenseNetTiny", input_shape=(28, 28, 1), num_classes=10)
    as_binary.set_weights(as_float.get_weights())
    assert not np.allclose(as_float(images), as_binary(images), atol=1e-3)
    with pytest.raises(weights_io.WeightsError, match="float twin.*build_float_twin"):
        build_model("BinaryDenseNetTiny", weights=str(out / "final.h5"))  # silently wrong before
    scored = evaluate("fashion_mnist", "BinaryDenseNetTiny", str(out / "final.h5"), limit=512,
                      float_twin=True)
    assert abs(scored["top1"] - summary["final"]["top1"]) < 1e-6

    teacher, described = distill.load_member(
        "BinaryDenseNetTiny", str(out / "final.h5"), datasets.get_spec("fashion_mnist"),
        (28, 28, 1), "unit_range")
    np.testing.assert_allclose(teacher(images), as_float(images), atol=1e-6)
    assert described["float_twin"] is True and described["command"] == summary["command"]

    with pytest.raises(SystemExit, match="resume it with the same --teacher, --float-twin and --deterministic"):
        train.main([a for a in argv if a != "--float-twin"] + ["--resume", "--epochs", "2"])
    _check_float_twin_packaging(out, summary, tmp_path, monkeypatch)


def _check_float_twin_packaging(run_dir, summary, tmp_path, monkeypatch):
    """A float-twin run is not shipped as weights: it adds its accuracy to the binary
    weights' record, and is refused where there are none."""
    import shutil

    from training.package import package
    from zoo import registry, weights as weights_io

    shipped_dir, weights_dir = weights_io.PACKAGE_WEIGHTS_DIR, tmp_path / "weights"
    weights_dir.mkdir()
    monkeypatch.setattr(weights_io, "PACKAGE_WEIGHTS_DIR", weights_dir)
    with pytest.raises(SystemExit, match="no shipped binary weights"):
        package(run_dir)
    for suffix in (".json", ".h5"):
        shutil.copy(shipped_dir / f"BinaryDenseNetTiny-fashion_mnist{suffix}",
                    weights_dir)
    binary = json.loads((weights_dir / "BinaryDenseNetTiny-fashion_mnist.json").read_text())
    entry = json.loads(package(run_dir).read_text())
    without_twin = [{k: v for k, v in e.items() if k != "float_twin"} for e in (entry, binary)]
    assert without_twin[0] == without_twin[1]  # the binary weights' record is untouched
    assert entry["float_twin"]["top1"] == summary["final"]["top1"]
    assert entry["float_twin"]["sha256"] == summary["final"]["sha256"]
    assert entry["float_twin"]["command"] == summary["command"]
    twin = registry.shipped_weights("BinaryDenseNetTiny")["fashion_mnist"].float_twin_metrics
    assert twin["top1"] == 100 * summary["final"]["top1"]


def test_a_masked_float_twin_deploys_as_a_grouped_float_twin():
    """As train.py --float-twin --export-tflite converts it."""
    from zoo import build_float_twin, build_model, quantizers
    from training import export

    config = {"form": "masked"}
    masked = build_float_twin("BinaryMobileNet-Evo-S1", **config)
    with quantizers.float_twin():
        grouped = export.deployable_model(masked, config)
    assert _quantized_layers(masked) == _quantized_layers(grouped) == 0
    binary = export.deployable_model(build_model("BinaryMobileNet-Evo-S1", **config), config)
    assert _quantized_layers(binary) > 0
