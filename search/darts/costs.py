"""What each operation costs to train on this machine: the price a cost-aware search pays.

UBNAS prices nothing, and on Fashion-MNIST it chose the slowest operation (dilated 5x5)
for nearly every edge, while the target is accuracy within a training-time budget. With
`cost_weight` > 0 the architecture loss adds the expected relative cost of each edge's
binary convolution, so a slow one has to earn its time in validation loss.
"""

from __future__ import annotations

import statistics
import time

import tensorflow as tf

from search.darts.supernet import CELL_TYPES
from zoo.models import ubnas


def measure(operations, channels: int, size: int, batch: int = 64, repeats: int = 5) -> dict:
    """Seconds of a training step (forward and backward) of each operation alone on
    (batch, size, size, channels) maps at stride 1, divided by the slowest one's."""
    images = tf.random.stateless_normal((batch, size, size, channels), seed=(0, 0))
    seconds = {}
    for name in operations:
        inputs = tf.keras.Input((size, size, channels))
        model = tf.keras.Model(inputs, ubnas.OPERATIONS[name](inputs, channels, 1))

        @tf.function
        def step(x, model=model):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(model(x, training=True))
            return tape.gradient(loss, [x, *model.trainable_variables])

        step(images)  # traces
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step(images)
            times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)
    slowest = max(seconds.values())
    return {name: value / slowest for name, value in seconds.items()}


def priced_operations(primitives) -> list:
    """The operations the cost term weighs against each other: those with weights.

    Parameter-free operations cost almost nothing (0.04-0.16 of a dilated 5x5), so
    pricing them pushes every edge towards them: with weight 0.1 the normal cell became 8
    parameter-free operations in the first architecture epoch (DARTS's collapse, which
    early stopping then caught). Unpriced, they compete on validation loss alone.
    """
    return [name for name in primitives if name != "none" and name not in ubnas.PARAMETER_FREE]


def expected_cost(arch, costs: dict, normal_fraction: float):
    """Mean over edges of sum_op p(op) cost(op), p = softmax(alpha) over the priced
    operations, normal and reduction cells weighted by their share of the network's cells."""
    priced = priced_operations(arch.primitives)
    columns = [arch.primitives.index(name) for name in priced]
    prices = tf.constant([costs[name] for name in priced], tf.float32)
    total = 0.0
    for cell_type, share in zip(CELL_TYPES, (normal_fraction, 1 - normal_fraction)):
        p = tf.gather(tf.nn.softmax(arch.alpha[cell_type]), columns, axis=1)
        p = p / tf.reduce_sum(p, -1, keepdims=True)
        total += share * tf.reduce_mean(tf.reduce_sum(p * prices, -1))
    return total


def genotype_cost(genotype: dict, costs: dict) -> dict:
    """Mean relative cost of the operations a genotype chose, per cell type."""
    return {cell: statistics.mean(costs[op] for op, _ in genotype[cell]) for cell in CELL_TYPES}
