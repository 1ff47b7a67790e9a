"""The quantizer choices of every binary layer in the zoo, in one place.

A `BinaryQuantization` names how activations and weights are binarized and how latent
weights are clipped. Layers ask it for fresh quantizer objects (`conv_kwargs`), so no
two layers share a stateful quantizer instance.
"""

import contextlib
from dataclasses import dataclass

import larq as lq

_float_twin = False


@contextlib.contextmanager
def float_twin():
    """Models built inside this block have no quantizers: the full-precision twin of the
    same network, the baseline for memory, size and latency comparisons.

    Its nonlinearities are only those the network has besides sign(): BinaryDenseNet's
    ReLUs and pools, UBNAS's pooling operations; BinaryMobileNet has none, so its twin
    is a linear classifier (S1's trailed the binary network by 3 points after 3 epochs)."""
    global _float_twin
    previous, _float_twin = _float_twin, True
    try:
        yield
    finally:
        _float_twin = previous


def building_float_twin() -> bool:
    return _float_twin


@dataclass(frozen=True)
class BinaryQuantization:
    activation: str  # "ste_sign" or "approx_sign"
    clip_value: float  # STE clip for activations/weights and the latent-weight clip

    def input_quantizer(self):
        if _float_twin:
            return None
        if self.activation == "approx_sign":
            return lq.quantizers.ApproxSign()
        return lq.quantizers.SteSign(clip_value=self.clip_value)

    def kernel_quantizer(self):
        return None if _float_twin else lq.quantizers.SteSign(clip_value=self.clip_value)

    def kernel_constraint(self):
        return None if _float_twin else lq.constraints.WeightClip(clip_value=self.clip_value)

    def conv_kwargs(self) -> dict:
        return dict(
            input_quantizer=self.input_quantizer(),
            kernel_quantizer=self.kernel_quantizer(),
            kernel_constraint=self.kernel_constraint(),
        )


# BinaryDenseNet (Bethge et al.): SteSign with clip 1.3 on inputs and weights.
DENSENET = BinaryQuantization(activation="ste_sign", clip_value=1.3)

# Searched networks: ApproxSign (Bi-Real Net) on activations for a gradient closer to
# sign's, SteSign on weights with the usual clip at 1.
APPROX_SIGN = BinaryQuantization(activation="approx_sign", clip_value=1.0)


def uses_only_kernel_sign(layer) -> bool:
    """Whether a layer reads nothing of its kernel but the sign (0 counts as +1), so the
    kernel can be stored as one bit per weight. The latent values only matter to training."""
    return isinstance(getattr(layer, "kernel_quantizer", None), lq.quantizers.SteSign)
