"""`python training/export.py`: a registered model with its weights to a checked flatbuffer."""

import json

import larq as lq
import pytest
import tensorflow as tf

from training import export
from zoo import build_model, get_record, weights as weights_io, weights_file


def test_export_writes_a_flatbuffer_that_runs_every_binary_conv_in_binary(tmp_path, capsys):
    output = tmp_path / "tiny.tflite"
    export.main(["BinaryDenseNetTiny", "--weights", "fashion_mnist", "--output", str(output),
                 "--check-images", "200", "--repeats", "2"])
    card = json.loads(output.with_suffix(".json").read_text())
    record = get_record("BinaryDenseNetTiny")
    model = build_model("BinaryDenseNetTiny")
    convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    binary = [layer for layer in convs
              if isinstance(layer, lq.layers.QuantConv2D) and layer.input_quantizer is not None]
    assert card["binary_convs"] == len(binary) > 0
    assert card["float_convs"] == len(convs) - len(binary)
    assert card["sha256"] == weights_io.sha256_of(output)
    assert card["weights_sha256"] == record.weights["fashion_mnist"].top.sha256
    assert card["preprocessing"] == record.weights["fashion_mnist"].preprocessing
    assert card["agreement_images"] == 200 and card["lce_agreement"] >= 0.99
    assert card["input_shape"] == [28, 28, 1] and card["num_classes"] == 10
    assert "LCE = Keras on" in capsys.readouterr().out


def test_export_takes_a_weights_file_with_the_data_set_to_check_it_on(tmp_path):
    """A run's own file: the data set gives the input, the classes and the check images."""
    weights = weights_file("BinaryDenseNetTiny", "fashion_mnist")
    output = tmp_path / "run.tflite"
    export.main(["BinaryDenseNetTiny", "--weights", str(weights), "--dataset", "fashion_mnist",
                 "--output", str(output), "--check-images", "100", "--repeats", "1"])
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["weights_sha256"] == weights_io.sha256_of(weights)
    assert card["check_dataset"] == "fashion_mnist" and card["agreement_images"] == 100
    assert card["lce_agreement"] >= 0.99


@pytest.mark.parametrize("args, message", [
    (["NoSuchNet"], "Unknown model 'NoSuchNet'"),
    (["BinaryDenseNetTiny", "--weights", "cifar10"],
     "neither a file nor a named set of BinaryDenseNetTiny (available: 'fashion_mnist')"),
    (["BinaryDenseNetTiny", "--weights", "fashion_mnist", "--dataset", "mnist"],
     "were trained on fashion_mnist; check them on it, not on mnist"),
])
def test_export_refuses_bad_input_with_a_clear_error(args, message, tmp_path):
    output = tmp_path / "out.tflite"
    with pytest.raises(SystemExit) as stop:
        export.main([*args, "--output", str(output)])
    assert message in str(stop.value)
    assert not output.exists()
