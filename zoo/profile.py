"""Model costs as larq counts them: the numbers behind `python -m zoo list` and the docs."""

from dataclasses import asdict, dataclass

import larq as lq

from zoo.layers import BinaryConv2D
from zoo.weights import PACKAGE_WEIGHTS_DIR

BITS_PER_MB = 8 * 1024 * 1024


@dataclass(frozen=True)
class Profile:
    params: int  # Keras' count, BatchNorm statistics included (what larq-zoo publishes)
    binary_params: int
    float_params: int  # larq's count: BatchNorm folded to 2 values per channel
    memory_mb: float  # larq's model size: 1-bit weights at 1 bit, the rest at 32
    binary_macs: int
    float_macs: int
    applied_binary_macs: int  # binary_macs less those of the taps BinaryConv2D skips

    def as_dict(self):
        return asdict(self)


def profile(model) -> Profile:
    p = lq.models.ModelProfile(model)
    binary_macs = p.op_count("mac", 1)
    return Profile(
        params=model.count_params(),
        binary_params=p.weight_count(bitwidth=1),
        float_params=p.weight_count(bitwidth=32),
        memory_mb=p.memory / BITS_PER_MB,
        binary_macs=binary_macs,
        float_macs=p.op_count("mac", 32),
        applied_binary_macs=binary_macs - sum(map(skipped_binary_macs, model.layers)),
    )


def skipped_binary_macs(layer) -> int:
    """The binary MACs larq counts for kernel taps that only ever read padding: a
    `BinaryConv2D` skips them and the flatbuffer leaves them out (UBNAS-A's dilated 5x5s
    on 4x4 maps apply 9 of 25 taps), so larq's count overstates what the network computes.
    larq's counts stay the accounting (memory included: the taps' weights are stored)."""
    if not isinstance(layer, BinaryConv2D) or not layer.unapplied_weights:
        return 0
    if _precision(layer.kernel_quantizer) != 1 or _precision(layer.input_quantizer) != 1:
        return 0  # a float twin's layer: its MACs are float
    height, width = layer.output_shape[1:3]
    return layer.unapplied_weights * height * width


def _precision(quantizer) -> int:
    return getattr(quantizer, "precision", 32)  # None (a float twin's layer): 32 bits


LCE_GROUP_MULTIPLE = 32


def lce_float_group_convs(model) -> dict:
    """Binary group convolutions that Larq Compute Engine runs in float: name -> input
    channels per group.

    LCE's binary kernels take a grouped convolution only with a multiple of 32 input
    channels per group (larq/compute-engine#549); the converter keeps any other as a
    float CONV_2D on +-1 weights, so it is neither 1-bit in the flatbuffer nor fast.
    """
    return {name: n for name, n in _binary_group_convs(model).items() if n % LCE_GROUP_MULTIPLE}


def lce_reference_only_group_convs(model) -> dict:
    """Binary group convolutions that LCE converts to binary ones (32k input channels per
    group) but that only its reference kernel runs: name -> input channels per group.

    Measured with LCE's x86 interpreter: the optimized kernel refuses them ("Grouped binary
    convolutions are not supported with this kernel"); `use_reference_bconv=True` runs
    them and matches Keras.
    """
    return {name: n for name, n in _binary_group_convs(model).items()
            if n % LCE_GROUP_MULTIPLE == 0}


def _binary_group_convs(model) -> dict:
    """Every binary group convolution: name -> input channels per group."""
    return {layer.name: int(layer.input_shape[-1]) // layer.groups for layer in model.layers
            if isinstance(layer, lq.layers.QuantConv2D) and layer.groups > 1}


COLUMNS = (
    ("Model", lambda r, p: r.name),
    ("Family", lambda r, p: r.family),
    ("Input", lambda r, p: "x".join(str(s) for s in r.default_input_shape)),
    ("Params", lambda r, p: f"{p.params:,}"),
    ("1-bit params", lambda r, p: f"{p.binary_params:,}"),
    ("32-bit params (BN folded)", lambda r, p: f"{p.float_params:,}"),
    ("Memory (MB)", lambda r, p: f"{p.memory_mb:.2f}"),
    ("Binary MACs (M)", lambda r, p: binary_macs_text(p.binary_macs, p.applied_binary_macs)),
    ("Float MACs (M)", lambda r, p: f"{p.float_macs / 1e6:,.1f}"),
    ("Weights", lambda r, p: ", ".join(_weights_cell(k, w) for k, w in r.weights.items()) or "-"),
)


def binary_macs_text(binary_macs: int, applied: int) -> str:
    """Millions of binary MACs as larq counts them, and those applied where fewer."""
    text, applied_text = (f"{macs / 1e6:,.1f}" for macs in (binary_macs, applied))
    return text if applied_text == text else f"{text} ({applied_text} applied)"


def _weights_cell(key, weights):
    facts = []
    if weights.metrics.get("top1") is not None:
        facts.append(f"{weights.metrics['top1']:.2f}% top-1")
    if weights.float_twin_metrics:
        facts.append(f"float twin {weights.float_twin_metrics['top1']:.2f}%")
    shipped = PACKAGE_WEIGHTS_DIR / weights.top.location
    if "://" not in weights.top.location and shipped.exists():
        facts.append(f"{shipped.stat().st_size / 1024:,.0f} KB file")
    return f"{key} ({', '.join(facts)})" if facts else key


def model_table(records, markdown: bool = False) -> str:
    """Build each record's model at its default input and tabulate its profile."""
    from zoo.registry import build_model

    rows = []
    for record in records:
        model = build_model(record.name)
        rows.append([cell(record, profile(model)) for _, cell in COLUMNS])
    header = [title for title, _ in COLUMNS]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in column) for column in zip(header, *rows)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join(fmt.format(*row) for row in [header, *rows])
