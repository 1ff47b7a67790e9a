"""The shared binary module keeps every binarization inside ApproxSign's gradient window."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from zoo import build_model, layers
from zoo.quantizers import APPROX_SIGN


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
    from zoo.profile import lce_float_group_convs, lce_reference_only_group_convs

    depthwise = lce_float_group_convs(build_model("BinaryMobileNet-Depthwise"))
    assert sorted(depthwise.values()) == [1] * 13
    assert lce_float_group_convs(build_model("BinaryMobileNet-Dense")) == {}
    # 32, 64 or 128 input channels per group, except the last block's 16
    groups = [1, 1, 2, 1, 4, 2, 8, 4, 2, 1, 8, 4, 32]
    mixed = build_model("BinaryMobileNet-Depthwise", groups=groups)
    assert list(lce_float_group_convs(mixed).values()) == [16]
    assert sorted(lce_reference_only_group_convs(mixed).values()) == [32] * 4 + [64] * 3 + [128]


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


SPANS_MORE_THAN_THE_INPUT = [  # (kernel, dilation, input size, groups, strides)
    (5, 2, 7, 1, 1),  # UBNAS-A's dilated 5x5 in its 7x7 stage
    (5, 2, 4, 1, 1),  # ... and in its 4x4 stage, where only its inner 3x3 taps reach the input
    (3, 1, 2, 1, 1),
    (3, 1, 2, 1, 2),
]


def _same_weights_pair(kernel, dilation, size, groups, strides, channels=8):
    """Our binary convolution and larq's zero-padded one, with the same kernel."""
    from zoo.quantizers import APPROX_SIGN

    ours = layers.binary_conv(channels, kernel, APPROX_SIGN, dilation_rate=dilation,
                              groups=groups, strides=strides)
    larqs = lq.layers.QuantConv2D(channels, kernel, dilation_rate=dilation, groups=groups,
                                  strides=strides, padding="same", use_bias=False,
                                  **APPROX_SIGN.conv_kwargs())
    shape = (1, size, size, channels)
    ours.build(shape)
    larqs.build(shape)
    larqs.set_weights(ours.get_weights())
    return ours, larqs


def _assert_same_outputs_and_gradients(ours, larqs, x, training, atol):
    """Outputs, and gradients to the inputs and the kernel of a position-weighted sum."""
    outputs, grads = [], []
    for layer in (ours, larqs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.range(tf.size(y), dtype=tf.float32)[: y.shape[-1]])
        outputs.append(y)
        grads.append(tape.gradient(loss, [x, layer.kernel]))
    np.testing.assert_allclose(*outputs, atol=1e-4)
    for ours_grad, larqs_grad in zip(*grads):
        np.testing.assert_allclose(ours_grad, larqs_grad, atol=atol)


@pytest.mark.parametrize("training", [None, True])
@pytest.mark.parametrize("kernel, dilation, size, groups, strides", SPANS_MORE_THAN_THE_INPUT)
def test_binary_conv_spanning_more_than_its_input_still_computes_zero_padding(
        kernel, dilation, size, groups, strides, training):
    """Where LCE gets zero padding wrong, the layer pads with +1 and subtracts what that
    added (training steps pad with zeros directly): either way the same outputs and
    gradients as larq's zero-padded convolution."""
    ours, larqs = _same_weights_pair(kernel, dilation, size, groups, strides)
    assert ours.corrects_padding
    x = tf.constant(np.random.default_rng(0).standard_normal((4, size, size, 8)), tf.float32)
    _assert_same_outputs_and_gradients(ours, larqs, x, training, atol=1e-4)
    assert ours.traces_lce_form == (training is None)


@pytest.mark.parametrize("kernel, dilation, size, applied", [
    (5, 2, 4, 3), (5, 2, 7, 5), (5, 2, 3, 3), (3, 1, 1, 1), (5, 1, 4, 5), (3, 2, 2, 1)])
def test_a_binary_conv_applies_only_the_taps_that_reach_its_input(kernel, dilation, size,
                                                                  applied):
    """The skipped taps only ever multiply zero padding: larq's convolution gives them no
    gradient either (the outputs are compared in the test above)."""
    ours, larqs = _same_weights_pair(kernel, dilation, size, 1, 1)
    assert [len(range(kernel)[taps]) for taps in ours.taps] == [applied, applied]
    x = tf.constant(np.random.default_rng(0).standard_normal((2, size, size, 8)), tf.float32)
    outputs, grads = [], []
    for layer in (ours, larqs):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        outputs.append(y)
        grads.append(tape.gradient(loss, layer.kernel))
    np.testing.assert_allclose(*outputs, atol=1e-4)
    np.testing.assert_allclose(*grads, atol=1e-3)
    outside = np.ones(ours.kernel.shape, bool)
    outside[ours.taps] = False
    assert np.all(grads[0].numpy()[outside] == 0) and np.any(grads[0].numpy()[~outside] != 0)


@pytest.mark.parametrize("kernel, size", [(5, 14), (3, 7), (5, 4)])
def test_a_dilated_binary_conv_trains_through_conv2d_as_larqs_convolution_does(kernel, size):
    """Training steps call Conv2D with its dilations (not space-to-batch): the same outputs
    and gradients as larq's layer; inference keeps Keras' form for the converter."""
    ours, larqs = _same_weights_pair(kernel, 2, size, 1, 1)
    assert ours._dilated_conv2d_applies()
    x = tf.constant(np.random.default_rng(1).standard_normal((3, size, size, 8)), tf.float32)
    _assert_same_outputs_and_gradients(ours, larqs, x, training=True, atol=1e-3)
    traced = tf.function(lambda x: ours(x)).get_concrete_function(x).graph.get_operations()
    assert any(op.type == "SpaceToBatchND" for op in traced) or ours.corrects_padding
    trained = tf.function(lambda x: ours(x, training=True)).get_concrete_function(x)
    assert not any(op.type == "SpaceToBatchND" for op in trained.graph.get_operations())


def test_the_profile_counts_the_binary_macs_a_conv_applies_beside_larqs():
    """A dilated 5x5 on 4x4 maps applies 3x3 of its taps (the flatbuffer holds only
    those); larq counts all 25, and its counts stay the accounting."""
    from zoo.profile import profile

    inputs = tf.keras.Input((4, 4, 8))
    conv = layers.binary_conv(16, 5, APPROX_SIGN, dilation_rate=2)
    model = tf.keras.Model(inputs, conv(inputs))
    ours = profile(model)
    assert conv.unapplied_weights == (25 - 9) * 8 * 16
    assert ours.binary_params == 25 * 8 * 16 and ours.binary_macs == 25 * 8 * 16 * 4 * 4
    assert ours.applied_binary_macs == 9 * 8 * 16 * 4 * 4


@pytest.mark.parametrize("name, skips", [("BinaryDenseNetTiny", False), ("UBNAS-A", True)])
def test_applied_binary_macs_leave_out_only_the_skipped_taps(name, skips):
    from zoo import build_float_twin
    from zoo.profile import profile

    model = build_model(name)
    ours, larqs = profile(model), lq.models.ModelProfile(model)
    convs = [l for l in model.layers if isinstance(l, layers.BinaryConv2D)]
    skipped = sum(c.unapplied_weights * c.output_shape[1] * c.output_shape[2] for c in convs)
    assert (skipped > 0) == skips
    assert ours.binary_macs == larqs.op_count("mac", 1)
    assert ours.applied_binary_macs == ours.binary_macs - skipped
    assert ours.memory_mb * 8 * 2**20 == larqs.memory
    assert profile(build_float_twin(name)).applied_binary_macs == 0


def test_applied_binary_macs_are_shown_only_where_they_differ_as_printed():
    from zoo.profile import binary_macs_text

    assert binary_macs_text(85_100_000, 66_200_000) == "85.1 (66.2 applied)"
    assert binary_macs_text(2_820_000, 2_790_000) == "2.8"  # not "2.8 (2.8 applied)"
    assert binary_macs_text(15_600_000, 15_600_000) == "15.6"


@pytest.mark.parametrize("kernel, dilation, size, groups", [(5, 2, 9, 1), (3, 1, 2, 2)])
def test_a_binary_conv_inside_its_input_or_grouped_is_larqs_own(kernel, dilation, size, groups):
    ours, _ = _same_weights_pair(kernel, dilation, size, groups, 1)
    assert not ours.corrects_padding and ours.pad_values == 0.0


@pytest.mark.parametrize("size, kernel, dilation, strides",
                         [(7, 5, 2, 1), (4, 5, 2, 1), (2, 3, 1, 2), (1, 3, 1, 1)])
def test_lce_computes_a_binary_conv_on_a_smaller_map_as_keras_does(size, kernel, dilation,
                                                                   strides):
    """LCE's zero-padding correction was wrong there (half the outputs of a dilated 5x5
    on 7x7 maps, off by up to 100); the layer keeps it a binary convolution, also with its
    kernel cut to the taps that reach the input (4x4: a dilated 3x3; 1x1: a 1x1 kernel).
    On a 1x1 output the subtracted constant is one per channel, folded into the bias."""
    import larq_compute_engine as lce

    from training.export import convert, distinct_batch_norm, flatbuffer_op_counts
    from zoo.quantizers import APPROX_SIGN

    inputs = tf.keras.Input((size, size, 32))
    conv = layers.binary_conv(32, kernel, APPROX_SIGN, dilation_rate=dilation, strides=strides)
    model = distinct_batch_norm(
        tf.keras.Model(inputs, layers.binary_residual(inputs, conv, strides=strides)))
    conv.kernel.assign(np.random.default_rng(1).standard_normal(conv.kernel.shape))
    flatbuffer = convert(model)
    assert flatbuffer_op_counts(flatbuffer).get("LceBconv2d") == 1
    images = np.random.default_rng(2).standard_normal((8, size, size, 32)).astype(np.float32)
    deployed = lce.testing.Interpreter(flatbuffer, num_threads=1).predict(images)
    np.testing.assert_allclose(deployed, model.predict(images, verbose=0), atol=1e-3)


def test_a_shortcut_to_channels_not_a_multiple_of_the_input_repeats_and_cuts_it():
    """A width multiplier off the 1/32 grid gives 12 -> 25 -> 51 channels; such a module
    lost its shortcut (and the network two points of retrained top-1)."""
    inputs = tf.keras.Input((4, 4, 25))
    identity = layers.shortcut(inputs, 1, 51)
    values = np.random.default_rng(0).random((1, 4, 4, 25), np.float32)
    out = tf.keras.Model(inputs, identity)(values).numpy()
    np.testing.assert_array_equal(out, np.concatenate([values, values, values[..., :1]], -1))
    assert layers.shortcut(inputs, 1, 12) is None  # fewer channels: no identity path

    def shortcuts(model):
        return sum(isinstance(l, tf.keras.layers.Add) for l in model.layers)

    on_grid = build_model("BinaryMobileNet-Dense", width_multiplier=0.1875)
    off_grid = build_model("BinaryMobileNet-Dense", width_multiplier=0.19921875)
    assert shortcuts(off_grid) == shortcuts(on_grid) == 26
    rebuilt = tf.keras.models.model_from_json(off_grid.to_json())
    rebuilt.set_weights(off_grid.get_weights())
    images = np.random.default_rng(1).random((2, 28, 28, 1), np.float32)
    np.testing.assert_allclose(rebuilt(images), off_grid(images), atol=1e-5)
