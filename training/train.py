"""Train a zoo model on a data set: `python training/train.py DATASET [--model NAME] ...`.

A run writes into --output-dir: a checkpoint every epoch (model, optimizer and epoch, for
--resume), TensorBoard logs, best.h5 and final.h5 weights, metrics.json, curves.png, and
with --export-tflite a Larq Compute Engine flatbuffer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from training import datasets, distill, distribute, export, recipes, report  # noqa: E402
from zoo import quantizers, weights as weights_io  # noqa: E402

BACKUP_DIR = "checkpoint"
PRECISIONS = ("float32", "mixed_bfloat16")


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside take this Keras dtype policy; the exported copy, built outside,
    stays float32 and loads the same float32 variables."""
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}; use one of {', '.join(PRECISIONS)}.")
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


class RunExistsError(RuntimeError):
    """The output directory holds another run; refuse rather than overwrite it."""


def learning_rate_schedule(recipe: recipes.Recipe, steps_per_epoch: int):
    if recipe.schedule == "step":
        boundaries = [e * steps_per_epoch for e in recipe.decay_epochs]
        values = [recipe.learning_rate * 0.1**i for i in range(len(boundaries) + 1)]
        return tf.keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if recipe.schedule == "cosine":
        return tf.keras.optimizers.schedules.CosineDecay(
            recipe.learning_rate, decay_steps=max(1, recipe.epochs * steps_per_epoch)
        )
    raise ValueError(f"Unknown schedule {recipe.schedule!r}; use 'cosine' or 'step'.")


def make_optimizer(recipe: recipes.Recipe, schedule):
    if recipe.optimizer != "adam":
        raise ValueError(f"Unknown optimizer {recipe.optimizer!r}; use 'adam'.")
    return tf.keras.optimizers.Adam(schedule, epsilon=recipe.adam_epsilon)


def compile_for_classification(model, optimizer="adam"):
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=[
            tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            tf.keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5"),
        ],
    )


class EpochRecorder(tf.keras.callbacks.Callback):
    """After each epoch: append its metrics, save best weights, rewrite JSON and plot."""

    def __init__(self, output_dir: Path, summary: dict, model_name: str,
                 images_per_epoch: int, schedule, network):
        super().__init__()
        self.network = network  # what best.h5 holds: the student when distilling
        self.schedule = schedule
        self.output_dir = output_dir
        self.summary = summary
        self.model_name = model_name
        self.images_per_epoch = images_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.validation_started = None

    def on_test_begin(self, logs=None):  # fit's validation pass: training time ends here
        if self.validation_started is None:
            self.validation_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        seconds = now - self.started
        train_seconds = (self.validation_started or now) - self.started
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        optimizer = self.model.optimizer
        row.update(
            seconds=seconds,
            train_seconds=train_seconds,
            images_per_second=self.images_per_epoch / train_seconds,
            optimizer_step=int(optimizer.iterations.numpy()),
            learning_rate=float(self.schedule(optimizer.iterations)),
        )
        # After a resume, rows of epochs that were not checkpointed are replaced.
        self.summary["epochs"] = [e for e in self.summary["epochs"] if e["epoch"] <= epoch]
        self.summary["epochs"].append(row)
        best = self.summary.get("best")
        if "val_accuracy" in row and (best is None or row["val_accuracy"] > best["top1"]):
            digest = report.save_weights(self.network, self.output_dir / "best.h5", self.model_name)
            self.summary["best"] = {"epoch": epoch + 1, "top1": row["val_accuracy"],
                                    "top5": row.get("val_top5"), "sha256": digest}
        report.write_json(self.output_dir / "metrics.json", self.summary)
        report.plot_curves(self.summary["epochs"], self.output_dir / "curves.png",
                           f"{self.model_name} on {self.summary['dataset']}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python training/train.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("dataset", choices=sorted(datasets.DATASETS))
    parser.add_argument("--model", default="BinaryDenseNet28", help="a name from `python -m zoo list`")
    parser.add_argument("--model-config", type=json.loads, default={},
                        help='JSON overrides of the model configuration, e.g. \'{"groups": [1, 2]}\'')
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, dest="learning_rate")
    parser.add_argument("--schedule", choices=["cosine", "step"])
    parser.add_argument("--precision", choices=list(PRECISIONS),
                        help="Keras dtype policy of the trained network (default float32)")
    parser.add_argument("--augmentation", choices=datasets.SMALL_IMAGE_AUGMENTATIONS,
                        help="small-image data sets: replaces the data set's own (fashion_mnist: flip)")
    parser.add_argument("--image-size", type=int, help="ImageNet crop size (default 224)")
    parser.add_argument("--data-dir", help="TFDS data dir; for imagenet, the manual directory")
    parser.add_argument("--output-dir", help="default: runs/MODEL-DATASET")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--init-weights", metavar="FILE",
                        help="fine-tune: start from this weights file (e.g. a run's final.h5) "
                             "with a fresh optimizer and schedule")
    parser.add_argument("--teacher", metavar="NAME", nargs="+",
                        help="distil from this registered model (its shipped weights for the "
                             "data set, or --teacher-weights); several names distil from their "
                             "ensemble (the geometric mean of their predictions)")
    parser.add_argument("--teacher-weights", metavar="FILE")
    parser.add_argument("--cache-teacher", action="store_true",
                        help="small-image data sets: run the teacher once, on the unaugmented "
                             "images, instead of on every augmented batch (training then costs "
                             "what it costs without a teacher; the targets ignore the flips and "
                             "shifts of augmentation)")
    parser.add_argument("--distillation-weight", type=float, default=0.5,
                        help="share of the loss from the teacher's softened predictions")
    parser.add_argument("--temperature", type=float, default=4.0,
                        help="softens both predictions in the distillation loss")
    parser.add_argument("--float-twin", action="store_true",
                        help="train the network with every quantizer removed: a full-precision "
                             "baseline, or a teacher for --teacher-weights")
    parser.add_argument("--validation-freq", type=int, default=1, metavar="N",
                        help="score the test split every N epochs and after the last (each "
                             "pass costs UBNAS-A about 20 s of a 420 s epoch on 2 cores)")
    parser.add_argument("--export-tflite", action="store_true")
    parser.add_argument("--train-examples", type=int, help="use only the first N (smoke runs)")
    parser.add_argument("--test-examples", type=int, help="evaluate on the first N only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true",
                        help="TensorFlow op determinism: two runs with one --seed train the same "
                             "weights (without it, CPU runs differ from the first steps), so "
                             "comparisons paired by seed hold; no slower in a short "
                             "BinaryMobileNet run on 2 cores")
    args = parser.parse_args(argv)
    # What the run records as its command: these arguments, also when a script (e.g. a
    # benchmark) calls `run(parse_args([...]))` and its own command line would mislead.
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.teacher_weights and not args.teacher:
        parser.error("--teacher-weights needs --teacher NAME: the model the file is for")
    if args.teacher_weights and len(args.teacher) > 1:
        parser.error("--teacher-weights takes one --teacher NAME; an ensemble of several "
                     "teachers uses their shipped weights")
    if args.cache_teacher and not args.teacher:
        parser.error("--cache-teacher needs --teacher NAME")
    if args.cache_teacher and args.dataset == "imagenet":
        parser.error("--cache-teacher is for small-image data sets: ImageNet's random crops "
                     "differ too much from the whole image the teacher would see once")
    if args.init_weights and not os.path.isfile(args.init_weights):
        parser.error(f"--init-weights {args.init_weights}: no such file (give the path of a "
                     "weights file, e.g. a run's final.h5 or one in zoo/weights/)")
    return args


def run(args) -> dict:
    """Train as `args` say; return the run's summary (also written to metrics.json)."""
    spec = datasets.get_spec(args.dataset)
    record = zoo.get_record(args.model)
    zoo.registry.check_config(record, args.model_config)  # before any file is written
    recipe = recipes.recipe_for(
        record.name, spec.name, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, schedule=args.schedule, augmentation=args.augmentation,
        precision=args.precision,
    )
    datasets.check_augmentation(spec, recipe.augmentation)  # before any file is written
    scored_epochs = validated_epochs(recipe.epochs, args.validation_freq)
    output_dir = Path(args.output_dir or f"runs/{record.name}-{spec.name}")
    _claim_output_dir(output_dir, args.resume)
    trains = {"model": record.name, "dataset": spec.name, "model_config": args.model_config,
              "recipe": recipe.as_dict()}
    summary = report.read_json(output_dir / "metrics.json") if args.resume else None
    if summary:
        _check_resume_trains_the_same(output_dir, summary, trains)
        summary["recipe"] = trains["recipe"]  # --epochs may have extended the run
    tf.keras.utils.set_random_seed(args.seed)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()

    preprocessing = datasets.preprocessing_for(record, spec)
    size = args.image_size or spec.input_shape[0]
    input_shape = (size, size, spec.input_shape[2])
    train_split = datasets.load_split(spec, spec.train_split, args.data_dir)
    test_split = datasets.load_split(spec, spec.test_split, args.data_dir)

    # Every network this run builds (the trained one, its deployable copy) is the float twin.
    networks = quantizers.float_twin if args.float_twin else contextlib.nullcontext
    weights_name = weights_io.float_twin_name(record.name) if args.float_twin else record.name
    strategy = distribute.get_strategy()
    with strategy.scope():
        with networks(), dtype_policy(recipe.precision):
            # --init-weights: a resumed run's checkpoint then overrides these.
            network = zoo.build_model(record.name, input_shape=input_shape,
                                      num_classes=spec.num_classes, weights=args.init_weights,
                                      **args.model_config)
        model, distillation = network, None
        if args.teacher:
            teacher, distillation = distill.load_teacher(
                args.teacher, args.teacher_weights, spec, input_shape, preprocessing)
            if args.cache_teacher:
                train_split, test_split = (
                    distill.with_teacher_predictions(split, teacher, spec, preprocessing, limit)
                    for split, limit in ((train_split, args.train_examples),
                                         (test_split, args.test_examples)))
            model = distill.Distiller(network, teacher, weight=args.distillation_weight,
                                      temperature=args.temperature)
            distillation.update(weight=model.weight, temperature=model.temperature)
            if args.cache_teacher:
                distillation["cached_on_unaugmented_images"] = True

    train = datasets.pipeline(
        train_split, spec, training=True,
        batch_size=recipe.batch_size, preprocessing_name=preprocessing, image_size=size,
        limit=args.train_examples, seed=args.seed, augmentation=recipe.augmentation,
    )
    test = datasets.pipeline(
        test_split, spec, training=False,
        batch_size=recipe.batch_size, preprocessing_name=preprocessing, image_size=size,
        limit=args.test_examples,
    )
    steps_per_epoch = _count_batches(train)
    schedule = learning_rate_schedule(recipe, steps_per_epoch)
    with strategy.scope():
        compile_for_classification(model, make_optimizer(recipe, schedule))

    summary = summary or {
        **trains, "preprocessing": preprocessing,
        "input_shape": list(input_shape), "command": _command_line(args.argv), "epochs": [],
    }
    if args.init_weights and "init_weights" not in summary:
        summary["init_weights"] = {"path": str(args.init_weights),
                                   "sha256": weights_io.sha256_of(args.init_weights)}
    _record_options(summary, {"distillation": distillation, "float_twin": args.float_twin,
                              "deterministic": args.deterministic})
    callbacks = [  # the recorder first: metrics never lag behind the checkpoint
        EpochRecorder(output_dir, summary, weights_name, steps_per_epoch * recipe.batch_size,
                      schedule, network),
        tf.keras.callbacks.BackupAndRestore(str(output_dir / BACKUP_DIR), delete_checkpoint=False),
        tf.keras.callbacks.TensorBoard(str(output_dir / "tensorboard")),
    ]
    model.fit(train, epochs=recipe.epochs, validation_data=test, callbacks=callbacks,
              validation_freq=scored_epochs,
              verbose=1 if sys.stdout.isatty() else 2)

    last = summary["epochs"][-1]  # fit's validation pass of the final weights: the test score
    loss, top1, top5 = last["val_loss"], last["val_accuracy"], last["val_top5"]
    scored_in_training = {}
    in_float32 = recipe.precision == "float32"
    if args.export_tflite or not in_float32:  # the form users run and LCE converts
        with networks():
            deployable = export.deployable_model(network, args.model_config)
    if not in_float32:
        # Users and the shipped record run the weights in float32: that score is the result.
        compile_for_classification(deployable)
        loss, top1, top5 = deployable.evaluate(datasets.without_teacher(test), verbose=0)
        scored_in_training = {f"{recipe.precision}_top1": last["val_accuracy"]}
    digest = report.save_weights(network, output_dir / "final.h5", weights_name)
    seconds = sum(e["seconds"] for e in summary["epochs"])
    train_seconds = sum(e["train_seconds"] for e in summary["epochs"])
    images = steps_per_epoch * recipe.batch_size * len(summary["epochs"])
    summary.update(
        final={"top1": top1, "top5": top5, "loss": loss, "sha256": digest, **scored_in_training},
        wall_time_seconds=seconds,
        images_per_second=images / max(train_seconds, 1e-9),
    )
    if args.export_tflite:
        path = output_dir / f"{record.name}.tflite"
        images = export.check_images(spec.name, preprocessing, data_dir=args.data_dir,
                                     image_size=size)
        summary["tflite"] = {"path": path.name,
                             **export.flatbuffer_report(deployable, path, images=images)}
        if summary["tflite"]["lce_agreement"] < export.MIN_AGREEMENT:
            print(f"warning: {export.DISAGREES}", file=sys.stderr)
    report.write_json(output_dir / "metrics.json", summary)
    report.plot_curves(summary["epochs"], output_dir / "curves.png", f"{weights_name} on {spec.name}")
    print(f"{weights_name} on {spec.name}: top-1 {100 * top1:.2f}%, top-5 {100 * top5:.2f}% "
          f"({seconds:.0f} s); outputs in {output_dir}")
    return summary


def validated_epochs(epochs: int, every: int) -> list:
    """The epochs (from 1) after which fit scores the test split: every `every`-th and the
    last, whose score is the run's result."""
    if every < 1:
        raise ValueError(f"--validation-freq must be 1 or more, not {every}.")
    return [e for e in range(1, epochs + 1) if e % every == 0 or e == epochs]


def _claim_output_dir(output_dir: Path, resume: bool) -> None:
    has_run = (output_dir / "metrics.json").exists() or (output_dir / BACKUP_DIR).exists()
    if has_run and not resume:
        raise RunExistsError(
            f"{output_dir} already holds a run. Pass --resume to continue it, or choose "
            "another --output-dir; nothing was overwritten."
        )
    output_dir.mkdir(parents=True, exist_ok=True)


def _check_resume_trains_the_same(output_dir: Path, summary: dict, trains: dict) -> None:
    """A resume continues its run's network and recipe: with others it would load weights
    of another shape, or report the old run's score as this one's. Only --epochs may
    change: more epochs extend the run."""
    as_stored = json.loads(json.dumps(trains))  # tuples as the run's JSON holds them
    started = {**summary, "recipe": {**summary.get("recipe", {}),
                                     "epochs": as_stored["recipe"]["epochs"]}}
    differing = [key for key in as_stored if started.get(key) != as_stored[key]]
    if differing:
        raise ValueError(
            f"{output_dir} holds a run of another "
            + ", ".join(f"{key} ({summary.get(key)}, not {as_stored[key]})" for key in differing)
            + "; resume it with the options it started with (only --epochs may change), "
            "or choose another --output-dir.")


def _record_options(summary: dict, options: dict) -> None:
    """Note how the network trains (teacher, float twin, op determinism) in the run's record,
    options that are off left out; a resume must keep the options its run started with."""
    started = {key: summary[key] for key in options if key in summary}
    options = {key: value for key, value in options.items() if value}
    if summary["epochs"] and started != options:
        raise ValueError(
            f"This run was started with {started or 'no teacher, float twin or determinism'}, "
            f"not {options or 'none of them'}; "
            "resume it with the same --teacher, --float-twin and --deterministic options, or "
            "start a new --output-dir.")
    summary.update(options)


def _count_batches(dataset) -> int:
    batches = int(dataset.cardinality())
    if batches < 0:  # unknown: count once (cheap for the cached small data sets)
        batches = sum(1 for _ in dataset)
    if batches == 0:
        raise ValueError("The training split has fewer examples than one batch.")
    return batches


def _command_line(argv: list) -> str:
    return "python training/train.py " + " ".join(shlex.quote(a) for a in argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (datasets.DatasetMissingError, RunExistsError, ValueError,
            zoo.registry.UnknownOptionError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
