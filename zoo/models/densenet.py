"""BinaryDenseNet (Bethge et al., arXiv 1812.01965): one builder, one config per variant.

Many shortcut (concatenation) connections and no bottlenecks; the stem, the transitions
and the classifier stay in full precision. Weight order matches larq-zoo, so its
published ImageNet files load unchanged.
"""


import tensorflow as tf

from zoo import layers, quantizers
from zoo.registry import ModelRecord, Weights, WeightsFile, register

SMALL_INPUT_THRESHOLD = 50  # below this size the stem is one 3x3 conv, no downsampling
PAPER = "Bethge et al. 2019, BinaryDenseNet (arXiv 1812.01965)"


def transition_filters(channels: int, reduction: float) -> int:
    """Transition width as larq-zoo computes it: floor(C / r), rounded to a multiple of 32."""
    return round(channels // reduction / 32) * 32


def binary_densenet(
    *,
    input_shape,
    num_classes,
    include_top,
    name,
    layers_per_block,
    reductions,
    dilation_rates,
    growth_rate=64,
    initial_filters=64,
    small_stem_strides=1,
):
    """The BinaryDenseNet topology; `small_stem_strides` downsamples small inputs early."""
    quant = quantizers.DENSENET
    inputs = tf.keras.Input(shape=input_shape)
    if input_shape[0] is not None and input_shape[0] < SMALL_INPUT_THRESHOLD:
        x = layers.full_precision_conv(initial_filters, 3, strides=small_stem_strides)(inputs)
    else:
        x = layers.full_precision_conv(initial_filters, 7, strides=2)(inputs)
        x = layers.batch_norm()(x)
        x = tf.keras.layers.Activation("relu")(x)
        x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same")(x)

    for block, num_layers in enumerate(layers_per_block):
        for _ in range(num_layers):
            y = layers.batch_norm()(x)
            y = layers.binary_conv(
                growth_rate, 3, quant, dilation_rate=dilation_rates[block]
            )(y)
            x = tf.keras.layers.concatenate([x, y])
        if block < len(layers_per_block) - 1:
            x = layers.batch_norm()(x)
            if dilation_rates[block + 1] == 1:
                x = tf.keras.layers.MaxPool2D(2, strides=2)(x)
            x = tf.keras.layers.Activation("relu")(x)
            filters = transition_filters(x.shape[-1], reductions[block])
            x = layers.full_precision_conv(filters, 1)(x)

    x = layers.batch_norm()(x)
    x = tf.keras.layers.Activation("relu")(x)
    if include_top:
        x = layers.classifier(x, num_classes)
    return tf.keras.Model(inputs, x, name=name)


def min_input_size(dilation_rates, small_stem_strides=1) -> int:
    """Each transition before an undilated block halves the map (small-input stem)."""
    pools = sum(1 for rate in dilation_rates[1:] if rate == 1)
    return small_stem_strides * 2**pools


_RELEASES = "https://github.com/larq/zoo/releases/download/"
# (file stem, release of top file, SHA-256 top, release of no-top file, SHA-256 no-top),
# as pinned in larq-zoo 2.4.0's `larq_zoo/literature/densenet.py`.
_IMAGENET_FILES = {
    "BinaryDenseNet28": ("28", "v0.1.0", "21fe3ca03eed244df9c41a2219876fcf03e73800932ec96a3e2a76af4747ac53",
                         "v0.1.0", "a376df1e41772c4427edd1856072b934a89bf293bf911438bf6f751a9b2a28f5"),
    "BinaryDenseNet37": ("37", "v0.1.0", "8056a5d52c3ed86a934893987d09a06f59a5166aa9bddcaedb050f111d0a7d76",
                         "v0.1.0", "4e12bca9fd27580a5b833241c4eb35d6cc332878c406048e6ca8dbbc78d59175"),
    "BinaryDenseNet37Dilated": ("37_dilated", "v0.1.0", "15c1bcd79b8dc22971382fbf79acf364a3f51049d0e584a11533e6fdbb7363d3",
                                "v0.1.1", "8b31fbfdc8de08a46c6adcda1ced48ace0a2ff0ce45a05c72b2acc27901dd88b"),
    "BinaryDenseNet45": ("45", "v0.1.0", "d00a0d26fbd2dba1bfba8c0306c770f3aeea5c370e99f963bb239bd916f72c37",
                         "v0.1.0", "e72d5cc6b0afe4612f8be7b1f9bb48a53ba2c8468b57bf1266d2900c99fd2adf"),
}
# ImageNet top-1 / top-5 (%) as published by larq-zoo for these files.
_IMAGENET_METRICS = {
    "BinaryDenseNet28": (60.91, 82.83),
    "BinaryDenseNet37": (62.89, 84.19),
    "BinaryDenseNet37Dilated": (64.34, 85.15),
    "BinaryDenseNet45": (64.59, 85.21),
}


def imagenet_weights(model_name: str) -> Weights:
    stem, top_release, top_sha, notop_release, notop_sha = _IMAGENET_FILES[model_name]
    top1, top5 = _IMAGENET_METRICS[model_name]

    def url(release, suffix):
        return f"{_RELEASES}binary_densenet-{release}/binary_densenet_{stem}_weights{suffix}.h5"

    return Weights(
        dataset="imagenet2012",
        top=WeightsFile(url(top_release, ""), top_sha),
        no_top=WeightsFile(url(notop_release, "_notop"), notop_sha),
        metrics={"top1": top1, "top5": top5},
        preprocessing="imagenet",
        source="larq-zoo 2.4.0 release assets (Bethge et al. recipe)",
    )


# name: (larq-zoo aliases, layers per block, transition reductions, dilation per block)
VARIANTS = {
    "BinaryDenseNet28": (("binary_densenet28", "bdn28"), (6, 6, 6, 5), (2.7, 2.7, 2.2), (1, 1, 1, 1)),
    "BinaryDenseNet37": (("binary_densenet37", "bdn37"), (6, 8, 12, 6), (3.3, 3.3, 4), (1, 1, 1, 1)),
    "BinaryDenseNet37Dilated": (("binary_densenet37_dilated", "bdn37d"), (6, 8, 12, 6), (3.3, 3.3, 4), (1, 1, 2, 4)),
    "BinaryDenseNet45": (("binary_densenet45", "bdn45"), (6, 12, 14, 8), (2.7, 3.3, 4), (1, 1, 1, 1)),
}


def _register(name, aliases, layers_per_block, reductions, dilation_rates, *, growth_rate=64,
              small_stem_strides=1, default_input_shape=(224, 224, 3),
              default_num_classes=1000, paper=PAPER, weights=None):
    """One BinaryDenseNet variant: its configuration, as data, and the shared builder."""
    register(
        ModelRecord(
            name=name,
            family="BinaryDenseNet",
            builder=binary_densenet,
            config=dict(
                layers_per_block=layers_per_block,
                reductions=reductions,
                dilation_rates=dilation_rates,
                growth_rate=growth_rate,
                initial_filters=growth_rate,
                small_stem_strides=small_stem_strides,
            ),
            paper=paper,
            default_input_shape=default_input_shape,
            min_input_size=min_input_size(dilation_rates, small_stem_strides),
            aliases=aliases,
            weights=weights or {},
            default_num_classes=default_num_classes,
        )
    )


for _name, (_aliases, _layers, _reductions, _dilations) in VARIANTS.items():
    _register(_name, _aliases, _layers, _reductions, _dilations,
              weights={"imagenet": imagenet_weights(_name)})

# Sized for 28x28 gray-scale input on a CPU (binary MACs from larq's profile, training
# steps of batch 128 measured alone on 2 cores): a stride-2 stem keeps every block at
# 14x14 or less. Tiny (growth 32): ~16 M binary MACs, 0.17 s per step. Small (growth 64,
# the paper's): ~63 M binary MACs, 0.36 s per step, about three minutes an epoch.
# Medium adds two layers to each of the 7x7 and 3x3 blocks, where a layer costs a quarter
# and a twentieth of one at 14x14: 0.57 s per step against Small's 0.43 in one process.
# Tiny with a stride-1 stem (blocks at 28x28, 14x14, 7x7; about 0.6 s a step in its run)
# ended at 91.99% after 15 epochs with 2-pixel shifts (71 minutes, training accuracy
# 93.0%): below both shipped variants, so finer maps do not pay for their cost here.
# name: (larq-zoo-style alias, layers per block, growth rate and initial filters)
SMALL_INPUT_VARIANTS = {
    "BinaryDenseNetTiny": ("binary_densenet_tiny", (3, 3, 3), 32),
    "BinaryDenseNetSmall": ("binary_densenet_small", (3, 3, 3), 64),
    "BinaryDenseNetMedium": ("binary_densenet_medium", (3, 5, 5), 64),
}

for _name, (_alias, _layers, _growth) in SMALL_INPUT_VARIANTS.items():
    _register(_name, (_alias,), _layers, (2, 2), (1, 1, 1), growth_rate=_growth,
              small_stem_strides=2, default_input_shape=(28, 28, 1), default_num_classes=10,
              paper=PAPER + "; configuration ours")
