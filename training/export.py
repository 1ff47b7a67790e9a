"""Export to a Larq Compute Engine (TFLite) flatbuffer, and time it with LCE's interpreter."""

import sys
import time
from pathlib import Path

import numpy as np


def deployable_model(trained, model_config: dict):
    """The network LCE and the shipped weights use: a model trained in a CPU-friendly
    form (BinaryMobileNet's "masked" group convolutions) is copied into its "grouped"
    form; any other model is already deployable."""
    if model_config.get("form") != "masked":
        return trained
    import zoo
    from zoo.models.mobilenet import to_grouped

    grouped = zoo.build_model(trained.name, input_shape=trained.input_shape[1:],
                              num_classes=trained.output_shape[-1],
                              **{**model_config, "form": "grouped"})
    return to_grouped(trained, grouped)


def has_initial_batch_norm(model) -> bool:
    """Whether every BatchNormalization still holds mean 0 and variance 1 (never trained).

    LCE converts such a network differently from the trained one. Measured on UBNAS-A
    (16 channels): fresh, 37 of its 74 binary convolutions stay float CONV_2D (7.7 MB);
    with the trained weights all 74 are LceBconv2d (0.56 MB). Setting random BN values
    into a fresh build also gives all 74; one training-mode batch does not. Cause unknown.
    """
    import tensorflow as tf

    norms = [l for l in model.submodules if isinstance(l, tf.keras.layers.BatchNormalization)]
    return bool(norms) and all(
        np.all(n.moving_mean.numpy() == 0) and np.all(n.moving_variance.numpy() == 1) for n in norms
    )


def export_tflite(model, path) -> int:
    """Convert a larq model with LCE; return the flatbuffer's size in bytes."""
    import larq_compute_engine as lce

    from zoo.profile import LCE_GROUP_MULTIPLE, lce_float_group_convs

    if has_initial_batch_norm(model):
        print(f"warning: every BatchNormalization of {model.name} holds its initial statistics; "
              "LCE then converts some binary convolutions to float ones. Export the trained "
              "model.", file=sys.stderr)

    in_float = lce_float_group_convs(model)
    if in_float:
        print(f"warning: LCE runs {len(in_float)} binary group convolutions of {model.name} "
              f"as float convolutions (input channels per group not a multiple of "
              f"{LCE_GROUP_MULTIPLE}): {in_float}", file=sys.stderr)
    flatbuffer = lce.convert_keras_model(model)
    Path(path).write_bytes(flatbuffer)
    return len(flatbuffer)


def lce_latency_ms(flatbuffer_path, threads: int = 1, repeats: int = 20) -> float:
    """Median latency of one single-image inference in LCE's x86 interpreter."""
    import larq_compute_engine as lce

    interpreter = lce.testing.Interpreter(
        Path(flatbuffer_path).read_bytes(), num_threads=threads, use_reference_bconv=False
    )
    shape = interpreter.input_shapes[0]
    image = np.random.default_rng(0).standard_normal((1, *shape[1:])).astype(np.float32)
    interpreter.predict(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.predict(image)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))
