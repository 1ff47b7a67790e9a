"""Run outputs that must survive a kill: atomic JSON, weights, and the curves plot."""

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from zoo import weights as weights_io  # noqa: E402


def write_json(path, data) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def read_json(path, default=None):
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default


def save_weights(model, path, model_name: str) -> str:
    """Save weights atomically; return their SHA-256."""
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    digest = weights_io.save(model, tmp, model_name)
    os.replace(tmp, path)
    return digest


def plot_curves(epochs: list, path, title: str) -> None:
    """Loss and accuracy per epoch, training against validation."""
    if not epochs:
        return
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))

    def curve(ax, key, label, scale=1.0):  # epochs without a validation pass lack val_ keys
        points = [(e["epoch"], scale * e[key]) for e in epochs if key in e]
        if points:
            ax.plot(*zip(*points), marker="o", label=label)

    for key, label in (("loss", "train"), ("val_loss", "validation")):
        curve(loss_ax, key, label)
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation top-1"),
                       ("val_top5", "validation top-5")):
        curve(acc_ax, key, label, 100)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
