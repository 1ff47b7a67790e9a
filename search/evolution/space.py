"""The search space: allowed group counts per block, and the cost of a configuration."""

from __future__ import annotations

import functools

from zoo import build_model, get_record
from zoo.models import mobilenet
from zoo.profile import BITS_PER_MB

# Channels per group a block may use: 1 is depthwise; more widens the binary output range.
CHANNELS_PER_GROUP = (1, 2, 4, 8, 16)
# The space whose every choice Larq Compute Engine runs as a binary convolution: multiples
# of 32 channels per group, or a full convolution where no such group fits.
LCE_CHANNELS_PER_GROUP = (32, 64, 128)
COSTS = ("binary_macs", "float_macs", "memory_mb")
LATENCY = "latency_ms"  # a cost too, once a search measures its latency table


def allowed_groups(channels: int, channels_per_group) -> list:
    """Group counts of a block: one per allowed group width that divides its channels;
    a full convolution (1 group) if none does."""
    return [channels // k for k in channels_per_group if k <= channels and channels % k == 0] or [1]


class SearchSpace:
    def __init__(self, model_name: str = "BinaryMobileNet-Depthwise", input_shape=None,
                 num_classes: int = 10, channels_per_group=CHANNELS_PER_GROUP, **model_config):
        self.model_name = model_name
        self.input_shape = tuple(input_shape) if input_shape else None
        self.num_classes = num_classes
        self.model_config = model_config
        self.record = get_record(model_name)
        # The network being searched: the record's configuration with the caller's overrides.
        self.network_config = {**self.record.config, **model_config}
        self.channels = mobilenet.block_channels(self.network_config["width_multiplier"])
        self.choices = [allowed_groups(c, channels_per_group) for c in self.channels]
        # The widest group the supernet's shared kernel must hold.
        self.max_group_size = max(c // min(g) for c, g in zip(self.channels, self.choices))
        self.latency_table = None  # search.evolution.latency.LatencyTable, for a latency budget

    def validate(self, groups) -> list:
        groups = list(groups)
        if len(groups) != len(self.choices):
            raise ValueError(f"groups needs one count per block ({len(self.choices)}), "
                             f"got {len(groups)}.")
        for block, (g, allowed) in enumerate(zip(groups, self.choices)):
            if g not in allowed:
                raise ValueError(f"groups[{block}]={g} is not an allowed choice {allowed}.")
        return groups

    def build(self, groups, **overrides):
        return build_model(self.model_name, input_shape=self.input_shape,
                           num_classes=self.num_classes, groups=list(groups),
                           **{**self.model_config, **overrides})

    def costs(self, groups) -> dict:
        """Binary MACs, float MACs and memory of the deployable network, counted by larq
        (and its estimated LCE latency, given a latency table).

        Only the 3x3 group convolutions depend on the groups, and larq's counts are sums
        over layers; so the network is profiled once and each block's convolution on its
        own, rather than building a whole network per configuration (2 s each)."""
        groups = mobilenet.resolve_groups(list(groups), self.network_config["width_multiplier"])
        base_totals, base_groups, _ = self._base
        totals = dict(base_totals)
        for block, (old, new) in enumerate(zip(base_groups, groups)):
            before, after = self._conv_costs(block, old), self._conv_costs(block, new)
            for key in totals:
                totals[key] += after[key] - before[key]
        totals["memory_mb"] = totals.pop("memory_bits") / BITS_PER_MB
        if self.latency_table is not None:
            totals[LATENCY] = self.latency_table.estimate_ms(groups)
        return totals

    @functools.cached_property
    def _base(self):
        """The first choice's network: its totals, groups, and each group conv's input shape."""
        import larq as lq
        import tensorflow as tf

        groups = [choices[0] for choices in self.choices]
        model = self.build(groups)
        convs = [layer for layer in model.layers  # the 3x3s; the pointwise convs are 1x1
                 if isinstance(layer, lq.layers.QuantConv2D) and layer.kernel_size == (3, 3)]
        assert len(convs) == len(mobilenet.BLOCKS), "one 3x3 group conv per block"
        totals = _larq_costs(lq.models.ModelProfile(model))
        shapes = [(tuple(c.input_shape[1:]), c.strides[0]) for c in convs]
        tf.keras.backend.clear_session()
        return totals, groups, shapes

    def block_conv(self, block: int, groups: int):
        """The block's 3x3 group convolution alone, as a model on its input in the network:
        what changes with the block's group count (costs, latency)."""
        import tensorflow as tf

        shape, strides = self._base[2][block]
        inputs = tf.keras.Input(shape)
        conv = mobilenet.binary_group_conv(shape[-1], groups, strides, block)
        return tf.keras.Model(inputs, conv(inputs), name=f"block{block}_groups{groups}")

    @functools.lru_cache(maxsize=None)
    def _conv_costs(self, block: int, groups: int) -> dict:
        import larq as lq

        return _larq_costs(lq.models.LayerProfile(self.block_conv(block, groups).layers[-1]))


def _larq_costs(p) -> dict:
    """larq's counts of a model or layer profile, memory in bits so that they add up."""
    return {"binary_macs": p.op_count("mac", 1) or 0, "float_macs": p.op_count("mac", 32) or 0,
            "memory_bits": p.memory}
