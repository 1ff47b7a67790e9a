"""Our BinaryDenseNets are larq-zoo's: same parameters, same outputs with the same weights."""

import numpy as np
import pytest
import tensorflow as tf
from larq_zoo import literature

from zoo import build_model

LARQ_ZOO = {
    "BinaryDenseNet28": (literature.BinaryDenseNet28, 5_150_504),
    "BinaryDenseNet37": (literature.BinaryDenseNet37, 8_734_120),
    "BinaryDenseNet37Dilated": (literature.BinaryDenseNet37Dilated, 8_734_120),
    "BinaryDenseNet45": (literature.BinaryDenseNet45, 13_939_240),
}


def _trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", list(LARQ_ZOO))
def test_same_network_as_larq_zoo_at_224(name, imagenet_batch):
    reference_fn, published_params = LARQ_ZOO[name]
    reference = reference_fn(weights=None)
    ours = build_model(name)
    assert ours.count_params() == reference.count_params() == published_params
    assert _trainable_count(ours) == _trainable_count(reference)

    ours.set_weights(reference.get_weights())
    expected = reference.predict(imagenet_batch, verbose=0)
    actual = ours.predict(imagenet_batch, verbose=0)
    assert actual.shape == (len(imagenet_batch), 1000)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


# Small inputs change only the stem and the classifier, the same code for every variant;
# the undilated and the dilated transitions are what differ between them.
@pytest.mark.parametrize("name", ["BinaryDenseNet28", "BinaryDenseNet37Dilated"])
def test_same_network_as_larq_zoo_at_small_input(name, imagenet_batch):
    reference_fn, _ = LARQ_ZOO[name]
    reference = reference_fn(weights=None, input_shape=(32, 32, 3), num_classes=10)
    ours = build_model(name, input_shape=(32, 32, 3), num_classes=10)
    assert ours.count_params() == reference.count_params()
    ours.set_weights(reference.get_weights())
    small = tf.image.resize(imagenet_batch, (32, 32)).numpy()
    np.testing.assert_allclose(
        ours.predict(small, verbose=0), reference.predict(small, verbose=0), atol=1e-5
    )


def test_larq_zoo_weights_file_loads_into_ours(tmp_path, imagenet_batch):
    """A weights file written by larq-zoo's model (as its releases are) loads as is."""
    reference = literature.BinaryDenseNet28(weights=None)
    path = tmp_path / "binary_densenet_28_weights.h5"
    reference.save_weights(str(path))
    ours = build_model("bdn28", weights=str(path))
    np.testing.assert_allclose(
        ours.predict(imagenet_batch[:2], verbose=0),
        reference.predict(imagenet_batch[:2], verbose=0),
        atol=1e-5,
    )
