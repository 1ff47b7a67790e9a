"""Select Keras 2 (tf-keras) before TensorFlow is imported.

Larq supports only the Keras 2 API. From TensorFlow 2.16 on, `tf.keras` is Keras 2 only
when `tf-keras` is installed and `TF_USE_LEGACY_KERAS=1` is set before TensorFlow first
resolves `tf.keras`. Every module of this project imports TensorFlow through `zoo`, so
this check runs first.
"""

import os
import sys

_HOW_TO_FIX = (
    "TensorFlow was imported with Keras 3 as `tf.keras`, but larq (and so this zoo) needs "
    "Keras 2. Set the environment variable TF_USE_LEGACY_KERAS=1 before TensorFlow is "
    "imported (e.g. `export TF_USE_LEGACY_KERAS=1`), or import `zoo` before `tensorflow`, "
    "and make sure `tf-keras` is installed (`pip install tf-keras==2.19.*`)."
)


def use_legacy_keras() -> None:
    """Make `tf.keras` resolve to tf-keras, or fail with instructions if it is too late."""
    tensorflow_already_imported = "tensorflow" in sys.modules
    if not tensorflow_already_imported:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # TensorFlow enables oneDNN by default only on CPUs with AVX512-VNNI and newer;
        # on this project's AMD EPYC it was off. On, a UBNAS-A training step takes 0.89 s
        # instead of 0.99 s (batch 128) and a 5x5 binary conv step half the time.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import tensorflow as tf

    keras_module = tf.keras.layers.Layer.__module__
    if not keras_module.startswith("tf_keras."):
        raise ImportError(_HOW_TO_FIX + f" (tf.keras.layers.Layer is from {keras_module})")
