"""UBNAS networks: DARTS-style cells of binary operations, built from a genotype.

Tan et al. 2024 (UBNAS) search binary cells differentiably; the public analogue EBNAS
defines the operations used here. Every operation is defined once in `OPERATIONS` and
builds both the search supernet (`search/darts`) and the final network.

A genotype is plain JSON data:
    {"normal": [["bconv_3x3", 0], ["skip_connect", 1], ...],   # 2 edges per node, 4 nodes
     "reduce": [...]}
Edge input 0 and 1 are the cell's two inputs; input k >= 2 is intermediate node k - 2.
"""

from __future__ import annotations

import tensorflow as tf

from zoo import layers, quantizers
from zoo.registry import ModelRecord, build_model, register_searched

PAPER = "Tan et al. 2024, UBNAS (IEEE TCSVT); operations as EBNAS"
NODES = 4
EDGES_PER_NODE = 2
QUANT = quantizers.APPROX_SIGN


def _pool(kind):
    def op(x, channels, strides, activation=None):
        pool = tf.keras.layers.MaxPool2D if kind == "max" else tf.keras.layers.AveragePooling2D
        return pool(3, strides=strides, padding="same")(x)

    return op


def _skip(x, channels, strides, activation=None):
    if strides == 1:
        return x
    return tf.keras.layers.AveragePooling2D(strides, padding="same")(x)


def _binary_conv(kernel_size, dilation=1, groups=1):
    """Residual binary module x + BN(bconv(ApproxSign(BN(x)))), pooled shortcut at stride 2,
    then `activation` (`zoo.layers.residual_activation`).

    Keras cannot stride a dilated convolution, so a strided dilated operation pools 2x2
    first and convolves at stride 1.
    """

    def op(x, channels, strides, activation=None):
        if channels % groups:
            raise ValueError(f"a binary convolution in {groups} groups needs a channel count "
                             f"divisible by {groups}, got {channels}; choose --channels (and "
                             "in the search K) so that every edge's channels divide.")
        if dilation > 1 and strides > 1:
            x = tf.keras.layers.AveragePooling2D(strides, padding="same")(x)
            strides = 1
        conv = layers.binary_conv(channels, kernel_size, QUANT, strides=strides,
                                  dilation_rate=dilation, groups=groups)
        return layers.binary_residual(x, conv, strides=strides, activation=activation)

    return op


OPERATIONS = {
    "skip_connect": _skip,
    "max_pool_3x3": _pool("max"),
    "avg_pool_3x3": _pool("avg"),
    "bconv_3x3": _binary_conv(3),
    "bconv_5x5": _binary_conv(5),
    "dil_bconv_3x3": _binary_conv(3, dilation=2),
    "dil_bconv_5x5": _binary_conv(5, dilation=2),
    # Grouped variants: half the binary MACs and weights. Larq Compute Engine runs a
    # binary group convolution as binary only with 32k input channels per group
    # (zoo.profile.lce_float_group_convs), so at UBNAS widths these deploy in float. Not
    # in the default search space: benchmarks/darts_operations.py found they do not help.
    "bconv_3x3_g2": _binary_conv(3, groups=2),
    "bconv_5x5_g2": _binary_conv(5, groups=2),
}
PARAMETER_FREE = ("skip_connect", "max_pool_3x3", "avg_pool_3x3")
GROUPED_OPERATIONS = ("bconv_3x3_g2", "bconv_5x5_g2")
# The search space of EBNAS / UBNAS, which `python -m search darts` searches by default.
EBNAS_OPERATIONS = tuple(op for op in OPERATIONS if op not in GROUPED_OPERATIONS)


class GenotypeError(ValueError):
    """A genotype names an unknown operation or an impossible edge."""


def validate_genotype(genotype: dict) -> dict:
    if not isinstance(genotype, dict):
        raise GenotypeError(
            f"A UBNAS network needs genotype={{'normal': [...], 'reduce': [...]}} (e.g. "
            f"the genotype JSON of `python -m search darts`), got {genotype!r}."
        )
    for cell in ("normal", "reduce"):
        edges = genotype.get(cell)
        if not isinstance(edges, (list, tuple)) or len(edges) != NODES * EDGES_PER_NODE:
            raise GenotypeError(
                f"genotype[{cell!r}] must list {NODES * EDGES_PER_NODE} [operation, input] "
                f"edges ({EDGES_PER_NODE} per node), got {edges!r}."
            )
        for index, edge in enumerate(edges):
            op, source = edge
            node = index // EDGES_PER_NODE
            if op not in OPERATIONS:
                raise GenotypeError(
                    f"genotype[{cell!r}] edge {index} names unknown operation {op!r}; "
                    f"known: {sorted(OPERATIONS)}."
                )
            if not isinstance(source, int) or not 0 <= source < node + 2:
                raise GenotypeError(
                    f"genotype[{cell!r}] edge {index} ({op!r} from input {source}) is "
                    f"impossible: node {node} can only take inputs 0..{node + 1}."
                )
        for node in range(NODES):
            sources = [s for _, s in edges[node * 2:node * 2 + 2]]
            if len(set(sources)) != EDGES_PER_NODE:
                raise GenotypeError(
                    f"genotype[{cell!r}] node {node} takes input {sources[0]} twice; it "
                    "needs 2 distinct inputs."
                )
    return genotype


def preprocess(x, channels: int, downsample: bool, activation=None):
    """Bring a cell input to `channels` (and halve it if it comes from before a reduction)."""
    if downsample:
        x = tf.keras.layers.AveragePooling2D(2, padding="same")(x)
    return layers.binary_residual(x, layers.binary_conv(channels, 1, QUANT), activation=activation)


def cell_inputs(s0, s1, channels, reduction_prev, activation=None):
    return [preprocess(s0, channels, reduction_prev, activation),
            preprocess(s1, channels, False, activation)]


def cell(s0, s1, edges, channels: int, reduction: bool, reduction_prev: bool, activation=None):
    """A cell of 4 nodes, each the sum of 2 operations, output their concatenation."""
    states = cell_inputs(s0, s1, channels, reduction_prev, activation)
    for node in range(NODES):
        branches = []
        for op, source in edges[node * 2:node * 2 + 2]:
            strides = 2 if reduction and source < 2 else 1
            branches.append(OPERATIONS[op](states[source], channels, strides, activation))
        states.append(tf.keras.layers.Add()(branches))
    return tf.keras.layers.Concatenate()(states[2:])


def reduction_layers(num_layers: int) -> set:
    return {num_layers // 3, 2 * num_layers // 3}


def stem(inputs, channels: int, strides: int = 1):
    """Full-precision 3x3 convolution. Stride 2 on 28x28 inputs quarters every cell's cost
    (the DARTS CIFAR networks keep stride 1 at 32x32)."""
    x = layers.full_precision_conv(3 * channels, 3, strides=strides)(inputs)
    return layers.batch_norm()(x)


def ubnas(*, input_shape, num_classes, include_top, name, genotype=None, layers_count=8,
          channels=16, stem_strides=1, residual_activation=None, make_cell=None):
    """The network: full-precision stem, `layers_count` cells, full-precision classifier.

    `residual_activation="prelu"` puts a PReLU after every binary module: besides sign()
    and max pooling the cells have no nonlinearity, and UBNAS-A underfits without one.

    Cells come from `genotype`, or from `make_cell(s0, s1, channels, reduction,
    reduction_prev)`: the search supernet's mixed cells, in this same skeleton.
    """
    if make_cell is None:
        validate_genotype(genotype)

        def make_cell(s0, s1, channels, reduction, reduction_prev):
            edges = genotype["reduce" if reduction else "normal"]
            return cell(s0, s1, edges, channels, reduction, reduction_prev, residual_activation)

    inputs = tf.keras.Input(shape=input_shape)
    s0 = s1 = stem(inputs, channels, stem_strides)
    reduction_prev = False
    for index in range(layers_count):
        reduction = index in reduction_layers(layers_count)
        if reduction:
            channels *= 2
        s0, s1 = s1, make_cell(s0, s1, channels, reduction, reduction_prev)
        reduction_prev = reduction
    if include_top:
        s1 = layers.classifier(s1, num_classes)
    return tf.keras.Model(inputs, s1, name=name)


TEMPLATE = ModelRecord(
    name="UBNAS", family="UBNAS", builder=ubnas,
    config=dict(genotype=None, layers_count=8, channels=16, stem_strides=1,
                residual_activation=None),
    paper=PAPER, default_input_shape=(28, 28, 1), min_input_size=4, default_num_classes=10,
)


def UBNAS(*, genotype, layers=8, channels=16, stem_strides=1, residual_activation=None,  # noqa: N802
          **build_kwargs):
    """Any genotype in the UBNAS skeleton; `build_model` arguments (input_shape,
    num_classes, weights=path, include_top) pass through. The genotypes our search found
    are registered by name: UBNAS-A, ... (`ubnas` validates the genotype)."""
    return build_model(TEMPLATE, genotype=genotype, layers_count=layers,
                       channels=channels, stem_strides=stem_strides,
                       residual_activation=residual_activation, **build_kwargs)


register_searched("UBNAS", template=TEMPLATE)  # e.g. UBNAS-A, from search/darts
