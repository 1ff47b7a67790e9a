"""Ship a training run's weights in the zoo: `python training/package.py RUN_DIR [--name N]`.

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


def add_searched(name: str, base: str, config: dict, found_by: str) -> None:
    """Record a searched configuration in zoo/models/searched.json (data, not code)."""
    from zoo.registry import SEARCHED_FILE

    entries = json.loads(SEARCHED_FILE.read_text()) if SEARCHED_FILE.exists() else []
    family = zoo.get_record(base).family
    entries = [e for e in entries if e["name"] != name]
    entries.append({"name": name, "family": family, "base": base, "config": config,
                    "found_by": found_by})
    SEARCHED_FILE.write_text(json.dumps(entries, indent=2) + "\n")


def package(run_dir: Path, name: str = None) -> Path:
    """Ship a run's weights, under the run's model name or a registered `name`."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = zoo.get_record(name or metrics["model"])
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
    parser.add_argument("--name", help="register the run's configuration as this model")
    parser.add_argument("--found-by", default="", help="provenance of a searched configuration")
    args = parser.parse_args(argv)
    if args.name:
        metrics = json.loads((args.run_dir / "metrics.json").read_text())
        config = {k: v for k, v in metrics["model_config"].items() if k != "form"}
        add_searched(args.name, metrics["model"], config, args.found_by)
        zoo.registry.register_searched(zoo.get_record(metrics["model"]).family)
        print(f"registered {args.name} in zoo/models/searched.json")
    print(f"wrote {package(args.run_dir, args.name)}")


if __name__ == "__main__":
    main()
