"""Data sets through tensorflow-datasets, and the one input pipeline every data set uses.

Each loader yields TFDS-style examples `{"image": uint8 HxWxC (or JPEG bytes), "label"}`;
`pipeline` then decodes, augments, normalises (with the model's declared preprocessing),
caches, shuffles, batches and prefetches them.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

import zoo  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo import preprocessing

AUTOTUNE = tf.data.AUTOTUNE
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGENET_EVAL_RESIZE = 256


class DatasetMissingError(RuntimeError):
    """The data set's files are not where they are expected."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    tfds_name: str
    num_classes: int
    input_shape: tuple
    train_split: str
    test_split: str
    train_examples: int
    preprocessing: str  # key of zoo.preprocessing.PREPROCESSING, unless weights say otherwise
    augmentation: str  # "imagenet" or one of SMALL_IMAGE_AUGMENTATIONS


@dataclass(frozen=True)
class SmallImageAugmentation:
    """Random horizontal flips and random shifts of up to `max_shift` pixels (zero-padded)."""

    flip: bool
    max_shift: int = 0


SMALL_IMAGE_AUGMENTATIONS = {
    "none": SmallImageAugmentation(flip=False),
    "flip": SmallImageAugmentation(flip=True),
    "pad2_crop_flip": SmallImageAugmentation(flip=True, max_shift=2),
    "pad_crop_flip": SmallImageAugmentation(flip=True, max_shift=4),  # the CIFAR standard
}

DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec("imagenet", "imagenet2012", 1000, (224, 224, 3), "train", "validation",
                    1_281_167, "imagenet", "imagenet"),
        DatasetSpec("cifar10", "cifar10", 10, (32, 32, 3), "train", "test", 50_000,
                    "unit_range", "pad_crop_flip"),
        DatasetSpec("cifar100", "cifar100", 100, (32, 32, 3), "train", "test", 50_000,
                    "unit_range", "pad_crop_flip"),
        DatasetSpec("mnist", "mnist", 10, (28, 28, 1), "train", "test", 60_000,
                    "unit_range", "none"),
        DatasetSpec("fashion_mnist", "fashion_mnist", 10, (28, 28, 1), "train", "test",
                    60_000, "unit_range", "flip"),
    )
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"Unknown data set {name!r}; choose one of {sorted(DATASETS)}.") from None


# --- sources -------------------------------------------------------------------------


def read_idx(path) -> np.ndarray:
    """Read a (gzipped) IDX file, the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find_fashion_mnist(data_dir: Optional[str]) -> Optional[Path]:
    for directory in ([data_dir] if data_dir else []) + list(FASHION_MNIST_DIRS):
        folder = Path(directory)
        if all((folder / f).exists() for pair in FASHION_MNIST_FILES.values() for f in pair):
            return folder
    return None


def idx_arrays(folder: Path, split: str):
    """Raw uint8 images (N, 28, 28, 1) and int64 labels of a Fashion-MNIST split."""
    images_file, labels_file = FASHION_MNIST_FILES[split]
    images = read_idx(folder / images_file)[..., np.newaxis]
    return images, read_idx(folder / labels_file).astype(np.int64)


def _idx_split(folder: Path, split: str) -> tf.data.Dataset:
    images, labels = idx_arrays(folder, split)
    return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})


def _imagenet_split(split: str, manual_dir: Optional[str], data_dir: Optional[str]):
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if not builder.info.splits:  # not prepared yet in the TFDS data dir
        if not manual_dir or not any(
            (Path(manual_dir) / f).exists() for f in IMAGENET_MANUAL_FILES
        ):
            raise DatasetMissingError(
                f"ImageNet is not prepared in {builder.data_dir} and no manual files were "
                f"found in --data-dir={manual_dir!r}. Download {IMAGENET_MANUAL_FILES[0]} "
                f"and {IMAGENET_MANUAL_FILES[1]} from https://image-net.org (free "
                "account), put them in one directory and pass it as --data-dir."
            )
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        builder.download_and_prepare(download_config=config)
    available = set(builder.info.splits)
    if split not in available:
        raise DatasetMissingError(
            f"ImageNet split {split!r} is missing (prepared: {sorted(available)}); add "
            f"its archive to the manual directory and delete {builder.data_dir} to rebuild."
        )
    return builder.as_dataset(
        split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=True
    )


def load_split(spec: DatasetSpec, split: str, data_dir: Optional[str] = None):
    """The raw examples of one split, from wherever this machine has them."""
    if spec.name == "imagenet":
        return _imagenet_split(split, manual_dir=data_dir, data_dir=os.environ.get("TFDS_DATA_DIR"))
    if spec.name == "fashion_mnist":
        folder = find_fashion_mnist(data_dir)
        if folder is not None:
            return _idx_split(folder, "train" if split == "train" else "test")
    try:
        return tfds.load(spec.tfds_name, split=split, data_dir=data_dir)
    except Exception as error:  # tfds raises several types when offline or missing
        hint = ""
        if spec.name == "fashion_mnist":
            pairs = [f for pair in FASHION_MNIST_FILES.values() for f in pair]
            hint = (
                f" Offline, install Debian's `dataset-fashion-mnist` (files in "
                f"{FASHION_MNIST_DIRS[0]}) or pass --data-dir holding {', '.join(pairs)}."
            )
        raise DatasetMissingError(
            f"Could not load {spec.tfds_name!r} ({split}) through tensorflow-datasets: "
            f"{error}.{hint}"
        ) from error


# --- the pipeline --------------------------------------------------------------------


def _decode_imagenet(example, training: bool, size: int):
    """JPEG bytes -> RGB crop: random crop and flip for training, 256-resize + centre crop."""
    image = tf.io.decode_jpeg(example["image"], channels=3)
    if training:
        bbox = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
        begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
            tf.shape(image), bbox, min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True,
        )
        image = tf.slice(image, begin, crop_size)
        image = tf.image.resize(image, (size, size))
        return tf.image.random_flip_left_right(image)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = IMAGENET_EVAL_RESIZE / tf.reduce_min(shape)
    image = tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32))
    return tf.image.resize_with_crop_or_pad(image, size, size)


def check_augmentation(spec: DatasetSpec, augmentation: Optional[str]) -> str:
    """The augmentation to use: the data set's own unless one is chosen, which must fit it."""
    if augmentation is None:
        return spec.augmentation
    allowed = ("imagenet",) if spec.augmentation == "imagenet" else SMALL_IMAGE_AUGMENTATIONS
    if augmentation not in allowed:
        raise ValueError(f"augmentation {augmentation!r} does not apply to {spec.name}; "
                         f"use one of {', '.join(allowed)}")
    return augmentation


def _augment(image, kind: str):
    augmentation = SMALL_IMAGE_AUGMENTATIONS[kind]
    if augmentation.flip:
        image = tf.image.random_flip_left_right(image)
    if augmentation.max_shift:
        height, width, channels = image.shape
        shift = augmentation.max_shift
        image = tf.image.pad_to_bounding_box(image, shift, shift, height + 2 * shift,
                                             width + 2 * shift)
        image = tf.image.random_crop(image, (height, width, channels))
    return image


def pipeline(
    dataset: tf.data.Dataset,
    spec: DatasetSpec,
    *,
    training: bool,
    batch_size: int,
    preprocessing_name: Optional[str] = None,
    image_size: Optional[int] = None,
    limit: Optional[int] = None,
    cache: bool = True,
    seed: Optional[int] = None,
    augmentation: Optional[str] = None,
) -> tf.data.Dataset:
    """Examples -> batches of (normalised float images, labels); of ((images, the teacher's
    predictions), labels) when the examples carry them (`distill.with_teacher_predictions`).

    `augmentation` replaces the data set's own for small images (a recipe's choice)."""
    normalise = preprocessing.get(preprocessing_name or spec.preprocessing)
    augmentation = check_augmentation(spec, augmentation)
    if limit:
        dataset = dataset.take(limit)
    if spec.augmentation == "imagenet":
        size = image_size or spec.input_shape[0]
        if training:
            dataset = dataset.shuffle(10_000, seed=seed)
        dataset = dataset.map(
            lambda ex: (normalise(_decode_imagenet(ex, training, size)), ex["label"]),
            num_parallel_calls=AUTOTUNE,
        )
    else:
        # (image, label), and the teacher's cached prediction if there is one (training.distill)
        dataset = dataset.map(
            lambda ex: (ex["image"], ex["label"], *([ex["teacher"]] if "teacher" in ex else [])),
            num_parallel_calls=AUTOTUNE)
        if cache:
            dataset = dataset.cache()  # small data sets: raw uint8 fits in memory
        if training:
            dataset = dataset.shuffle(60_000, seed=seed, reshuffle_each_iteration=True)
            dataset = dataset.map(
                lambda image, *rest: (_augment(image, augmentation), *rest),
                num_parallel_calls=AUTOTUNE,
            )
        dataset = dataset.map(
            lambda image, label, *prediction: (
                ((normalise(image), *prediction) if prediction else normalise(image)), label),
            num_parallel_calls=AUTOTUNE,
        )  # the prediction beside the image: Keras would read a third element as sample weights
    return dataset.batch(batch_size, drop_remainder=training).prefetch(AUTOTUNE)


def without_teacher(batches: tf.data.Dataset) -> tf.data.Dataset:
    """A pipeline's batches as (images, labels), without the cached teacher predictions
    they may carry: what a network alone is scored on."""
    if isinstance(batches.element_spec[0], tuple):
        return batches.map(lambda inputs, labels: (inputs[0], labels))
    return batches


def preprocessing_for(record, spec: DatasetSpec) -> str:
    """The normalisation the model's weights for this data set declare, else the set's own."""
    weights = record.weights.get(spec.name)
    return weights.preprocessing if weights is not None else spec.preprocessing
