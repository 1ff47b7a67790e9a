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


class Preprocess(tf.keras.layers.Layer):
    """A weight-free layer that applies a named preprocessing inside the model, so the
    model takes raw pixel values (what `weights=` named sets expect from users)."""

    def __init__(self, preprocessing: str, **kwargs):
        super().__init__(**kwargs)
        self.preprocessing = preprocessing
        self.fn = get(preprocessing)

    def call(self, images):
        return self.fn(images)

    def get_config(self):
        return {**super().get_config(), "preprocessing": self.preprocessing}


def with_preprocessing(model, preprocessing: str):
    """`model` behind a `Preprocess` layer: raw [0, 255] images in, predictions out."""
    inputs = tf.keras.Input(shape=model.input_shape[1:])
    outputs = model(Preprocess(preprocessing, name=f"preprocess_{preprocessing}")(inputs))
    return tf.keras.Model(inputs, outputs, name=model.name)
