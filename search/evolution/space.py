"""The search space: allowed group counts per block, and the cost of a configuration."""

from __future__ import annotations

import functools

from zoo import build_model, get_record, profile
from zoo.models import mobilenet

# Channels per group a block may use: 1 is depthwise; more widens the binary output range.
CHANNELS_PER_GROUP = (1, 2, 4, 8, 16)
# The space whose every choice Larq Compute Engine runs as a binary convolution: multiples
# of 32 channels per group, or a full convolution where no such group fits.
LCE_CHANNELS_PER_GROUP = (32, 64, 128)
COSTS = ("binary_macs", "float_macs", "memory_mb")


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

    def validate(self, groups) -> list:
        groups = list(groups)
        for block, (g, allowed) in enumerate(zip(groups, self.choices)):
            if g not in allowed:
                raise ValueError(f"groups[{block}]={g} is not an allowed choice {allowed}.")
        return groups

    def build(self, groups, **overrides):
        return build_model(self.model_name, input_shape=self.input_shape,
                           num_classes=self.num_classes, groups=list(groups),
                           **{**self.model_config, **overrides})

    @functools.lru_cache(maxsize=None)
    def _costs(self, groups: tuple) -> dict:
        import tensorflow as tf

        costs = profile(self.build(groups)).as_dict()
        tf.keras.backend.clear_session()
        return {k: costs[k] for k in COSTS}

    def costs(self, groups) -> dict:
        """Binary MACs, float MACs and memory of the deployable network, counted by larq."""
        return dict(self._costs(tuple(groups)))
