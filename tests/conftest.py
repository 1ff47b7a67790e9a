"""Shared fixtures. `zoo` is imported first so that tf.keras is Keras 2."""

import csv
import socket
from pathlib import Path

import numpy as np
import pytest

import zoo  # noqa: F401  (must precede tensorflow)
import tensorflow as tf  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-samples"


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for keras-tuner's chief/worker tests."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def imagenet_sample_files(count: int):
    if not SAMPLES.exists():
        pytest.fail(f"{SAMPLES} is missing: the repository must sit beside shared/.")
    with open(SAMPLES / "LABELS.tsv") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    files = sorted(SAMPLES.glob("*.JPEG"))
    assert len(files) >= count
    return files[:count], rows


@pytest.fixture(scope="session")
def imagenet_batch():
    """Four real ImageNet JPEGs (one grayscale), centre-cropped to 224 and normalised."""
    from zoo.preprocessing import imagenet

    files, _ = imagenet_sample_files(3)
    files = files + [SAMPLES / "n02096051.JPEG"]  # a single-channel JPEG
    images = []
    for path in files:
        image = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3)  # gray -> RGB
        image = tf.image.resize_with_crop_or_pad(tf.image.resize(image, (256, 256)), 224, 224)
        images.append(imagenet(image))
    return np.stack(images)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    yield
    tf.keras.backend.clear_session()
