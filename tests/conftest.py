"""Shared fixtures. `zoo` is imported first so that tf.keras is Keras 2."""

import csv
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

import zoo  # noqa: F401  (must precede tensorflow)
import tensorflow as tf  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_chief_and_workers(args, cwd, *, workers: int, timeout: int = 400) -> None:
    """Run one command as keras-tuner's chief and `workers` workers (tuner0, tuner1, ...)
    on 127.0.0.1; fail with the output of any process that fails."""
    base = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(free_port())}
    ids = ["chief"] + [f"tuner{i}" for i in range(workers)]
    processes = [subprocess.Popen(args, cwd=cwd, env={**base, "KERASTUNER_TUNER_ID": i},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for i in ids]
    # Workers first: the chief only exits once they have finished every trial.
    outputs = [p.communicate(timeout=timeout)[0] for p in reversed(processes)][::-1]
    for tuner_id, process, output in zip(ids, processes, outputs):
        assert process.returncode == 0, f"{tuner_id} failed:\n{output[-2000:]}"


class DataLoaded(Exception):
    """Raised where a search would load its data: every check before that has passed."""


@pytest.fixture
def stop_at_data(monkeypatch):
    """Runs a search command up to its data loading, so its checks run in milliseconds."""
    import search.evolution.run  # imported before the patch, or it would keep the stub

    def load(*args, **kwargs):
        raise DataLoaded

    monkeypatch.setattr("search.data.train_val_arrays", load)
    monkeypatch.setattr(search.evolution.run, "train_val_arrays", load)
    return DataLoaded


@pytest.fixture
def eager_functions():
    """Run tf.functions eagerly: for tiny searches, tracing costs more than the steps."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


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


def pytest_collection_modifyitems(items):
    """Run the tests marked `slow` first: with one xdist worker per core, the long ones
    then overlap each other instead of leaving one worker busy after the other is done."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    yield
    tf.keras.backend.clear_session()
