"""`make demo`: every shipped model on the Fashion-MNIST test set, against its float twin.

Offline: weights come from the package, data from Debian's dataset-fashion-mnist. Prints
one table (top-1, parameters, memory, binary MACs, TFLite size, LCE latency, and the same
figures for the float twin, whose top-1 is the one its training run recorded), writes it
to docs/demo.md with a plot of accuracy against memory (docs/accuracy_vs_memory.png), and
the numbers to benchmarks/results/demo.json. Fails if a model no longer scores its
recorded top-1, or if its flatbuffer classifies test images unlike the Keras model.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo import preprocessing, weights as weights_io  # noqa: E402
from benchmarks.common import machine, save  # noqa: E402
from benchmarks.inference import measure  # noqa: E402
from training import datasets  # noqa: E402
from training.export import distinct_batch_norm  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
DATASET = "fashion_mnist"
MAX_DRIFT_POINTS = 0.2  # evaluated against recorded top-1, as tests/test_shipped_weights.py
LCE_CHECK_IMAGES = 1000  # the flatbuffer must classify these as the Keras model does
MIN_LCE_AGREEMENT = 0.99


def test_set():
    folder = datasets.find_fashion_mnist(None)
    if folder is None:
        sys.exit("error: Fashion-MNIST not found; `apt-get install dataset-fashion-mnist`.")
    return datasets.idx_arrays(folder, "test")


def evaluate(record, images, labels) -> dict:
    model = zoo.build_model(record.name, weights=DATASET)  # takes raw uint8 images
    top1 = float(np.mean(np.argmax(model.predict(images, batch_size=500, verbose=0), -1) == labels))
    shipped = record.weights[DATASET].top
    # Profile and export the trained network itself (without the preprocessing wrapper):
    # LCE converts a never-trained one differently (training.export.merged_dilated_convs).
    bare = zoo.build_model(record.name, weights=weights_io.fetch(shipped.location, shipped.sha256))
    twin = distinct_batch_norm(zoo.build_float_twin(record.name))  # converts as if trained
    normalise = preprocessing.get(record.weights[DATASET].preprocessing)
    deployed_check = normalise(images[:LCE_CHECK_IMAGES]).numpy()
    return {"model": record.name, "top1": 100 * top1,
            "recorded_top1": record.weights[DATASET].metrics["top1"],
            "binary": {**zoo.profile(bare).as_dict(),
                       **measure(bare, repeats=20, images=deployed_check)},
            "float_twin": {**zoo.profile(twin).as_dict(), **measure(twin, repeats=20),
                           "recorded_top1": record.weights[DATASET].float_twin_metrics.get("top1")}}


def markdown(rows) -> str:
    head = ("| Model | Top-1 (%) | Params | Memory (MB) | Binary MACs (M) | TFLite (KB) | "
            "LCE latency (ms) | LCE = Keras (%) | Float twin top-1 (%) | Float twin memory (MB) | "
            "Float twin TFLite (KB) | Float twin latency (ms) |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        b, f = r["binary"], r["float_twin"]
        lines.append(
            f"| {r['model']} | {r['top1']:.2f} | {b['params']:,} | {b['memory_mb']:.3f} | "
            f"{b['binary_macs'] / 1e6:.1f} | {b['bytes'] / 1024:.0f} | {b['latency_ms_1_thread']:.2f} | "
            f"{100 * b['lce_agreement']:.1f} | {_percent(f['recorded_top1'])} | "
            f"{f['memory_mb']:.3f} | {f['bytes'] / 1024:.0f} | {f['latency_ms_1_thread']:.2f} |")
    return "\n".join(lines)


def _percent(value) -> str:
    return "not trained" if value is None else f"{value:.2f}"


def plot(rows, path):
    """Each binary model as a dot; its float twin, where trained, as a ring joined to it."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        point = (r["binary"]["memory_mb"], r["top1"])
        (dot,) = ax.plot(*point, "o")
        ax.annotate(r["model"], point, fontsize=8)
        twin = (r["float_twin"]["memory_mb"], r["float_twin"]["recorded_top1"])
        if twin[1] is not None:
            ax.plot(*zip(point, twin), ":", color=dot.get_color())
            ax.plot(*twin, "o", mfc="none", color=dot.get_color())
    ax.set(xscale="log", xlabel="memory (MB, larq; log scale)", ylabel="Fashion-MNIST top-1 (%)",
           title="Shipped binary models (dots) and their float twins (rings)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    images, labels = test_set()
    records = [r for r in zoo.list_models() if DATASET in r.weights]
    rows = [evaluate(r, images, labels) for r in records]
    table = markdown(rows)
    print(table)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "demo.md").write_text(
        "# Demo: shipped models on Fashion-MNIST\n\nGenerated by `make demo` "
        "(benchmarks/demo.py); latency is LCE's x86 interpreter, 1 thread, median of 20. "
        f"\"LCE = Keras\": how many of the first {LCE_CHECK_IMAGES} test images the flatbuffer "
        "classifies as the Keras model does. "
        "Top-1 is evaluated here; the float twin's is the one its training run recorded "
        "(`train.py --float-twin`, packaged with the binary weights), since only the binary "
        "weights ship.\n\n"
        + table + "\n\n![accuracy against memory](accuracy_vs_memory.png)\n")
    plot(rows, DOCS / "accuracy_vs_memory.png")
    save("demo", {"machine": machine(), "dataset": DATASET, "models": rows})
    drifted = [r for r in rows if abs(r["top1"] - r["recorded_top1"]) > MAX_DRIFT_POINTS]
    for r in drifted:
        print(f"error: {r['model']} scored {r['top1']:.2f}%, its record says "
              f"{r['recorded_top1']:.2f}%: its weights or preprocessing no longer match.")
    misconverted = [r for r in rows if r["binary"]["lce_agreement"] < MIN_LCE_AGREEMENT]
    for r in misconverted:
        print(f"error: {r['model']}'s LCE flatbuffer classifies only "
              f"{100 * r['binary']['lce_agreement']:.1f}% of {LCE_CHECK_IMAGES} test images as "
              "the Keras model does: the conversion changed what the network computes.")
    if drifted or misconverted:
        sys.exit(1)


if __name__ == "__main__":
    main()
