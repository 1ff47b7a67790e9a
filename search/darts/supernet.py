"""The DARTS supernet: every edge mixes all operations, weighted by softmax(alpha).

Partial channels (PC-DARTS): only 1/K of an edge's channels go through the mixed
operation, the rest bypass it, then a channel shuffle; K is set per cell type. Edge
normalization: a node sums its incoming edges weighted by softmax(beta). The operations
are the zoo's own (`zoo.models.ubnas.OPERATIONS`), in the zoo's own network skeleton.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from zoo.models import ubnas

CELL_TYPES = ("normal", "reduce")
EDGES = sum(node + 2 for node in range(ubnas.NODES))  # 14


def primitives(operations=ubnas.EBNAS_OPERATIONS) -> tuple:
    """The columns of alpha: "none" (it exists only in the search), then the operations."""
    unknown = [op for op in operations if op not in ubnas.OPERATIONS]
    if unknown or not operations or len(set(operations)) != len(operations):
        raise ValueError(f"search operations must be distinct names from "
                         f"{sorted(ubnas.OPERATIONS)}; got {list(operations)}.")
    return ("none", *operations)


class ArchitectureParameters(tf.keras.layers.Layer):
    """alpha (edge x operation) and beta (edge) for each cell type, shared by all cells."""

    def __init__(self, seed=0, operations=ubnas.EBNAS_OPERATIONS, **kwargs):
        super().__init__(name="architecture", **kwargs)
        self.primitives = primitives(operations)

        def init(offset):  # alpha ~ 1e-3 N(0, 1), a distinct stream per tensor
            return tf.keras.initializers.RandomNormal(stddev=1e-3, seed=seed * 4 + offset)

        self.alpha = {c: self.add_weight(f"alpha_{c}", (EDGES, len(self.primitives)), initializer=init(i))
                      for i, c in enumerate(CELL_TYPES)}
        self.beta = {c: self.add_weight(f"beta_{c}", (EDGES,), initializer=init(2 + i))
                     for i, c in enumerate(CELL_TYPES)}

    def variables_list(self):
        return [*self.alpha.values(), *self.beta.values()]


def channel_shuffle(x, groups: int):
    """Interleave `groups` channel groups (a permutation; `groups=C/groups` inverts it)."""
    if groups == 1:
        return x
    channels = x.shape[-1]
    shape = tf.shape(x)
    x = tf.reshape(x, [shape[0], shape[1], shape[2], groups, channels // groups])
    x = tf.transpose(x, [0, 1, 2, 4, 3])
    return tf.reshape(x, [shape[0], shape[1], shape[2], channels])


class WeightedSum(tf.keras.layers.Layer):
    """sum_k softmax(row)_k * inputs_k, with `row` one row of an architecture tensor."""

    def __init__(self, arch, kind, cell_type, index, skip_first=False, **kwargs):
        super().__init__(**kwargs)
        self.arch, self.kind, self.cell_type, self.index = arch, kind, cell_type, index
        self.skip_first = skip_first  # the "none" operation contributes zeros

    def weights_row(self):
        if self.kind == "alpha":
            return tf.nn.softmax(self.arch.alpha[self.cell_type][self.index])
        return self.arch.beta[self.cell_type][self.index]

    def call(self, inputs):
        weights = self.weights_row()
        offset = 1 if self.skip_first else 0
        return tf.add_n([weights[k + offset] * x for k, x in enumerate(inputs)])


class NodeSoftmax(WeightedSum):
    """Edge normalization: softmax of beta over a node's incoming edges only."""

    def __init__(self, arch, cell_type, first_edge, count, **kwargs):
        super().__init__(arch, "beta", cell_type, first_edge, **kwargs)
        self.count = count

    def weights_row(self):
        return tf.nn.softmax(self.arch.beta[self.cell_type][self.index:self.index + self.count])


class Slice(tf.keras.layers.Layer):
    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x):
        return x[..., self.start:self.stop]


class Shuffle(tf.keras.layers.Layer):
    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def call(self, x):
        return channel_shuffle(x, self.groups)


def mixed_edge(x, channels, strides, k, arch, cell_type, edge):
    """Partial-channel mixed operation: 1/k of the channels through every operation."""
    part = channels // k
    selected = Slice(0, part)(x) if k > 1 else x
    outputs = [ubnas.OPERATIONS[name](selected, part, strides) for name in arch.primitives[1:]]
    mixed = WeightedSum(arch, "alpha", cell_type, edge, skip_first=True)(outputs)
    if k == 1:
        return mixed
    bypass = Slice(part, channels)(x)
    if strides > 1:
        bypass = tf.keras.layers.MaxPool2D(2, padding="same")(bypass)
    return Shuffle(k)(tf.keras.layers.Concatenate()([mixed, bypass]))


def search_cell_builder(arch, k_normal, k_reduce):
    def make_cell(s0, s1, channels, reduction, reduction_prev):
        cell_type = "reduce" if reduction else "normal"
        k = k_reduce if reduction else k_normal
        states = ubnas.cell_inputs(s0, s1, channels, reduction_prev)
        edge = 0
        for node in range(ubnas.NODES):
            incoming = []
            for source in range(node + 2):
                strides = 2 if reduction and source < 2 else 1
                incoming.append(mixed_edge(states[source], channels, strides, k, arch, cell_type, edge + source))
            states.append(NodeSoftmax(arch, cell_type, edge, node + 2)(incoming))
            edge += node + 2
        return tf.keras.layers.Concatenate()(states[2:])

    return make_cell


def build_supernet(input_shape, num_classes, *, layers_count, channels, k_normal, k_reduce,
                   stem_strides=1, seed=0, operations=ubnas.EBNAS_OPERATIONS):
    arch = ArchitectureParameters(seed=seed, operations=operations)
    model = ubnas.ubnas(input_shape=input_shape, num_classes=num_classes, include_top=True,
                        name="darts_supernet", layers_count=layers_count, channels=channels,
                        stem_strides=stem_strides,
                        make_cell=search_cell_builder(arch, k_normal, k_reduce))
    return model, arch


def derive_genotype(arch) -> dict:
    """Per node, the 2 incoming edges with the largest softmax(alpha) x softmax(beta),
    each with its strongest operation other than "none"."""
    genotype = {}
    for cell_type in CELL_TYPES:
        alpha = tf.nn.softmax(arch.alpha[cell_type]).numpy()
        beta = arch.beta[cell_type].numpy()
        edges, start = [], 0
        for node in range(ubnas.NODES):
            count = node + 2
            node_beta = np.exp(beta[start:start + count]) / np.exp(beta[start:start + count]).sum()
            strength = []
            for source in range(count):
                row = alpha[start + source]
                best_op = 1 + int(np.argmax(row[1:]))
                strength.append((row[best_op] * node_beta[source], source, arch.primitives[best_op]))
            for _, source, op in sorted(strength, reverse=True)[:ubnas.EDGES_PER_NODE]:
                edges.append([op, source])
            start += count
        genotype[cell_type] = edges
    return ubnas.validate_genotype(genotype)
