"""Ship a training run's weights in the zoo: `python training/package.py RUN_DIR [--name N]`.

Copies the run's final weights (converted to the deployable form, binary kernels as sign
bits: `zoo.weights`) into `zoo/weights/` and writes the JSON record the registry reads:
file, SHA-256, data set, accuracy, preprocessing and the command that reproduces it (for
a fine-tuned run, the commands of every run it continues, joined by &&). A float-twin
run adds its accuracy to the shipped record instead (`"float_twin"`).
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
from training.export import deployable_model  # noqa: E402


def register_genotype(result_file: Path, name: str, *, layers: int, channels: int) -> None:
    """Register the genotype of a `python -m search darts` result as a UBNAS model.

    The searched network is widened and deepened for training (as DARTS does); the stem
    stride stays the search's.
    """
    result = json.loads(result_file.read_text())
    search = result["config"]
    genotype = zoo.models.ubnas.validate_genotype(result["genotype"])
    config = {"genotype": genotype, "layers_count": layers, "channels": channels,
              "stem_strides": search.get("stem_strides", 1)}
    found_by = (f"python -m search darts: {search['layers_count']} cells of {search['channels']} "
                f"channels, K={search['k_normal']}/{search['k_reduce']}, "
                f"{result['epochs_run']} epochs ({result['stopped'] or 'ran to the end'}), "
                f"{result['cpu_seconds']:.0f} CPU s")
    if search.get("cost_weight"):
        found_by += f", binary convolutions priced by training time (--cost-weight {search['cost_weight']})"
    zoo.registry.add_searched(name, "UBNAS", zoo.models.ubnas.TEMPLATE.name, config, found_by)


def package(run_dir: Path, name: str = None) -> Path:
    """Ship a run's weights, under the run's model name or a registered `name`."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = zoo.get_record(name or metrics["model"])
    trained_config = _network_config(metrics)
    differs = {k: v for k, v in trained_config.items() if _as_json(record.config.get(k)) != v}
    if differs:  # the shipped file would not load into the registered network
        raise SystemExit(
            f"{run_dir} trained {record.name} with {differs}, which its registry record does "
            f"not have: ship it under a new name (--name), or change the record first."
        )
    spec = datasets.get_spec(metrics["dataset"])
    stem = f"{record.name}-{spec.name}"
    path = weights_io.PACKAGE_WEIGHTS_DIR / f"{stem}.json"
    shipped = json.loads(path.read_text()) if path.exists() else None
    if metrics.get("float_twin"):
        return record_float_twin(run_dir, metrics, path, shipped)
    trained = zoo.build_model(record.name, input_shape=tuple(metrics["input_shape"]),
                              num_classes=spec.num_classes, **metrics["model_config"])
    trained.load_weights(str(run_dir / "final.h5"))
    deployable = deployable_model(trained, metrics["model_config"])
    steps = lineage(metrics)
    target = weights_io.PACKAGE_WEIGHTS_DIR / f"{stem}.h5"
    digest = weights_io.save(deployable, target, record.name, sign_bits=True)
    entry = {
        "model": record.name, "dataset": spec.name, "file": target.name, "sha256": digest,
        "num_classes": spec.num_classes, "input_shape": metrics["input_shape"],
        "preprocessing": metrics["preprocessing"], "top1": metrics["final"]["top1"],
        "top5": metrics["final"]["top5"], **_made_by(steps), "recipe": metrics["recipe"],
        "model_config": trained_config,
    }
    recipes = [recipe for step in steps for recipe in step["recipes"]]
    if len(recipes) > 1:
        entry["recipes"] = recipes
    teachers = [teacher for step in steps for teacher in step["distillation"]]
    if teachers:  # `--teacher NAME` loads whatever is shipped then: pin what it was
        entry["distillation"] = teachers
    if shipped and "float_twin" in shipped:  # the same network (checked above): still its twin
        entry["float_twin"] = shipped["float_twin"]
    path.write_text(json.dumps(entry, indent=2) + "\n")
    return path


def record_float_twin(run_dir: Path, metrics: dict, path: Path, shipped) -> Path:
    """A float-twin run (train.py --float-twin) is not shipped as weights: its accuracy
    joins the binary weights' record as their full-precision reference (the cost of
    binarizing), with the command and the SHA-256 of the weights that reached it."""
    if shipped is None:
        raise SystemExit(
            f"{run_dir} trained a float twin, and {path.name} holds no shipped binary weights "
            "to compare it with: package a binary run of the model first. (A float twin's "
            "final.h5 also teaches: train.py --teacher-weights.)")
    if metrics["input_shape"] != shipped["input_shape"]:
        raise SystemExit(f"{run_dir} trained the float twin on {metrics['input_shape']} inputs, "
                         f"the shipped weights take {shipped['input_shape']}: train it on those.")
    steps = lineage(metrics)
    shipped["float_twin"] = {
        "top1": metrics["final"]["top1"], "top5": metrics["final"]["top5"],
        "sha256": metrics["final"]["sha256"], **_made_by(steps), "recipe": metrics["recipe"],
    }
    path.write_text(json.dumps(shipped, indent=2) + "\n")
    return path


def _made_by(steps: list) -> dict:
    """Epochs, training time and the commands that reproduce weights, over their lineage."""
    return {"epochs": sum(step["epochs"] for step in steps),
            "train_seconds": sum(step["seconds"] for step in steps),
            "command": " && ".join(step["command"] for step in steps)}


def lineage(metrics: dict) -> list:
    """How these weights were made, oldest first, each step as {command, epochs, seconds,
    recipes, distillation}: a fine-tuned run (train.py --init-weights) continues the run, or the shipped
    weights, that wrote its initial weights file."""
    steps = [_run_step(metrics)]
    source = metrics.get("init_weights")
    while source:
        path = Path(source["path"])
        run_metrics, shipped_record = path.parent / "metrics.json", path.with_suffix(".json")
        if run_metrics.exists():
            metrics = json.loads(run_metrics.read_text())
            steps.insert(0, _run_step(metrics))
            source = metrics.get("init_weights")
        elif shipped_record.exists():
            record = json.loads(shipped_record.read_text())
            if record.get("sha256") != source["sha256"]:
                raise SystemExit(
                    f"The run started from shipped weights {path} with SHA-256 {source['sha256']}, "
                    f"but {shipped_record} now records {record.get('sha256')}: restore that record "
                    "(git) to package the run."
                )
            steps.insert(0, {"command": record["command"], "epochs": record["epochs"],
                             "seconds": record["train_seconds"],
                             "recipes": record.get("recipes", [record["recipe"]]),
                             "distillation": record.get("distillation", [])})
            source = None
        else:
            raise SystemExit(
                f"The run started from {path}, but neither {run_metrics} nor a shipped record "
                f"{shipped_record} is there: without it the shipped record cannot say how to "
                "reproduce the weights."
            )
    return steps


def _run_step(metrics: dict) -> dict:
    return {"command": metrics["command"], "epochs": len(metrics["epochs"]),
            "seconds": metrics["wall_time_seconds"], "recipes": [metrics["recipe"]],
            "distillation": [metrics["distillation"]] if "distillation" in metrics else []}


def _defined_in_code(name: str) -> bool:
    """A variant a zoo module registers (e.g. BinaryDenseNetMedium): a run of its
    configuration ships under its name, and searched.json stays for searched models."""
    try:
        record = zoo.get_record(name)
    except ValueError:
        return False
    searched = {e["name"] for e in zoo.registry.searched_entries(record.family)}
    return record.name not in searched


def _as_json(value):
    """A record's value as a run's metrics.json holds it (tuples become lists)."""
    return json.loads(json.dumps(value))


def _network_config(metrics: dict) -> dict:
    """The run's configuration of the network itself: the training form is not part of it."""
    return {k: v for k, v in metrics["model_config"].items() if k != "form"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--name", help="ship the run as this model: one a zoo module defines "
                                        "(its configuration must match), or a new searched one")
    parser.add_argument("--found-by", help="provenance of a searched configuration "
                                            "(a re-packaged model keeps its own)")
    parser.add_argument("--genotype", type=Path, metavar="RESULT_JSON",
                        help="register a darts search result (e.g. runs/darts/darts_genotype.json) "
                             "as model --name, to train it with train.py --model NAME")
    parser.add_argument("--layers", type=int, default=8, help="cells of the --genotype network")
    parser.add_argument("--channels", type=int, default=16, help="channels of the --genotype network")
    args = parser.parse_args(argv)
    if args.genotype:
        if not args.name:
            parser.error("--genotype needs --name (e.g. UBNAS-A)")
        register_genotype(args.genotype, args.name, layers=args.layers, channels=args.channels)
        print(f"registered {args.name} in zoo/models/searched.json")
        return
    if args.run_dir is None:
        parser.error("give a RUN_DIR to package, or --genotype RESULT_JSON --name NAME")
    searched_name = bool(args.name) and not _defined_in_code(args.name)
    if args.found_by and not searched_name:
        parser.error("--found-by gives the provenance of a new searched model (--name NEW); "
                     f"{args.name or 'the run'!s} keeps the provenance the zoo has for it")
    if searched_name:
        metrics = json.loads((args.run_dir / "metrics.json").read_text())
        config = _network_config(metrics)
        family = zoo.get_record(metrics["model"]).family
        zoo.registry.add_searched(args.name, family, metrics["model"], config, args.found_by)
        zoo.registry.register_searched(family)
        print(f"registered {args.name} in zoo/models/searched.json")
    print(f"wrote {package(args.run_dir, args.name)}")


if __name__ == "__main__":
    main()
