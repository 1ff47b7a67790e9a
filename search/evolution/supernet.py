"""The one-shot supernet: every group choice of a block shares one dense binary kernel.

Built by the zoo's own BinaryMobileNet builder with `zoo.layers.MaskedGroupConv2D` as its
3x3 convolution, so the supernet and the final network are one topology. Each training
step draws a configuration: a group count per block uniformly at random, or one row of a
table of configurations (those within a search's budget, so that the shared weights serve
the networks the search can pick rather than the four in five a tight budget rejects; at
3.3M MACs its picks retrained worse, so the search's default is the former).
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from zoo import layers, quantizers
from zoo.models import mobilenet
from search import data
from search.evolution.space import SearchSpace


def tuned_if_asked(supernet, fine_tune: dict | None):
    """`supernet.fine_tuned(**fine_tune)`, or nothing for None: how a trial and a finalist
    are scored, with or without their own training first."""
    return supernet.fine_tuned(**fine_tune) if fine_tune else contextlib.nullcontext()


class Supernet(tf.keras.Model):
    """Wraps the masked network; `train_step` samples a configuration first."""

    def __init__(self, space: SearchSpace, seed: int = 0, configurations=None):
        super().__init__(name="supernet")
        self.space = space
        topology = {k: v for k, v in space.network_config.items() if k not in ("groups", "form")}
        self.masked = []

        def shared_group_conv(channels, groups, strides, block):
            conv = layers.MaskedGroupConv2D(channels, 3, quantizers.APPROX_SIGN, groups=groups,
                                            strides=strides, max_group_size=space.max_group_size)
            self.masked.append(conv)
            return conv

        self.net = mobilenet.binary_mobilenet(
            input_shape=space.input_shape or space.record.default_input_shape,
            num_classes=space.num_classes, include_top=True, name="supernet_net",
            groups="depthwise", group_conv=shared_group_conv, **topology,
        )
        self.choice_tables = [tf.constant(c, tf.int32) for c in space.choices]
        self.configurations = None if configurations is None else tf.constant(
            [space.validate(c) for c in configurations], tf.int32)
        self.rng = tf.random.Generator.from_seed(seed)
        self._tuning_schedule = None  # (learning rate, steps) `fine_tuned` compiled for

    def call(self, inputs, training=False):
        return self.net(inputs, training=training)

    def set_groups(self, groups) -> None:
        for conv, g in zip(self.masked, self.space.validate(groups)):
            conv.groups.assign(g)

    def groups(self) -> list:
        return [int(conv.groups.numpy()) for conv in self.masked]

    def sample_groups(self) -> None:
        """A random configuration, drawn inside the training graph."""
        if self.configurations is None:  # each block on its own, uniformly
            for conv, table in zip(self.masked, self.choice_tables):
                conv.groups.assign(tf.gather(table, self._random_index(table)))
        else:
            row = tf.gather(self.configurations, self._random_index(self.configurations))
            for block, conv in enumerate(self.masked):
                conv.groups.assign(row[block])

    def _random_index(self, table):
        return self.rng.uniform((), 0, tf.shape(table)[0], dtype=tf.int32)

    def train_step(self, batch):
        self.sample_groups()
        return super().train_step(batch)

    def recalibrate_batch_norm(self, batches) -> None:
        """Recompute BatchNorm statistics for the current configuration (SPOS).

        Moving averages restart at zero; after n batches with momentum m, dividing by
        (1 - m^n) removes the start's bias, leaving a weighted mean over the batches.
        """
        norms = [l for l in self.net.layers if isinstance(l, tf.keras.layers.BatchNormalization)]
        for n in norms:
            n.moving_mean.assign(tf.zeros_like(n.moving_mean))
            n.moving_variance.assign(tf.zeros_like(n.moving_variance))
        for images in batches:
            self._forward_training(images)
        correction = 1.0 - norms[0].momentum ** len(batches)
        for n in norms:
            n.moving_mean.assign(n.moving_mean / correction)
            n.moving_variance.assign(n.moving_variance / correction)

    @contextlib.contextmanager
    def fine_tuned(self, images, labels, *, steps: int, batch_size: int, learning_rate: float,
                   seed: int):
        """Train the current configuration alone for `steps` from the shared weights, and
        put the shared weights back on exit.

        Shared weights are a compromise between all configurations; a few steps of the
        configuration's own training show how far it can go from there, which a BatchNorm
        recalibration alone cannot. Run inside the `with` what should see the tuned weights.
        """
        shared = self.net.get_weights()
        try:
            self._fresh_tuning_optimizer(learning_rate, steps)
            batches = (tf.data.Dataset.from_tensor_slices((images, labels))
                       .shuffle(len(images), seed=seed).repeat().batch(batch_size))
            self.net.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
            yield
        finally:
            self.net.set_weights(shared)

    def _fresh_tuning_optimizer(self, learning_rate: float, steps: int) -> None:
        """Compile for `fine_tuned` once per schedule, then zero the optimizer's state (its
        step count too, so the schedule restarts): a compile per fine-tune would retrace
        the training step, which costs seconds of every trial."""
        if self._tuning_schedule == (learning_rate, steps):
            for variable in self.net.optimizer.variables:
                variable.assign(tf.zeros_like(variable))
            return
        self.net.compile(optimizer=tf.keras.optimizers.Adam(
            tf.keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
            loss="sparse_categorical_crossentropy")
        self._tuning_schedule = (learning_rate, steps)

    @tf.function(reduce_retracing=True)
    def _forward_training(self, images):
        return self.net(images, training=True)

    @tf.function(reduce_retracing=True)
    def _forward(self, images):
        return self.net(images, training=False)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        return data.accuracy(self._forward, images, labels)
