"""Binary and full-precision building blocks shared by every model, cell and supernet."""

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
    return lq.layers.QuantConv2D(
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
