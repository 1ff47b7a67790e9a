"""Export to a Larq Compute Engine (TFLite) flatbuffer, check it against Keras and time it
with LCE's interpreter; convert between a model's training form and its deployable one
(what LCE and shipped weights hold).

    python training/export.py UBNAS-A --weights fashion_mnist --output ubnas-a.tflite

writes the flatbuffer and beside it a JSON card (input and its preprocessing, checksums,
the convolutions LCE runs in binary and in float, latency, agreement with Keras).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


CHECK_IMAGES = 1000  # test images a flatbuffer must classify as Keras does
MIN_AGREEMENT = 0.99
DISAGREES = ("the flatbuffer classifies test images unlike the Keras model: the conversion "
             "changed what the network computes.")


def deployable_model(trained, model_config: dict):
    """The network LCE and the shipped weights use: a model trained in a CPU-friendly
    form (BinaryMobileNet's "masked" group convolutions, or a bfloat16 compute policy) is
    copied into a float32 model of its "grouped" form; any other model is deployable."""
    masked = model_config.get("form") == "masked"
    if not masked and trained.compute_dtype == "float32":
        return trained
    import zoo
    from zoo.models.mobilenet import copy_weights

    config = {**model_config, "form": "grouped"} if masked else model_config
    deployable = zoo.build_model(trained.name, input_shape=trained.input_shape[1:],
                                 num_classes=trained.output_shape[-1], **config)
    if masked:
        return copy_weights(trained, deployable)
    deployable.set_weights(trained.get_weights())
    return deployable


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
    flatbuffer = convert(model)
    Path(path).write_bytes(flatbuffer)
    return len(flatbuffer)


def convert(model) -> bytes:
    """LCE's flatbuffer of the model's inference function.

    `lce.convert_keras_model` first saves the model with Keras, which traces every layer
    for Keras' own metadata. Saving only the inference function gives the same operators
    and outputs (tensor names aside) with 4-6x less CPU time, measured: BinaryDenseNetTiny
    15.9 -> 2.7 s, BinaryMobileNet-Evo-S1 56.5 -> 12.4 s, UBNAS-A 184 -> 44 s.
    """
    import tempfile

    import larq_compute_engine as lce
    import tensorflow as tf

    module = tf.Module()
    module.kept_variables = list(model.variables)  # what the function reads, saved with it
    module.serve = tf.function(lambda images: model(images, training=False),
                               input_signature=[tf.TensorSpec(model.input_shape, tf.float32)])
    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(module, folder, signatures=module.serve)
        return lce.convert_saved_model(folder)


def lce_predict(flatbuffer_path, images, threads: int = 2) -> np.ndarray:
    """The flatbuffer's outputs for a batch of images, run one at a time as on a device."""
    return _interpreter(flatbuffer_path, threads).predict(np.asarray(images, np.float32))


def _interpreter(flatbuffer_path, threads: int):
    """LCE's interpreter with its optimized kernels, as a device runs the flatbuffer."""
    import larq_compute_engine as lce

    return lce.testing.Interpreter(
        Path(flatbuffer_path).read_bytes(), num_threads=threads, use_reference_bconv=False
    )


LATENCY_BLOCKS, LATENCY_BLOCK_SECONDS, LATENCY_WARM_UP_SECONDS = 5, 0.4, 0.5
LATENCY_REPEATS = 20  # single-image runs per block, at the least


def latency_method(repeats: int = LATENCY_REPEATS) -> str:
    """How `lce_latency_ms` measures, for the reports that show its numbers."""
    return (f"lowest of {LATENCY_BLOCKS} medians, each over at least {repeats} single-image "
            f"runs and {LATENCY_BLOCK_SECONDS} s, after a {LATENCY_WARM_UP_SECONDS} s warm-up")


def lce_latency_ms(flatbuffer_path, threads: int = 1, repeats: int = LATENCY_REPEATS, *,
                   blocks: int = LATENCY_BLOCKS, block_seconds: float = LATENCY_BLOCK_SECONDS,
                   warm_up_seconds: float = LATENCY_WARM_UP_SECONDS) -> float:
    """Latency of one single-image inference in LCE's x86 interpreter (`latency_method`).

    Other load on a shared machine only adds time, in spells of 0.5-2 s, and a fresh
    interpreter runs slower for its first second or so: one median of 20 back-to-back runs
    put Medium at 7.7-15 ms and UBNAS-A at 8.1-13.7 ms. After a warm-up, the fastest block
    is the model's own speed. A single layer runs thousands of times in far less time:
    the search's latency table passes shorter blocks."""
    interpreter = _interpreter(flatbuffer_path, threads)
    shape = interpreter.input_shapes[0]
    image = np.random.default_rng(0).standard_normal((1, *shape[1:])).astype(np.float32)
    warm_until = time.perf_counter() + warm_up_seconds
    while time.perf_counter() < warm_until:
        interpreter.predict(image)
    medians = []
    for _ in range(blocks):
        times, deadline = [], time.perf_counter() + block_seconds
        while len(times) < repeats or time.perf_counter() < deadline:
            start = time.perf_counter()
            interpreter.predict(image)
            times.append(1000 * (time.perf_counter() - start))
        medians.append(float(np.median(times)))
    return min(medians)


def flatbuffer_report(model, path, *, repeats: int = LATENCY_REPEATS, images=None) -> dict:
    """Export `model` to `path` and measure what a device gets: size, the convolutions LCE
    runs in binary and in float, latency at 1 and 2 threads (`latency_method`), and,
    given `images` as the model takes them, the share it classifies as Keras does."""
    size = export_tflite(model, path)
    ops = flatbuffer_op_counts(Path(path).read_bytes())
    report = {"bytes": size,
              "binary_convs": ops.get("LceBconv2d", 0),
              "float_convs": ops.get("CONV_2D", 0) + ops.get("DEPTHWISE_CONV_2D", 0),
              "latency_ms_1_thread": lce_latency_ms(path, 1, repeats),
              "latency_ms_2_threads": lce_latency_ms(path, 2, repeats),
              "latency_method": latency_method(repeats)}
    if images is not None:
        deployed = lce_predict(path, images).argmax(-1)
        keras = model.predict(images, batch_size=500, verbose=0).argmax(-1)
        report.update(lce_agreement=float(np.mean(deployed == keras)),
                      agreement_images=len(images))
    return report


def check_images(dataset: str, preprocessing: str, count: int = CHECK_IMAGES, data_dir=None,
                 image_size=None) -> np.ndarray:
    """The first `count` test images of `dataset`, normalised as the bare network takes them."""
    from training import datasets

    spec = datasets.get_spec(dataset)
    test = datasets.pipeline(
        datasets.load_split(spec, spec.test_split, data_dir), spec, training=False,
        batch_size=count, preprocessing_name=preprocessing, limit=count, cache=False,
        image_size=image_size)
    return next(iter(test))[0].numpy()


def export_model(name: str, output, *, weights=None, model_config=None, float_twin=False,
                 dataset=None, check_count: int = CHECK_IMAGES, repeats: int = LATENCY_REPEATS,
                 data_dir=None) -> dict:
    """Build a model (named weights, a weights file, or none), export its deployable network
    to `output`, check the flatbuffer against Keras and write the JSON card beside it.

    The flatbuffer holds the bare network: it takes images normalised by the card's
    `preprocessing` (a named set's own; `model.predict` applies it, a device must too).
    """
    import zoo
    from training import datasets
    from zoo import weights as weights_io

    record = zoo.get_record(name)
    model_config = dict(model_config or {})
    named = record.weights.get(weights) if isinstance(weights, str) else None
    if named is not None:
        if dataset is not None and dataset != named.dataset:
            raise ValueError(f"{record.name}'s weights {weights!r} were trained on "
                             f"{named.dataset}; check them on it, not on {dataset}.")
        dataset, weights_path = named.dataset, zoo.weights_file(record, weights)
    elif weights is not None and not Path(weights).is_file():
        raise ValueError(f"--weights {weights!r} is neither a file nor a named set of "
                         f"{record.name} (available: {zoo.registry.available_weights(record)}).")
    else:
        weights_path = weights
    build = zoo.build_float_twin if float_twin else zoo.build_model
    shape = {}  # a named set's input and classes, else the data set's, else the model's
    if named is not None:
        shape = dict(input_shape=named.input_shape, num_classes=named.num_classes)
    elif dataset is not None:
        spec = datasets.get_spec(dataset)
        shape = dict(input_shape=spec.input_shape, num_classes=spec.num_classes)
    model = build(record.name, weights=weights_path, **shape, **model_config)
    if weights_path is None:
        print(f"warning: {record.name} has random weights; a never-trained network converts "
              "unlike a trained one (see merged_dilated_convs). Pass --weights.",
              file=sys.stderr)
    deployable = deployable_model(model, model_config)
    preprocessing = images = None
    if dataset is not None:
        preprocessing = datasets.preprocessing_for(record, datasets.get_spec(dataset))
        if check_count > 0:
            images = check_images(dataset, preprocessing, check_count, data_dir)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    card = {"model": record.name, "float_twin": float_twin, "model_config": model_config,
            "weights": str(weights) if weights is not None else None,
            "weights_sha256": weights_io.sha256_of(weights_path) if weights_path else None,
            "input_shape": list(deployable.input_shape[1:]),
            "num_classes": int(deployable.output_shape[-1]),
            "preprocessing": preprocessing,
            "check_dataset": dataset if images is not None else None,
            **flatbuffer_report(deployable, output, repeats=repeats, images=images)}
    card["sha256"] = weights_io.sha256_of(output)
    output.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv=None):
    from training import datasets

    parser = argparse.ArgumentParser(prog="python training/export.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a registered name or alias")
    parser.add_argument("--weights", help="a named set (e.g. fashion_mnist) or a weights file")
    parser.add_argument("--output", help="the .tflite file (default: MODEL.tflite)")
    parser.add_argument("--model-config", type=json.loads, default={},
                        help='configuration overrides as JSON, e.g. \'{"form": "masked"}\' '
                             "for a run trained in BinaryMobileNet's masked form")
    parser.add_argument("--float-twin", action="store_true",
                        help="the network without quantizers (weights of a --float-twin run)")
    parser.add_argument("--dataset", choices=sorted(datasets.DATASETS),
                        help="check the flatbuffer on this test set (default: the named "
                             "weights' data set)")
    parser.add_argument("--check-images", type=int, default=CHECK_IMAGES,
                        help="test images the flatbuffer must classify as Keras does (0: skip)")
    parser.add_argument("--repeats", type=int, default=LATENCY_REPEATS, help="latency runs per thread count")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    output = args.output or f"{args.model}.tflite"
    try:
        card = export_model(args.model, output, weights=args.weights,
                            model_config=args.model_config, float_twin=args.float_twin,
                            dataset=args.dataset, check_count=args.check_images,
                            repeats=args.repeats, data_dir=args.data_dir)
    except (datasets.DatasetMissingError, ValueError, TypeError) as error:
        sys.exit(f"error: {error}")
    print(f"{output}: {card['bytes'] / 1024:.0f} KB, {card['binary_convs']} binary and "
          f"{card['float_convs']} float convolutions in LCE; "
          f"{card['latency_ms_1_thread']:.2f} / {card['latency_ms_2_threads']:.2f} ms per image "
          "(1 / 2 threads, this machine's x86 interpreter)")
    print(f"input {card['input_shape']} float32"
          + (f", normalised by {card['preprocessing']!r} (zoo.preprocessing)"
             if card["preprocessing"] else ""))
    if "lce_agreement" in card:
        print(f"LCE = Keras on {100 * card['lce_agreement']:.1f}% of {card['agreement_images']} "
              f"{card['check_dataset']} test images")
        if card["lce_agreement"] < MIN_AGREEMENT:
            sys.exit(f"error: {DISAGREES}")
    print(f"card: {Path(output).with_suffix('.json')}")


if __name__ == "__main__":
    main()
