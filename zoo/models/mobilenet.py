"""Binarized MobileNetV1 with a searched group count per layer (Phan et al., CVPR 2020).

A binary 3x3 depthwise convolution can only output values in [-9, 9]; more channels per
group widen that range at a higher cost, so the group count of each of the 13 blocks is
chosen by evolutionary search (`search/evolution`) under a complexity budget.

Binary details, and why: every binary convolution sits in a residual module
(`zoo.layers.binary_residual`) so real-valued information bypasses sign(), with a BN
before the sign so its input stays where ApproxSign passes gradient; activations use
ApproxSign, whose gradient matches sign's better than the straight-through estimator; the
first convolution and the classifier stay in full precision, as in every accurate BNN.
Besides sign() the network has no nonlinearity (its float twin is a linear classifier);
`residual_activation="prelu"` adds a per-channel PReLU after every module
(`zoo.layers.residual_activation`). Its slopes start at 1, the identity, so weights
trained without it load unchanged and fine-tuning learns it.
Measured on Fashion-MNIST: 5 epochs from S1's weights reached 91.32% with PReLUs, against
90.72-90.98% in three fine-tunes without them (BinaryMobileNet-Evo-S1-PReLU).
"""

import tensorflow as tf

from zoo import layers, quantizers
from zoo import weights as weights_io
from zoo.registry import ModelRecord, register, register_searched

PAPER = "Phan et al. 2020, Binarizing MobileNet via Evolution-based Searching (CVPR)"

# MobileNetV1: (pointwise output channels, stride of the 3x3 convolution) per block.
BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
STEM_FILTERS = 32


def block_channels(width_multiplier: float) -> list:
    """Input channels of each block's 3x3 group convolution."""
    widths = [int(STEM_FILTERS * width_multiplier)]
    widths += [int(filters * width_multiplier) for filters, _ in BLOCKS[:-1]]
    return widths


def resolve_groups(groups, width_multiplier: float) -> list:
    """Per-block group counts; "depthwise" and "dense" name the uniform baselines."""
    channels = block_channels(width_multiplier)
    if groups == "depthwise":
        return channels
    if groups == "dense":
        return [1] * len(BLOCKS)
    groups = [int(g) for g in groups]
    if len(groups) != len(BLOCKS):
        raise ValueError(f"groups needs one count per block ({len(BLOCKS)}), got {len(groups)}.")
    for block, (g, c) in enumerate(zip(groups, channels)):
        if g <= 0 or c % g:
            raise ValueError(
                f"groups[{block}]={g} does not divide the block's {c} input channels; "
                f"choose a divisor of {c} (1 = full convolution, {c} = depthwise)."
            )
    return groups


def binary_group_conv(channels: int, groups: int, strides: int, block: int):
    """The deployable binary 3x3 group convolution (what larq profiles and LCE runs)."""
    return layers.binary_conv(channels, 3, quantizers.APPROX_SIGN, strides=strides, groups=groups)


def masked_group_conv(channels: int, groups: int, strides: int, block: int):
    """The same convolution as one masked dense kernel: the fast form to train on a CPU.
    Its band is the default one, or the group where the group is wider (a search with
    --channels-per-group above 16)."""
    return layers.MaskedGroupConv2D(channels, 3, quantizers.APPROX_SIGN, groups=groups,
                                    strides=strides,
                                    max_group_size=max(layers.MAX_GROUP_SIZE, channels // groups))


GROUP_CONV_FORMS = {"grouped": binary_group_conv, "masked": masked_group_conv}


def binary_mobilenet(
    *,
    input_shape,
    num_classes,
    include_top,
    name,
    groups="depthwise",
    width_multiplier=1.0,
    stem_strides=2,
    form="grouped",
    residual_activation=None,
    group_conv=None,
):
    """MobileNetV1 with binary group/pointwise convolutions.

    `form` picks the 3x3 convolution: "grouped" (deployable) or "masked" (trains faster
    on a CPU; `copy_weights` converts). The search supernet passes its own
    `group_conv(channels, groups, strides, block)`, so all are this one topology.
    """
    quant = quantizers.APPROX_SIGN
    group_conv = group_conv or GROUP_CONV_FORMS[form]
    group_counts = resolve_groups(groups, width_multiplier)
    inputs = tf.keras.Input(shape=input_shape)
    x = layers.full_precision_conv(int(STEM_FILTERS * width_multiplier), 3, strides=stem_strides)(inputs)
    x = layers.batch_norm()(x)
    for block, ((filters, strides), g) in enumerate(zip(BLOCKS, group_counts)):
        channels = x.shape[-1]
        x = layers.binary_residual(x, group_conv(channels, g, strides, block),
                                   strides=strides, activation=residual_activation)
        pointwise = layers.binary_conv(int(filters * width_multiplier), 1, quant)
        x = layers.binary_residual(x, pointwise, activation=residual_activation)
    if include_top:
        x = layers.classifier(x, num_classes)
    return tf.keras.Model(inputs, x, name=name)


def copy_weights(source, target):
    """Copy weights between two builds of one network: from either form of the 3x3
    convolutions to the other, and from a build without PReLUs into one with them (which
    keep slope 1, so the target computes what the source does)."""
    adds_prelus = not any(isinstance(layer, tf.keras.layers.PReLU) for layer in source.layers)
    sources = [layer for layer in source.layers if layer.weights]
    targets = [layer for layer in target.layers if layer.weights
               and not (adds_prelus and isinstance(layer, tf.keras.layers.PReLU))]
    if len(sources) != len(targets):
        raise ValueError(f"{source.name} and {target.name} are not builds of one network.")
    for s, t in zip(sources, targets):
        if isinstance(t, layers.MaskedGroupConv2D) and not isinstance(s, layers.MaskedGroupConv2D):
            t.set_grouped_kernel(s.get_weights()[0])
        elif isinstance(s, layers.MaskedGroupConv2D) and not isinstance(t, layers.MaskedGroupConv2D):
            t.set_weights([s.grouped_kernel(t.groups)])
        else:
            t.set_weights(s.get_weights())
    return target


def load_weights(model, path, model_name: str, build_kwargs: dict) -> None:
    """Files hold the grouped (deployable) form; a "masked"-form model, the fast one to
    fine-tune or run in Keras on a CPU, takes them through that form. A model with PReLUs
    takes a file written without them (e.g. to fine-tune them in)."""
    try:
        weights_io.load_into(model, path, model_name)
        return
    except weights_io.WeightsError as error:
        mismatch = error
    for file_form in _other_file_forms(build_kwargs):
        source = binary_mobilenet(**file_form)
        try:
            weights_io.load_into(source, path, model_name)
        except weights_io.WeightsError:
            continue
        copy_weights(source, model)
        return
    raise mismatch


def _other_file_forms(build_kwargs: dict) -> list:
    """Builds of the model's network whose weights files it can also take."""
    grouped = {**build_kwargs, "form": "grouped"}
    forms = [grouped] if build_kwargs.get("form") == "masked" else []
    if build_kwargs.get("residual_activation") is not None:
        forms.append({**grouped, "residual_activation": None})
    return forms


_FASHION_MNIST = dict(width_multiplier=0.5, stem_strides=2)

for _name, _groups, _shape, _classes, _config in (
    ("BinaryMobileNet", "depthwise", (224, 224, 3), 1000, dict(width_multiplier=1.0, stem_strides=2)),
    ("BinaryMobileNet-Depthwise", "depthwise", (28, 28, 1), 10, _FASHION_MNIST),
    ("BinaryMobileNet-Dense", "dense", (28, 28, 1), 10, _FASHION_MNIST),
):
    register(
        ModelRecord(
            name=_name,
            family="BinaryMobileNet",
            builder=binary_mobilenet,
            config=dict(groups=_groups, form="grouped", residual_activation=None, **_config),
            paper=PAPER,
            default_input_shape=_shape,
            min_input_size=1,  # 'same' padding: any map of at least 1x1 works
            default_num_classes=_classes,
            load_weights=load_weights,
        )
    )

register_searched("BinaryMobileNet")  # e.g. BinaryMobileNet-Evo, from search/evolution
