"""Fetch, verify and load weights files.

Every file is checked against its SHA-256 before it is loaded: a mismatching file is
refused (and removed from the download cache, so nothing half-downloaded stays there).

Two layouts, both HDF5: Keras' own (`save_weights`, larq-zoo's releases), and "sign bits",
in which every binary kernel is stored as one bit per weight (everything else float32,
gzip-compressed). A binary network only ever reads the sign of those kernels, so the
sign-bits file gives the same predictions with binary kernels 32x smaller; the zoo
ships it. Its binary kernels load as +-1, from which fine-tuning can start.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import urllib.parse
from pathlib import Path

import h5py
import numpy as np

from zoo import quantizers

PACKAGE_WEIGHTS_DIR = Path(__file__).parent / "weights"
DOWNLOAD_TIMEOUT_SECONDS = 30
_MODEL_ATTR = "zoo_model"
_FORMAT_ATTR = "zoo_format"
SIGN_BITS = "sign-bits-1"
_INDEX_ATTR = "zoo_index"


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


def save(model, path, model_name: str, *, sign_bits: bool = False) -> str:
    """Save weights as HDF5 (Keras' layout, or `sign_bits`), tagged with the model name;
    return the file's SHA-256."""
    if sign_bits:
        _save_sign_bits(model, path)
    else:
        model.save_weights(str(path), save_format="h5")
    with h5py.File(path, "a") as f:
        f.attrs[_MODEL_ATTR] = model_name
    return sha256_of(path)


def float_twin_name(model_name: str) -> str:
    """The tag of a float twin's weights: they fit the binary network too, so only the
    tag tells a float teacher from a binary model."""
    return f"{model_name} (float twin)"


def saved_for(path) -> str | None:
    """The model name a weights file was saved for (None for files from elsewhere, and for
    unreadable ones, which `load_into` then explains)."""
    try:
        with h5py.File(path, "r") as f:
            return _model_tag(f)
    except OSError:
        return None


def _model_tag(h5_file) -> str | None:
    name = h5_file.attrs.get(_MODEL_ATTR)
    return name.decode() if isinstance(name, bytes) else name


def load_into(model, path, model_name: str) -> None:
    """Load an HDF5 weights file, explaining a mismatch in terms of both models."""
    path = str(path)
    if not os.path.exists(path):
        raise WeightsError(f"Weights file {path} does not exist.")
    try:
        with h5py.File(path, "r") as f:
            saved_name = _model_tag(f)
            layout = f.attrs.get(_FORMAT_ATTR)
            saved_layers = len(f.attrs.get("layer_names", []))  # Keras' layout only
    except OSError as error:
        raise WeightsError(f"{path} is not a readable HDF5 weights file ({error}).") from None
    if saved_name == float_twin_name(model_name) and not quantizers.building_float_twin():
        # Same shapes, so Keras would load them: a binary network with float weights.
        raise WeightsError(
            f"{path} holds the weights of {model_name}'s float twin (train.py --float-twin); "
            f"load them with zoo.build_float_twin({model_name!r}, weights=...) or evaluate.py "
            "--float-twin, or use them as train.py --teacher-weights.")
    if layout not in (None, SIGN_BITS):
        raise WeightsError(f"{path} has layout {layout!r}, which this zoo version cannot "
                           f"read (it reads {SIGN_BITS!r} and Keras' own); upgrade zoo.")
    try:
        if layout == SIGN_BITS:
            _load_sign_bits(model, path)
        else:
            model.load_weights(path)
    except (ValueError, KeyError) as error:
        described = saved_name or (f"a model with {saved_layers} layers" if saved_layers
                                  else "an unnamed model")
        ours = len(_layers_with_weights(model))
        raise WeightsError(
            f"{path} holds weights for {described}, which do not fit {model_name} "
            f"({ours} layers with weights, input {model.input_shape[1:]}, output "
            f"{model.output_shape[1:]}): {error}"
        ) from None


def _layers_with_weights(model) -> list:
    """In the order Keras' own HDF5 loader matches them: by position, not by name."""
    return [layer for layer in model.layers if layer.weights]


def _save_sign_bits(model, path) -> None:
    """Two flat arrays (all sign bits; all other values as float32, exact for the integer
    counters a layer may hold) and a JSON index of layer types, shapes and dtypes:
    one HDF5 dataset per weight would cost more in headers than the bits themselves.
    No layer names: Keras numbers them per process, and the file (so its SHA-256) should
    depend on the weights alone."""
    index, signs, floats = [], [], []
    for layer in _layers_with_weights(model):
        sign_only = quantizers.uses_only_kernel_sign(layer)
        entry = {"layer": type(layer).__name__, "weights": []}
        for variable, value in zip(layer.weights, layer.get_weights()):
            as_signs = sign_only and variable is layer.kernel
            (signs if as_signs else floats).append(value.ravel())
            entry["weights"].append({"shape": list(value.shape), "dtype": value.dtype.name,
                                     "signs": as_signs})
        index.append(entry)
    with h5py.File(path, "w") as f:
        f.attrs[_FORMAT_ATTR] = SIGN_BITS
        f.attrs[_INDEX_ATTR] = json.dumps(index)
        f.create_dataset("signs", data=np.packbits(np.concatenate(signs or [[]]) >= 0))
        f.create_dataset("floats", data=np.concatenate(floats or [[]]).astype(np.float32),
                         compression="gzip")


def _load_sign_bits(model, path) -> None:
    layers = _layers_with_weights(model)
    with h5py.File(path, "r") as f:
        index = json.loads(f.attrs[_INDEX_ATTR])
        signs = np.unpackbits(f["signs"][()]).astype(np.float32) * 2 - 1
        floats = f["floats"][()]
    if len(index) != len(layers):
        raise ValueError(f"the file has {len(index)} layers with weights, the model {len(layers)}")
    offsets = {True: 0, False: 0}  # values consumed so far from the signs, the floats
    for position, (layer, entry) in enumerate(zip(layers, index)):
        if len(entry["weights"]) != len(layer.weights):
            raise ValueError(f"layer {position} ({layer.name}) has {len(layer.weights)} weights, "
                             f"the file's ({entry['layer']}) {len(entry['weights'])}")
        values = []
        for weight in entry["weights"]:
            source = signs if weight["signs"] else floats
            start, size = offsets[weight["signs"]], int(np.prod(weight["shape"]))
            offsets[weight["signs"]] += size
            value = source[start:start + size].reshape(weight["shape"])
            values.append(value.astype(weight["dtype"]))
        layer.set_weights(values)
