"""Binary and full-precision building blocks shared by every model, cell and supernet."""

from dataclasses import asdict

import larq as lq
import tensorflow as tf

from zoo.quantizers import BinaryQuantization

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name=None):
    return tf.keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
    )


def binary_conv(
    filters: int,
    kernel_size: int,
    quantization: BinaryQuantization,
    *,
    strides: int = 1,
    dilation_rate: int = 1,
    groups: int = 1,
    name=None,
):
    """A bias-free binary convolution with 'same' padding."""
    return BinaryConv2D(
        filters,
        kernel_size,
        strides=strides,
        dilation_rate=dilation_rate,
        groups=groups,
        padding="same",
        use_bias=False,
        kernel_initializer="glorot_normal",
        name=name,
        **quantization.conv_kwargs(),
    )


@tf.keras.utils.register_keras_serializable(package="zoo")
class BinaryConv2D(lq.layers.QuantConv2D):
    """larq's QuantConv2D with zero 'same' padding, exact in Larq Compute Engine also where
    the (dilated) kernel spans more than the input, and without the taps that only ever
    read padding.

    Skipped taps: a stride-1 kernel tap whose offset from the centre is not smaller than
    the input never reaches it, so it only multiplies zero padding. A dilated 5x5 on 4x4
    maps (UBNAS-A's last stage) is a dilated 3x3: 9 of its 25 taps, the same function and
    gradients (the skipped weights get none, as before), about half the time per step.

    Padding: where the kernel still spans more than the input, LCE's correction for zero
    padding is wrong: a dilated 5x5 on 7x7 maps got half its outputs wrong, and UBNAS-A
    fell from 91.5% to 80.1% top-1 as a flatbuffer (first 1000 test images). Such a layer
    pads with +1 and subtracts what that padding added, which depends on the kernel alone:
    the same function, gradients included, which LCE runs as a binary convolution and a
    constant subtraction (`tests/test_layers.py` checks it against LCE). Training steps
    skip that form and pad with zeros directly (the same outputs and gradients, fewer
    copies); inference, and so the converter, traces it. Group convolutions keep zero
    padding: LCE runs them in float (exact) unless they have 32k input channels per group,
    and those only its reference kernel runs (measured); padded with +1, a depthwise one
    failed to allocate.
    """

    def call(self, inputs, training=None):
        self.traces_lce_form = training is not True  # read by convolution_op below
        return super().call(inputs)

    def build(self, input_shape):
        super().build(input_shape)
        spatial = tuple(input_shape[1:3])
        self.taps = tuple(slice(None) for _ in spatial)
        if None in spatial or self.padding != "same" or not self._is_native_padding:
            self.corrects_padding = False
            return
        if self.strides == (1, 1):
            self.taps = tuple(_reachable_taps(k, d, n) for k, d, n in
                              zip(self.kernel_size, self.dilation_rate, spatial))
        self.spans = [d * (len(range(k)[taps]) - 1) + 1 for d, k, taps in
                      zip(self.dilation_rate, self.kernel_size, self.taps)]
        self.corrects_padding = self.groups == 1 and any(
            span > size for span, size in zip(self.spans, spatial))

    @property
    def unapplied_weights(self) -> int:
        """Kernel weights at the skipped taps: stored (and trained to nothing), never applied."""
        applied = 1
        for size, taps in zip(self.kernel_size, self.taps):
            applied *= len(range(size)[taps])
        per_tap = self.kernel.shape[2] * self.kernel.shape[3]
        return (self.kernel_size[0] * self.kernel_size[1] - applied) * per_tap

    def convolution_op(self, inputs, kernel):
        """Called by Keras with the binarized inputs and kernel."""
        kernel = tf.convert_to_tensor(kernel)[self.taps]
        if not self.traces_lce_form and self._dilated_conv2d_applies():
            return tf.nn.conv2d(inputs, kernel, 1, "SAME", dilations=self.dilation_rate)
        if not (self.corrects_padding and self.traces_lce_form):
            return super().convolution_op(inputs, kernel)
        paddings = [[0, 0], *map(_same_padding, inputs.shape[1:3], self.strides, self.spans),
                    [0, 0]]

        def convolve_padded(x):
            return tf.nn.convolution(tf.pad(x, paddings, constant_values=1.0), kernel,
                                     strides=self.strides, padding="VALID",
                                     dilations=self.dilation_rate)

        outputs = convolve_padded(inputs)
        added = convolve_padded(tf.zeros((1, *inputs.shape[1:]), inputs.dtype))
        if outputs.shape[1:3] == (1, 1):  # one value per channel: LCE folds it into the bias
            return outputs - tf.reshape(added, (-1,))
        # Subtracted as one flat vector: LCE would fold a constant added to the convolution's
        # output into its per-channel bias, which an (H, W, C) constant does not fit.
        flat = tf.reshape(outputs, (-1, tf.size(added))) - tf.reshape(added, (1, -1))
        return tf.reshape(flat, tf.shape(outputs))

    def _dilated_conv2d_applies(self) -> bool:
        """Training steps of a dilated convolution call Conv2D with its dilations directly.

        `tf.nn.convolution` runs a dilated convolution off TPUs as space-to-batch,
        convolution, batch-to-space: on 14x14 maps with 16 channels (UBNAS-A's first
        cells) that took twice the time of the direct op, forward and backward, with the
        same gradients (benchmarks/training_step.py measures the network). Inference, and
        so the converter, keeps Keras' form.
        """
        return (self.dilation_rate != (1, 1) and self.strides == (1, 1) and self.groups == 1
                and self.padding == "same" and self._is_native_padding)


def _reachable_taps(kernel_size: int, dilation: int, size: int) -> slice:
    """The taps of an odd stride-1 'same' kernel that land inside an input of `size`."""
    if kernel_size % 2 == 0:
        return slice(None)
    centre = kernel_size // 2
    keep = min(centre, (size - 1) // dilation)  # taps on each side that reach the input
    return slice(centre - keep, centre + keep + 1)


def _same_padding(size: int, stride: int, span: int) -> list:
    """TensorFlow's 'same' padding of one axis, [before, after]."""
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    return [total // 2, total - total // 2]


def full_precision_conv(filters: int, kernel_size: int, *, strides: int = 1, name=None):
    """The float convolutions a BNN keeps: stem and downsampling."""
    return tf.keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        kernel_initializer="he_normal",
        use_bias=False,
        name=name,
    )


def classifier(x, num_classes: int):
    """Global average pooling, a float Dense layer and a float32 softmax.

    Static spatial sizes use AveragePooling2D, which Larq Compute Engine runs faster than
    GlobalAveragePooling2D.
    """
    height, width = x.shape[1:3]
    if height is not None and width is not None:
        x = tf.keras.layers.AveragePooling2D(pool_size=(height, width))(x)
        x = tf.keras.layers.Flatten()(x)
    else:
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(num_classes, kernel_initializer="he_normal")(x)
    return tf.keras.layers.Activation("softmax", dtype="float32")(x)


def shortcut(x, strides: int, channels: int):
    """The identity path of a residual binary module.

    Stride 2: a 2x2 average pool. More output channels than input: the input repeated
    (parameter-free, like Bi-Real Net's shortcuts), and cut to the output's channels when
    they are not a multiple of the input's (a width multiplier off the 1/32 grid makes
    12 -> 25 -> 51 channels; without this shortcut such a network retrained about two
    points lower). Fewer: None.
    """
    if strides > 1:
        x = tf.keras.layers.AveragePooling2D(strides, padding="same")(x)
    if channels < x.shape[-1]:
        return None
    repeats = -(-channels // x.shape[-1])  # ceil
    repeated = x if repeats == 1 else tf.keras.layers.Concatenate()([x] * repeats)
    return repeated if repeated.shape[-1] == channels else repeated[..., :channels]


def residual_activation(kind):
    """What follows a binary module: nothing (None), or "prelu", a per-channel PReLU at
    slope 1 (ReActNet's RPReLU without its shifts, which the BNs already give). Besides
    sign() a residual binary network has no nonlinearity; slopes starting at 1 (the
    identity) let weights trained without PReLUs load unchanged."""
    if kind is None:
        return lambda x: x
    if kind == "prelu":
        return lambda x: tf.keras.layers.PReLU(
            alpha_initializer=tf.keras.initializers.Constant(1.0), shared_axes=[1, 2])(x)
    raise ValueError(f"residual_activation={kind!r} is not one of None, 'prelu'.")


def binary_residual(x, conv, *, strides: int = 1, activation=None):
    """x + BN(conv(BN(x))) with `conv` a binary convolution: the binary module of every
    searched network (MobileNet blocks, UBNAS operations) and of their supernets.

    Shortcuts keep the real-valued information that sign() throws away, which is what
    lets deep binary networks train (Bi-Real Net, EBNAS). But each module adds a unit-
    variance branch to the stream, so its scale grows with depth while ApproxSign
    passes gradient only inside [-1, 1] (measured in the Fashion-MNIST BinaryMobileNet
    at initialisation: the input std grows from 1.0 to 2.6 over its 26 modules, and only
    30% of the last module's input is inside the window, 75% of the first's). The BN before
    the binarization (as BinaryDenseNet has) brings each module's input back to that
    window. In the forward pass sign(BN(x)) is sign(x - t), a learned per-channel
    threshold (ReActNet's RSign), so the module is still EBNAS's x + BN(conv(sign(x)))
    up to that shift; LCE runs the BN as a float multiply-add. `activation` follows the
    module (`residual_activation`).
    Test top-1 after training on 12k images: MobileNet 61% -> 73% (two epochs), UBNAS-A
    59% -> 71% (one epoch).
    """
    y = batch_norm()(conv(batch_norm()(x)))
    identity = shortcut(x, strides, y.shape[-1])
    y = y if identity is None else tf.keras.layers.Add()([identity, y])
    return residual_activation(activation)(y)


MAX_GROUP_SIZE = 16  # MaskedGroupConv2D's default band: the evolutionary search's widest group


class MaskedGroupConv2D(tf.keras.layers.Layer):
    """A binary KxK group convolution (channels in = out) whose group count can change.

    It computes exactly `QuantConv2D(channels, k, groups=g)` for any g with at most M
    channels per group (M: the largest divisor of C up to `max_group_size`), from one
    shared kernel: the band of the dense kernel around its diagonal, shape (k, k, C, M).
    Input channel j feeds the M outputs of its M-block; a mask (applied after sign(), so
    masked weights are 0, not +-1) keeps those of its g-group. Computed as a depthwise
    convolution with multiplier M and a sum within each block, so its cost is the grouped
    convolution's.
    - The group count is a variable: every choice shares one set of weights (the
      evolutionary search's supernet).
    - TensorFlow's CPU grouped convolution is ~3-8x slower than this.
    `grouped_kernel` converts the kernel for `QuantConv2D(groups=g)` (larq, LCE).
    """

    def __init__(self, channels, kernel_size, quantization: BinaryQuantization, *,
                 groups, strides=1, max_group_size=MAX_GROUP_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.kernel_size, self.strides = channels, kernel_size, strides
        # The band width: the largest divisor of the channels up to max_group_size.
        self.block = max(d for d in range(1, min(max_group_size, channels) + 1)
                         if channels % d == 0)
        if channels % groups or channels // groups > self.block:
            raise ValueError(
                f"groups={groups} does not fit {channels} channels: the group count must "
                f"divide them, with at most {self.block} channels per group."
            )
        self.initial_groups, self.max_group_size, self.quantization = groups, max_group_size, quantization
        self.input_quantizer = quantization.input_quantizer() or tf.identity
        self.kernel_quantizer = quantization.kernel_quantizer() or tf.identity
        self.kernel_constraint = quantization.kernel_constraint()

    def get_config(self):
        """Plain data, so Keras can write the architecture (TensorBoard's graph, model.to_json)."""
        return {**super().get_config(), "channels": self.channels, "kernel_size": self.kernel_size,
                "quantization": asdict(self.quantization), "groups": self.initial_groups,
                "strides": self.strides, "max_group_size": self.max_group_size}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(quantization=BinaryQuantization(**config.pop("quantization")), **config)

    def build(self, input_shape):
        if int(input_shape[-1]) != self.channels:
            raise ValueError(f"expected {self.channels} input channels, got {input_shape[-1]}")
        self.kernel = self.add_weight(
            "kernel", (self.kernel_size, self.kernel_size, self.channels, self.block),
            initializer="glorot_normal", constraint=self.kernel_constraint,
        )
        self.groups = self.add_weight(
            "groups", (), dtype=tf.int32, trainable=False,
            initializer=tf.keras.initializers.Constant(self.initial_groups),
        )

    def mask(self):
        """1 where input channel j and band output t fall in the same group."""
        group_size = self.channels // self.groups
        j = tf.range(self.channels)[:, None] % self.block
        t = tf.range(self.block)[None, :]
        return tf.cast(tf.equal(j // group_size, t // group_size), self.kernel.dtype)

    def call(self, inputs):
        kernel = self.kernel_quantizer(self.kernel) * self.mask()
        y = tf.nn.depthwise_conv2d(self.input_quantizer(inputs), kernel,
                                   [1, self.strides, self.strides, 1], "SAME")
        shape = tf.shape(y)
        blocks = self.channels // self.block
        y = tf.reshape(y, [shape[0], shape[1], shape[2], blocks, self.block, self.block])
        return tf.reshape(tf.reduce_sum(y, axis=4), [shape[0], shape[1], shape[2], self.channels])

    def grouped_kernel(self, groups=None):
        """The kernel of the equivalent `QuantConv2D(groups=g)`, shape (k, k, C/g, C)."""
        import numpy as np

        size = self.channels // int(groups or self.groups.numpy())
        band = self.kernel.numpy()
        grouped = np.zeros((self.kernel_size, self.kernel_size, size, self.channels), band.dtype)
        for out, inputs, column in self._band_positions(size):
            grouped[:, :, :, out] = band[:, :, inputs, column]
        return grouped

    def set_grouped_kernel(self, grouped) -> None:
        """The inverse of `grouped_kernel`: take the kernel of a `QuantConv2D(groups=g)`
        (e.g. shipped weights, to fine-tune in this faster form). Band entries outside
        the g-groups are masked out, so they keep their values."""
        size = grouped.shape[2]
        band = self.kernel.numpy()
        for out, inputs, column in self._band_positions(size):
            band[:, :, inputs, column] = grouped[:, :, :, out]
        self.kernel.assign(band)
        self.groups.assign(self.channels // size)

    def _band_positions(self, group_size: int):
        """Where grouped-kernel output `out` lives in the band: its group's input channels
        and its column within the M-block."""
        for out in range(self.channels):
            first_in = (out // group_size) * group_size
            yield out, slice(first_in, first_in + group_size), out % self.block
