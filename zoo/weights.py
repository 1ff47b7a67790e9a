"""Fetch, verify and load weights files.

Every file is checked against its SHA-256 before it is loaded: a mismatching file is
refused (and removed from the download cache, so nothing half-downloaded stays there).
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.parse
from pathlib import Path

import h5py

PACKAGE_WEIGHTS_DIR = Path(__file__).parent / "weights"
DOWNLOAD_TIMEOUT_SECONDS = 30
_MODEL_ATTR = "zoo_model"


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or for another architecture."""


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path, sha256: str) -> None:
    actual = sha256_of(path)
    if actual != sha256:
        raise WeightsError(
            f"Refusing to load {path}: its SHA-256 is {actual}, expected {sha256}. "
            "The file is corrupt or not the published one; delete it and download again."
        )


def fetch(location: str, sha256: str, cache_dir=None) -> str:
    """Return a local, verified path for a weights location (URL or package file).

    Downloads are cached by Keras' `get_file` under `cache_dir`, else $ZOO_CACHE_DIR,
    else ~/.keras.
    """
    if "://" not in location:
        path = PACKAGE_WEIGHTS_DIR / location
        if not path.exists():
            raise WeightsError(f"Packaged weights file {path} is missing; reinstall zoo.")
        verify(path, sha256)
        return str(path)

    import tensorflow as tf

    cache_dir = cache_dir or os.environ.get("ZOO_CACHE_DIR") or os.path.expanduser("~/.keras")
    os.makedirs(cache_dir, exist_ok=True)  # else get_file silently falls back to /tmp
    fname = os.path.basename(urllib.parse.urlparse(location).path)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        path = tf.keras.utils.get_file(
            fname=fname,
            origin=location,
            file_hash=sha256,
            hash_algorithm="sha256",
            cache_dir=cache_dir,
            cache_subdir="zoo_weights",
        )
    except ValueError as error:  # downloaded, but the hash differs
        _remove_cached(fname, cache_dir)
        raise WeightsError(
            f"Downloaded {location} but its SHA-256 is not {sha256}; the file was "
            "removed and not loaded."
        ) from error
    except Exception as error:
        raise WeightsError(
            f"Could not download weights from {location} ({error}). If you are offline, "
            "download the file elsewhere and pass weights='/path/to/file.h5'."
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    verify(path, sha256)
    return path


def _remove_cached(fname: str, cache_dir) -> None:
    candidate = Path(cache_dir) / "zoo_weights" / fname
    if candidate.exists():
        candidate.unlink()


def save(model, path, model_name: str) -> str:
    """Save weights as HDF5, tagged with the model name; return the file's SHA-256."""
    model.save_weights(str(path), save_format="h5")
    with h5py.File(path, "a") as f:
        f.attrs[_MODEL_ATTR] = model_name
    return sha256_of(path)


def load_into(model, path, model_name: str) -> None:
    """Load an HDF5 weights file, explaining a mismatch in terms of both models."""
    path = str(path)
    if not os.path.exists(path):
        raise WeightsError(f"Weights file {path} does not exist.")
    try:
        with h5py.File(path, "r") as f:
            saved_for = f.attrs.get(_MODEL_ATTR)
            saved_layers = len(f.attrs.get("layer_names", []))
    except OSError as error:
        raise WeightsError(f"{path} is not a readable HDF5 weights file ({error}).") from None
    try:
        model.load_weights(path)
    except (ValueError, KeyError) as error:
        described = saved_for or f"a model with {saved_layers} layers"
        ours = sum(1 for layer in model.layers if layer.weights)
        raise WeightsError(
            f"{path} holds weights for {described}, which do not fit {model_name} "
            f"({ours} layers with weights, input {model.input_shape[1:]}, output "
            f"{model.output_shape[1:]}): {error}"
        ) from None
