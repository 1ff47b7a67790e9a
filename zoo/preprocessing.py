"""Input normalisations, named by the `preprocessing` field of a weights record."""

import tensorflow as tf

IMAGENET_MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def imagenet(images):
    """Per-channel mean/std normalisation of RGB values in [0, 255] (larq-zoo's)."""
    images = tf.cast(images, tf.float32)
    return (images - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB


def unit_range(images):
    """Scale [0, 255] pixel values to [-1, 1] (small gray-scale data sets)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


PREPROCESSING = {"imagenet": imagenet, "unit_range": unit_range}


def get(name: str):
    try:
        return PREPROCESSING[name]
    except KeyError:
        raise ValueError(
            f"Unknown preprocessing {name!r}; known: {sorted(PREPROCESSING)}."
        ) from None
