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
