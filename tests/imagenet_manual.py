"""Build a TFDS `imagenet2012` manual directory from the shared real ImageNet JPEGs."""

import io
import tarfile
from pathlib import Path

import tensorflow_datasets as tfds

from tests.conftest import imagenet_sample_files


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build_manual_dir(directory: Path, train_images: int, val_images: int) -> Path:
    """ILSVRC2012_img_train.tar (a tar of per-synset tars) and ILSVRC2012_img_val.tar.

    Validation files are named so that TFDS' own label list maps each to its synset.
    """
    files, _ = imagenet_sample_files(train_images + val_images)
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(directory / "ILSVRC2012_img_train.tar", "w") as train:
        for path in files[:train_images]:
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as synset_tar:
                _add(synset_tar, f"{path.stem}_1.JPEG", path.read_bytes())
            _add(train, f"{path.stem}.tar", inner.getvalue())

    labels_file = tfds.core.tfds_path("datasets/imagenet2012/validation_labels.txt")
    val_labels = Path(labels_file).read_text().split()
    with tarfile.open(directory / "ILSVRC2012_img_val.tar", "w") as val:
        for path in files[train_images:]:
            index = val_labels.index(path.stem) + 1
            _add(val, f"ILSVRC2012_val_{index:08d}.JPEG", path.read_bytes())
    return directory
