"""The installed package, not only the checkout, carries what the registry reads."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import zoo

SOURCE_DIR = Path(zoo.__file__).parents[1]
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info",
                                    "__pycache__", ".pytest_cache")
# Run from the installed copy: the pretrained sets and searched models it registers, and
# each shipped file's checksum verified.
INSTALLED_INVENTORY = """
import json, zoo
print(json.dumps({
    "file": zoo.__file__,
    "pretrained": {r.name: sorted(r.weights) for r in zoo.list_models(pretrained=True)},
    "models": [r.name for r in zoo.list_models()],
    "verified": [str(zoo.weights_file(r, "fashion_mnist"))
                 for r in zoo.list_models(pretrained="fashion_mnist")],
}))
"""


def test_an_installed_wheel_registers_the_same_models_and_weights_as_the_checkout(tmp_path):
    """A wheel built from a clean copy (no earlier build's file lists take part), installed
    on its own: it must carry the weights' JSON records and searched configurations, or
    the installed zoo has no pretrained weights and no searched models."""
    source, dist, site = tmp_path / "source", tmp_path / "dist", tmp_path / "site"
    shutil.copytree(SOURCE_DIR, source, ignore=NOT_SOURCE)
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
                          str(source)], check=True, capture_output=True)
    (wheel,) = dist.glob("*.whl")
    subprocess.run(pip + ["install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    shutil.rmtree(source)  # nothing may come from the copy
    result = subprocess.run([sys.executable, "-c", INSTALLED_INVENTORY], cwd=tmp_path,
                            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    installed = json.loads(result.stdout.strip().splitlines()[-1])
    assert installed["file"].startswith(str(site))
    assert installed["models"] == [r.name for r in zoo.list_models()]
    assert installed["pretrained"] == {r.name: sorted(r.weights)
                                       for r in zoo.list_models(pretrained=True)}
    assert len(installed["verified"]) == len(zoo.list_models(pretrained="fashion_mnist")) > 0
    assert all(path.startswith(str(site)) for path in installed["verified"])
