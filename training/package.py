"""Ship a training run's weights in the zoo: `python training/package.py RUN_DIR NAME`.

Copies the run's final weights (converted to the deployable form) into `zoo/weights/`
and writes the JSON record the registry reads: file, SHA-256, data set, accuracy,
preprocessing and the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402
from zoo import weights as weights_io  # noqa: E402
from training import datasets  # noqa: E402


def package(run_dir: Path, dataset_key: str = None) -> Path:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = zoo.get_record(metrics["model"])
    spec = datasets.get_spec(metrics["dataset"])
    trained = zoo.build_model(record.name, input_shape=tuple(metrics["input_shape"]),
                              num_classes=spec.num_classes, **metrics["model_config"])
    trained.load_weights(str(run_dir / "final.h5"))
    deployable = _deployable(record, trained, metrics, spec)
    stem = f"{record.name}-{spec.name}"
    target = weights_io.PACKAGE_WEIGHTS_DIR / f"{stem}.h5"
    digest = weights_io.save(deployable, target, record.name)
    entry = {
        "model": record.name, "dataset": spec.name, "file": target.name, "sha256": digest,
        "num_classes": spec.num_classes, "input_shape": metrics["input_shape"],
        "preprocessing": metrics["preprocessing"], "top1": metrics["final"]["top1"],
        "top5": metrics["final"]["top5"], "epochs": len(metrics["epochs"]),
        "train_seconds": metrics["wall_time_seconds"], "recipe": metrics["recipe"],
        "model_config": {k: v for k, v in metrics["model_config"].items() if k != "form"},
        "command": metrics["command"],
    }
    path = weights_io.PACKAGE_WEIGHTS_DIR / f"{stem}.json"
    path.write_text(json.dumps(entry, indent=2) + "\n")
    return path


def _deployable(record, trained, metrics, spec):
    """A model trained in a CPU-friendly form ("masked") is converted to "grouped"."""
    if metrics["model_config"].get("form") != "masked":
        return trained
    from zoo.models.mobilenet import to_grouped

    config = {**metrics["model_config"], "form": "grouped"}
    grouped = zoo.build_model(record.name, input_shape=tuple(metrics["input_shape"]),
                              num_classes=spec.num_classes, **config)
    return to_grouped(trained, grouped)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    print(f"wrote {package(args.run_dir)}")


if __name__ == "__main__":
    main()
