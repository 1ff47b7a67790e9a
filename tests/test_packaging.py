"""The installed package, not only the checkout, carries what the registry reads."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import zoo

PACKAGE_DIR = Path(zoo.__file__).parent
SOURCE_DIR = PACKAGE_DIR.parent
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info",
                                    "__pycache__", ".pytest_cache")


def test_the_wheel_ships_every_data_file_of_the_zoo_package(tmp_path):
    """Weight files, their JSON records and the searched configurations: a wheel that
    drops the records installs a zoo without its pretrained weights or searched models.
    Built from a copy, so that no earlier build's file lists (egg-info) take part."""
    data_files = {f"zoo/{p.relative_to(PACKAGE_DIR).as_posix()}" for p in PACKAGE_DIR.rglob("*")
                  if p.is_file() and p.suffix in (".h5", ".json")}
    assert any(name.endswith(".json") for name in data_files)  # records exist to be shipped
    source = tmp_path / "source"
    shutil.copytree(SOURCE_DIR, source, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert data_files <= shipped, sorted(data_files - shipped)
