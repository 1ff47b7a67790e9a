"""In-memory train/validation arrays for the searches: the test split is never touched."""

from __future__ import annotations

import numpy as np

from training import datasets


def train_val_arrays(dataset: str, *, train_examples=None, val_examples=10_000, data_dir=None):
    """Split the training split: the first part trains weights, the last part scores."""
    spec = datasets.get_spec(dataset)
    images, labels = [], []
    for batch_images, batch_labels in datasets.pipeline(
        datasets.load_split(spec, spec.train_split, data_dir), spec, training=False,
        batch_size=4096, cache=False,
    ):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    if val_examples >= len(images):
        raise ValueError(f"--val-examples {val_examples} leaves no training images "
                         f"({len(images)} in {dataset}'s training split).")
    split = len(images) - val_examples
    end = split if train_examples is None else min(split, train_examples)
    return (images[:end], labels[:end]), (images[split:], labels[split:])


def accuracy(forward, images, labels, batch_size: int = 500) -> float:
    """Top-1 accuracy of `forward(images) -> probabilities`, in batches."""
    correct = 0
    for start in range(0, len(images), batch_size):
        probs = forward(images[start:start + batch_size])
        correct += int(np.sum(np.argmax(probs, -1) == labels[start:start + batch_size]))
    return correct / len(images)
