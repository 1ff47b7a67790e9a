"""Weights: the download path (offline, through file:// URLs), hashes and mismatches."""

import dataclasses
import time

import h5py
import numpy as np
import pytest

from zoo import build_model, quantizers, registry
from zoo.weights import WeightsError, save, sha256_of

SMALL = dict(input_shape=(32, 32, 3), num_classes=10)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "zoo_weights"


def _publish(monkeypatch, name, url, sha256, num_classes=10, input_shape=(32, 32, 3)):
    """Point the record's 'imagenet' weights at a local URL, as a release would be."""
    record = registry.get_record(name)
    weights = dataclasses.replace(
        record.weights["imagenet"],
        top=registry.WeightsFile(url, sha256),
        num_classes=num_classes,
        input_shape=input_shape,
    )
    patched = dataclasses.replace(record, weights={"imagenet": weights})
    monkeypatch.setitem(registry._REGISTRY, record.name, patched)


def test_named_weights_download_verify_and_load(tmp_path, cache, monkeypatch):
    source = build_model("BinaryDenseNet28", **SMALL)
    path = tmp_path / "release.h5"
    digest = save(source, path, "BinaryDenseNet28")
    _publish(monkeypatch, "BinaryDenseNet28", path.as_uri(), digest)

    loaded = build_model("BinaryDenseNet28", weights="imagenet")
    assert loaded.input_shape == (None, 32, 32, 3)
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert (cache / "release.h5").exists()


def test_hash_mismatch_is_refused_and_not_cached(tmp_path, cache, monkeypatch):
    source = build_model("BinaryDenseNet28", **SMALL)
    path = tmp_path / "release.h5"
    save(source, path, "BinaryDenseNet28")
    _publish(monkeypatch, "BinaryDenseNet28", path.as_uri(), "0" * 64)

    with pytest.raises(WeightsError, match="SHA-256"):
        build_model("BinaryDenseNet28", weights="imagenet")
    assert not (cache / "release.h5").exists()


def test_offline_download_fails_fast_and_names_the_alternative(cache, monkeypatch):
    url = "http://127.0.0.1:9/binary_densenet_28_weights.h5"  # nothing listens on port 9
    _publish(monkeypatch, "BinaryDenseNet28", url, "0" * 64)
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        build_model("BinaryDenseNet28", weights="imagenet")
    assert time.monotonic() - start < 20
    assert url in str(error.value) and "weights='/path/to/file.h5'" in str(error.value)
    assert not cache.exists() or not any(cache.iterdir())


def test_corrupt_local_file_gives_clear_error(tmp_path):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(WeightsError, match="not a readable HDF5"):
        build_model("BinaryDenseNet28", weights=str(path), **SMALL)


def test_weights_of_another_architecture_name_both(tmp_path):
    path = tmp_path / "bdn37.h5"
    save(build_model("BinaryDenseNet37", **SMALL), path, "BinaryDenseNet37")
    with pytest.raises(WeightsError) as error:
        build_model("BinaryDenseNet28", weights=str(path), **SMALL)
    assert "BinaryDenseNet37" in str(error.value) and "BinaryDenseNet28" in str(error.value)


def test_the_published_imagenet_records_pin_larq_zoo_files():
    with_imagenet = [r for r in registry.list_models() if "imagenet" in r.weights]
    assert [r.name for r in with_imagenet] == [
        "BinaryDenseNet28", "BinaryDenseNet37", "BinaryDenseNet37Dilated", "BinaryDenseNet45"]
    for record in with_imagenet:
        weights = record.weights["imagenet"]
        for file in (weights.top, weights.no_top):
            assert file.location.startswith("https://github.com/larq/zoo/releases/download/")
            assert len(file.sha256) == 64 and int(file.sha256, 16) >= 0
        assert weights.metrics["top1"] > 60


def test_sha256_of_a_known_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sha256_of(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sign_bits_file_predicts_like_the_model_at_a_fraction_of_the_size(tmp_path):
    source = build_model("BinaryDenseNetTiny")
    keras_file, bits_file = tmp_path / "keras.h5", tmp_path / "bits.h5"
    save(source, keras_file, "BinaryDenseNetTiny")
    save(source, bits_file, "BinaryDenseNetTiny", sign_bits=True)
    assert bits_file.stat().st_size < keras_file.stat().st_size / 5  # 8x: its 1x1 convs are float

    loaded = build_model("BinaryDenseNetTiny", weights=str(bits_file))
    images = np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               source.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    binary = [layer for layer in loaded.layers if quantizers.uses_only_kernel_sign(layer)]
    assert binary and all(set(np.unique(layer.kernel.numpy())) <= {-1.0, 1.0} for layer in binary)
    float_layers = [(a, b) for a, b in zip(source.layers, loaded.layers)
                    if a.weights and not quantizers.uses_only_kernel_sign(a)]
    for a, b in float_layers:
        for x, y in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(x, y)
    # The file depends on the weights alone, not on the layer names Keras gave this process.
    assert [a.name for a in source.layers] != [b.name for b in loaded.layers]
    assert save(loaded, tmp_path / "again.h5", "BinaryDenseNetTiny", sign_bits=True) == \
        sha256_of(bits_file)


def test_sign_bits_file_of_another_architecture_names_both(tmp_path):
    path = tmp_path / "tiny.h5"
    save(build_model("BinaryDenseNetTiny"), path, "BinaryDenseNetTiny", sign_bits=True)
    with pytest.raises(WeightsError) as error:
        build_model("BinaryMobileNet-Depthwise", weights=str(path))
    assert "BinaryDenseNetTiny" in str(error.value) and "BinaryMobileNet-Depthwise" in str(error.value)


def test_a_file_of_an_unknown_layout_is_refused(tmp_path):
    path = tmp_path / "future.h5"
    save(build_model("BinaryDenseNetTiny"), path, "BinaryDenseNetTiny", sign_bits=True)
    with h5py.File(path, "a") as f:
        f.attrs["zoo_format"] = "sign-bits-99"
    with pytest.raises(WeightsError, match="sign-bits-99.*upgrade"):
        build_model("BinaryDenseNetTiny", weights=str(path))


def test_sign_bits_round_trip_keeps_integer_state_of_the_masked_training_form(tmp_path):
    config = dict(input_shape=(28, 28, 1), num_classes=10, form="masked")
    source = build_model("BinaryMobileNet-Evo", **config)
    path = tmp_path / "masked.h5"
    save(source, path, "BinaryMobileNet-Evo", sign_bits=True)
    loaded = build_model("BinaryMobileNet-Evo", weights=str(path), **config)
    groups = [(a.groups.numpy(), b.groups.numpy()) for a, b in zip(source.layers, loaded.layers)
              if hasattr(a, "groups") and hasattr(a.groups, "numpy")]
    assert groups and all(a == b and b.dtype == np.int32 for a, b in groups)
    images = np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               source.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
