"""DARTS outputs drawn with matplotlib: alpha per edge over epochs, the cells, the curve."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from search.darts.supernet import CELL_TYPES, EDGES  # noqa: E402
from zoo.models import ubnas  # noqa: E402


def plot_alphas(history: list, path, primitives) -> None:
    """softmax(alpha) of every operation (named by `primitives`, alpha's columns) on every
    edge of the normal cell, per epoch."""
    alphas = np.array([e["alpha"]["normal"] for e in history])  # epochs x edges x ops
    cols = 7
    rows = int(np.ceil(EDGES / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), sharey=True)
    epochs = [e["epoch"] for e in history]
    for edge, ax in enumerate(axes.flat):
        for op, name in enumerate(primitives):
            ax.plot(epochs, alphas[:, edge, op], label=name)
        ax.set_title(f"edge {edge}", fontsize=9)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("normal cell: softmax(alpha) per edge")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_cells(genotype: dict, path) -> None:
    """Each cell as a graph: inputs c_{k-2}, c_{k-1}, nodes 0-3, edges named by operation."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    names = ["c_{k-2}", "c_{k-1}"] + [str(n) for n in range(ubnas.NODES)]
    position = {0: (0, 1), 1: (0, -1)}
    position.update({n + 2: (1.5 + n, 1.2 * (-1) ** n * 0.5) for n in range(ubnas.NODES)})
    for ax, cell_type in zip(axes, CELL_TYPES):
        for index, (op, source) in enumerate(genotype[cell_type]):
            target = index // 2 + 2
            (x0, y0), (x1, y1) = position[source], position[target]
            ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color="gray"))
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, op, fontsize=7, ha="center",
                    bbox=dict(boxstyle="round", fc="lightyellow", lw=0.3))
        for node, (x, y) in position.items():
            ax.text(x, y, names[node], ha="center", va="center", fontsize=9,
                    bbox=dict(boxstyle="circle", fc="lightblue" if node > 1 else "lightgreen"))
        ax.set_xlim(-0.6, 1.5 + ubnas.NODES)
        ax.set_ylim(-1.6, 1.6)
        ax.axis("off")
        ax.set_title(f"{cell_type} cell (output: concat of nodes 0-3)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curve(history: list, path) -> None:
    epochs = [e["epoch"] for e in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [100 * e["accuracy"] for e in history], "o-", label="train (weights split)")
    ax.plot(epochs, [100 * e["val_accuracy"] for e in history], "o-", label="validation (alpha split)")
    warm = [e["epoch"] for e in history if not e["arch_updates"]]
    if warm:
        ax.axvspan(0.5, max(warm) + 0.5, alpha=0.1, label="warm-up")
    ax.set(xlabel="epoch", ylabel="supernet accuracy (%)", title="search curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
