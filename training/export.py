"""Export to a Larq Compute Engine (TFLite) flatbuffer, and time it with LCE's interpreter;
convert between a model's training form and its deployable one (what LCE and shipped
weights hold)."""

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


def load_for_training(model, path, model_name: str, model_config: dict) -> None:
    """Load `train.py --init-weights`: a run's own file (its training form) or a deployable
    one, e.g. shipped weights, which a "masked"-form model takes through its grouped form."""
    from zoo import weights as weights_io
    from zoo.models.mobilenet import to_masked

    try:
        weights_io.load_into(model, path, model_name)
    except weights_io.WeightsError:
        if model_config.get("form") != "masked":
            raise
        grouped = deployable_model(model, model_config)
        weights_io.load_into(grouped, path, model_name)  # fits neither form: its error
        to_masked(grouped, model)


def merged_dilated_convs(model) -> list:
    """Groups of dilated binary convolutions that LCE will run as float convolutions.

    The converter merges identical subgraphs: the same layers, with equal weights, on the
    same inputs. Parallel branches of a never-trained network (equal BatchNormalization
    values, parameter-free pooling) are such subgraphs, so two dilated binary
    convolutions there share one binarized, space-to-batch tensor, and LCE's dilated
    binary convolution pattern needs that tensor unshared: both stay float CONV_2D.
    Measured: two dilated 5x5 modules on one input convert to 2 CONV_2D (55 KB) fresh
    and to 2 LceBconv2d (7 KB) with distinct BN betas; a fresh UBNAS-A keeps 36 of its
    74 binary convolutions in float, all of them in these groups.
    """
    import larq as lq

    groups = {}
    for conv, input_signature in _input_signatures(model):
        binary = isinstance(conv, lq.layers.QuantConv2D) and conv.input_quantizer is not None
        if binary and max(conv.dilation_rate) > 1:
            key = (input_signature, conv.kernel_size, conv.dilation_rate, conv.padding)
            groups.setdefault(key, []).append(conv.name)
    return [names for names in groups.values() if len(names) > 1]


def _input_signatures(model):
    """(layer, digest of what computes its input) for every layer of a functional model:
    equal digests mean the same layers with equal weights on the same model inputs."""
    import hashlib
    import json

    import tensorflow as tf

    digest_of = {}  # id(tensor) -> digest of the subgraph computing it

    def digest(*parts):
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    for tensor in model.inputs:
        digest_of[id(tensor)] = digest("input", tensor.name)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.InputLayer):
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        input_signature = digest(*(digest_of.get(id(t), id(t)) for t in inputs))
        yield layer, input_signature
        try:
            config = {k: v for k, v in layer.get_config().items() if k != "name"}
        except NotImplementedError:  # a custom layer without get_config: never merged
            config = {"layer": id(layer)}
        weights = hashlib.sha256(b"".join(w.tobytes() for w in layer.get_weights())).hexdigest()
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        for index, tensor in enumerate(outputs):
            digest_of[id(tensor)] = digest(type(layer).__name__,
                                           json.dumps(config, sort_keys=True, default=str),
                                           weights, input_signature, index)


def distinct_batch_norm(model, seed: int = 0):
    """Give every BatchNormalization its own values, as training does, so that a fresh
    build converts like a trained network (see `merged_dilated_convs`). For benchmarks
    of models without trained weights; the function computed changes, the graph not."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for norm in model.submodules:
        if isinstance(norm, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = norm.get_weights()
            norm.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape),
                              beta + rng.normal(0, 0.1, beta.shape),
                              mean + rng.normal(0, 0.1, mean.shape),
                              variance * rng.uniform(0.5, 1.5, variance.shape)])
    return model


def flatbuffer_op_counts(flatbuffer: bytes) -> dict:
    """How often each operator occurs in a flatbuffer, e.g. {"LceBconv2d": 74, ...}:
    shows which binary layers LCE really runs in binary."""
    import contextlib
    import io
    import re

    import tensorflow as tf

    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        tf.lite.experimental.Analyzer.analyze(model_content=flatbuffer)
    counts = {}
    for name in re.findall(r"Op#\d+ (\w+)\(", report.getvalue()):
        counts[name] = counts.get(name, 0) + 1
    return counts


def export_tflite(model, path) -> int:
    """Convert a larq model with LCE; return the flatbuffer's size in bytes."""
    import larq_compute_engine as lce

    from zoo.profile import LCE_GROUP_MULTIPLE, lce_float_group_convs, lce_reference_only_group_convs

    merged = merged_dilated_convs(model)
    if merged:
        print(f"warning: LCE runs {sum(map(len, merged))} dilated binary convolutions of "
              f"{model.name} as float convolutions: they read one input through "
              f"BatchNormalizations with equal values, which the converter merges, as in an "
              f"untrained network ({merged}). Export the trained model.", file=sys.stderr)

    in_float = lce_float_group_convs(model)
    if in_float:
        print(f"warning: LCE runs {len(in_float)} binary group convolutions of {model.name} "
              f"as float convolutions (input channels per group not a multiple of "
              f"{LCE_GROUP_MULTIPLE}): {in_float}", file=sys.stderr)
    reference_only = lce_reference_only_group_convs(model)
    if reference_only:
        print(f"warning: {len(reference_only)} binary group convolutions of {model.name} "
              "convert to binary ones that only LCE's reference kernel runs (its optimized "
              f"kernel refuses grouped binary convolutions): {reference_only}", file=sys.stderr)
    flatbuffer = lce.convert_keras_model(model)
    Path(path).write_bytes(flatbuffer)
    return len(flatbuffer)


def lce_predict(flatbuffer_path, images, threads: int = 2) -> np.ndarray:
    """The flatbuffer's outputs for a batch of images, run one at a time as on a device."""
    return _interpreter(flatbuffer_path, threads).predict(np.asarray(images, np.float32))


def _interpreter(flatbuffer_path, threads: int):
    """LCE's interpreter with its optimized kernels, as a device runs the flatbuffer."""
    import larq_compute_engine as lce

    return lce.testing.Interpreter(
        Path(flatbuffer_path).read_bytes(), num_threads=threads, use_reference_bconv=False
    )


def lce_latency_ms(flatbuffer_path, threads: int = 1, repeats: int = 20) -> float:
    """Median latency of one single-image inference in LCE's x86 interpreter."""
    interpreter = _interpreter(flatbuffer_path, threads)
    shape = interpreter.input_shapes[0]
    image = np.random.default_rng(0).standard_normal((1, *shape[1:])).astype(np.float32)
    interpreter.predict(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.predict(image)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))
