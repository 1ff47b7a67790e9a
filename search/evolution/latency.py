"""Measured Larq Compute Engine latency as a search budget, from a per-block lookup table.

Measuring a whole network in LCE takes seconds (build, convert, run): too slow for the
thousands of candidates that budget checks and budget-sampled supernet training see.
Only the 3x3 group convolutions change with the groups, so a configuration's latency is
estimated as the measured latency of the first choice's network plus, per block, the
measured latency of that block's convolution alone at the chosen group count minus at
the first one. benchmarks/evolution_latency.py measures how far the estimate is from
whole networks. The table is measured once per search directory, on the machine that
runs the search, and reused on resume: the budget is in that machine's milliseconds.
Measure it on a quiet machine: beside a training run that used both cores, one table
put the far end of the space 45% below its measured whole network; alone, the estimates
were within 3% (docs/benchmarks.md).
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path

from search.resume import CorruptSearchError
from training.export import convert, distinct_batch_norm, lce_latency_ms
from training.report import read_json, write_json

TABLE_FILE = "latency_table.json"
# One convolution runs in microseconds: thousands of runs fit in these short blocks.
LAYER_TIMING = {"blocks": 3, "block_seconds": 0.1, "warm_up_seconds": 0.1}


class LatencyTable:
    def __init__(self, table: dict):
        self.table = table
        self.base_groups = table["base_groups"]
        # JSON keys are strings: block -> {group count: ms}.
        self.block_ms = [{int(g): ms for g, ms in block.items()} for block in table["block_ms"]]

    def estimate_ms(self, groups) -> float:
        """The first choice's network, adjusted block by block for `groups`."""
        changes = zip(self.block_ms, groups, self.base_groups)
        return self.table["base_ms"] + sum(block[g] - block[base] for block, g, base in changes)


def network_latency_ms(space, groups, threads: int = 1) -> float:
    """One configuration's whole network, measured (its BatchNormalizations given distinct
    values first, so that the untrained build converts as a trained one does)."""
    return model_latency_ms(distinct_batch_norm(space.build(groups)), threads)


def model_latency_ms(model, threads: int, **timing) -> float:
    """Convert `model` with LCE and time it in LCE's interpreter."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(convert(model))
        return lce_latency_ms(path, threads=threads, **timing)


def check_measurable(space) -> None:
    """LCE's optimized kernels refuse binary group convolutions (those with 32k input
    channels per group; `zoo.profile`), so a device could not run them at all."""
    import tensorflow as tf

    from zoo.profile import lce_reference_only_group_convs

    refused = [(block, g) for block, choices in enumerate(space.choices) for g in choices
               if lce_reference_only_group_convs(space.block_conv(block, g))]
    tf.keras.backend.clear_session()
    if refused:
        raise ValueError(
            f"A latency budget needs configurations LCE's optimized kernels run, but these "
            f"(block, groups) choices are binary group convolutions that only its reference "
            f"kernel runs: {refused}. Use --channels-per-group values below 32 (LCE runs those "
            "group convolutions in float) or drop --budget-latency-ms.")


def measure_table(space, threads: int = 1, log=print) -> dict:
    """Every block's convolution at every allowed group count, and the first choice's network."""
    import tensorflow as tf

    check_measurable(space)
    base_groups = [choices[0] for choices in space.choices]
    log(f"measuring the LCE latency table at {threads} thread(s): "
        f"{sum(map(len, space.choices))} block convolutions and one network (LCE's converter "
        "prints 'error: Invalid binary grouped convolution' for each group convolution it "
        "keeps in float, fewer than 32 input channels per group: those convert and are timed)")
    base_ms = network_latency_ms(space, base_groups, threads)
    block_ms = []
    for block, choices in enumerate(space.choices):
        block_ms.append({str(g): model_latency_ms(space.block_conv(block, g), threads,
                                                  **LAYER_TIMING) for g in choices})
        tf.keras.backend.clear_session()
    return {"threads": threads, "host": host(), "choices": space.choices,
            "base_groups": base_groups, "base_ms": base_ms, "block_ms": block_ms}


def load_or_measure(space, path: Path, threads: int = 1, log=print) -> LatencyTable:
    """The search directory's table, measured (and saved) the first time."""
    try:
        table = read_json(path)
    except ValueError as error:
        raise CorruptSearchError(f"{path} is not valid JSON ({error}): delete it to measure "
                                 "the latency table again.") from None
    if table is None:
        table = measure_table(space, threads, log)
        write_json(path, table)
    elif table["choices"] != space.choices or table["threads"] != threads:
        raise ValueError(f"{path} holds latencies of another search space or thread count "
                         f"({table['threads']} thread(s)); use a new --output-dir.")
    else:
        log(f"LCE latency table from {path} (measured on {table['host']})")
    return LatencyTable(table)


def host() -> str:
    """The CPU the table was measured on: latencies hold for that machine only."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()
