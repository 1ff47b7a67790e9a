"""The shared binary module keeps every binarization inside ApproxSign's gradient window."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from zoo import build_model, layers


def binary_layers(model):
    return [l for l in model.layers
            if isinstance(l, (lq.layers.QuantConv2D, layers.MaskedGroupConv2D))]


@pytest.mark.parametrize("name", ["BinaryMobileNet-Evo", "UBNAS-A", "BinaryDenseNetTiny"])
def test_every_binarized_input_is_mostly_inside_the_gradient_window(name):
    """Without a BN before the sign, residual streams grow with depth and ApproxSign's
    gradient (zero outside [-1, 1]) dies in the deep layers (measured: 70% of it)."""
    model = build_model(name)
    convs = binary_layers(model)
    probe = tf.keras.Model(model.input, [conv.input for conv in convs])
    images = np.random.default_rng(0).uniform(0, 1, (32, 28, 28, 1)).astype("float32")
    for conv, inputs in zip(convs, probe(images, training=True)):
        inside = float(np.mean(np.abs(inputs.numpy()) < 1))
        assert inside > 0.5, f"{name}: only {inside:.0%} of {conv.name}'s input is in [-1, 1]"


def test_lce_float_group_convs_names_the_groups_lce_cannot_run_in_binary():
    """LCE's bconv takes a group convolution only with 32k input channels per group."""
    from zoo.profile import lce_float_group_convs

    depthwise = lce_float_group_convs(build_model("BinaryMobileNet-Depthwise"))
    assert sorted(depthwise.values()) == [1] * 13
    assert lce_float_group_convs(build_model("BinaryMobileNet-Dense")) == {}
    # 32, 64 or 128 input channels per group, except the last block's 16
    groups = [1, 1, 2, 1, 4, 2, 8, 4, 2, 1, 8, 4, 32]
    mixed = lce_float_group_convs(build_model("BinaryMobileNet-Depthwise", groups=groups))
    assert list(mixed.values()) == [16]


def test_masked_network_architecture_round_trips_through_keras_json():
    """MaskedGroupConv2D serializes as plain data: Keras rebuilds the searched network
    from its JSON (TensorBoard writes the same), and it computes the same outputs."""
    model = build_model("BinaryMobileNet-Evo", form="masked")
    rebuilt = tf.keras.models.model_from_json(
        model.to_json(), custom_objects={"MaskedGroupConv2D": layers.MaskedGroupConv2D})
    rebuilt.set_weights(model.get_weights())
    masked = [l for l in rebuilt.layers if isinstance(l, layers.MaskedGroupConv2D)]
    assert [int(l.groups.numpy()) for l in masked] == \
        [int(l.groups.numpy()) for l in model.layers if isinstance(l, layers.MaskedGroupConv2D)]
    images = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
    np.testing.assert_allclose(rebuilt(images), model(images), atol=1e-5)
