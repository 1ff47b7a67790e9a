"""Helpers every benchmark shares: machine description, medians, JSON results."""

import argparse
import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def code_commit() -> str:
    """The commit whose code a result measures ("+changes" if the tree was edited)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def machine() -> dict:
    import tensorflow as tf

    return {
        "commit": code_commit(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def budget_text(budget: dict) -> str:
    """A search budget ({"binary_macs": 3.1e6, ...}) as a reader writes it: 3.1M binary MACs."""
    units = {"binary_macs": "M binary MACs", "float_macs": "M float MACs", "memory_mb": " MB",
             "latency_ms": " ms LCE latency"}
    return ", ".join(f"{value / 1e6 if key.endswith('macs') else value:g}{units[key]}"
                     for key, value in budget.items())


def median(values) -> float:
    return float(statistics.median(values))


def load(name: str):
    """A results file as data, or None if it was never measured."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def result_name(text: str) -> str:
    """An argparse type for a results file's name, checked before a long measurement
    rather than when its result is saved."""
    if "/" in text or text.endswith(".json"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give the bare name (e.g. evolution_targets_3.1M); the result is "
            f"saved as {RESULTS.relative_to(RESULTS.parents[1])}/NAME.json")
    return text


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def latency_methods(rows) -> str:
    """How the LCE latencies of these result rows were measured (each row records it)."""
    methods = {row[side]["latency_method"] for row in rows for side in ("binary", "float_twin")}
    return "; ".join(sorted(methods))
