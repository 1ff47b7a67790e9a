"""LCE inference: flatbuffer size and latency of binary models against their float twins.

    python benchmarks/inference.py [--repeats 20] [--models UBNAS-A ...]

Each model is converted with Larq Compute Engine and timed in LCE's x86 interpreter at
1 and 2 threads (`training.export.latency_method`); its float twin (the same network,
quantizers removed) is converted and timed in the same run. LCE's fast binary kernels
target 64-bit ARM: on x86 binary layers are not expected to beat float XNNPack.
Models are untrained builds whose BatchNormalizations get distinct values first
(`training.export.distinct_batch_norm`): with the equal values of a fresh build the
converter merges parallel branches and leaves their dilated binary convolutions in float,
which no trained network does. Each row counts the binary and float convolutions LCE runs.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import load, machine, save  # noqa: E402
from training.export import LATENCY_REPEATS, distinct_batch_norm, flatbuffer_report  # noqa: E402

CASES = [("BinaryDenseNet28", (224, 224, 3), 1000)] + [
    (r.name, tuple(r.default_input_shape), r.default_num_classes)
    for r in zoo.list_models() if tuple(r.default_input_shape) == (28, 28, 1)
]


def measure(model, repeats: int = LATENCY_REPEATS, images=None) -> dict:
    """`training.export.flatbuffer_report` on a temporary flatbuffer."""
    with tempfile.TemporaryDirectory() as tmp:
        return flatbuffer_report(model, Path(tmp) / "model.tflite", repeats=repeats, images=images)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=LATENCY_REPEATS)
    parser.add_argument("--models", nargs="+",
                        help="measure only these; the other rows of the results file are kept")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.models or c[0] in args.models]
    if args.models and len(cases) != len(args.models):
        parser.error(f"--models: choose from {[c[0] for c in CASES]}")
    rows = []
    for name, shape, classes in cases:
        kwargs = dict(input_shape=shape, num_classes=classes)
        binary = measure(distinct_batch_norm(zoo.build_model(name, **kwargs)), args.repeats)
        twin = measure(distinct_batch_norm(zoo.build_float_twin(name, **kwargs)), args.repeats)
        tf.keras.backend.clear_session()
        row = {"model": name, "input_shape": list(shape), "binary": binary, "float_twin": twin,
               "size_ratio": twin["bytes"] / binary["bytes"],
               "latency_ratio_1_thread": twin["latency_ms_1_thread"] / binary["latency_ms_1_thread"]}
        rows.append(row)
        print(f"{name} {shape}: {binary['bytes'] / 1e6:.2f} MB vs float {twin['bytes'] / 1e6:.2f} MB; "
              f"{binary['latency_ms_1_thread']:.2f} / {binary['latency_ms_2_threads']:.2f} ms vs float "
              f"{twin['latency_ms_1_thread']:.2f} / {twin['latency_ms_2_threads']:.2f} ms (1 / 2 threads)",
              flush=True)
    measured = {r["model"] for r in rows}
    kept = [r for r in (load("inference") or {}).get("models", []) if r["model"] not in measured]
    order = [name for name, _, _ in CASES]
    rows = sorted(kept + rows, key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    print(f"saved {save('inference', {'machine': machine(), 'repeats': args.repeats, 'models': rows})}")


if __name__ == "__main__":
    main()
