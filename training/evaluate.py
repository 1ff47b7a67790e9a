"""Top-1/top-5 of a model on a data set's test split.

    python training/evaluate.py fashion_mnist --model BinaryDenseNetTiny --weights fashion_mnist
    python training/evaluate.py fashion_mnist --model BinaryMobileNet-Evo-S1 \
        --model-config '{"form": "masked"}' --weights runs/S1/final.h5   # as train.py built it
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402

from training import datasets  # noqa: E402
from training.train import compile_for_classification  # noqa: E402


def evaluate(dataset: str, model_name: str, weights, *, data_dir=None, batch_size=256,
             limit=None, image_size=None, float_twin=False, model_config=None) -> dict:
    spec = datasets.get_spec(dataset)
    record = zoo.get_record(model_name)
    size = image_size or spec.input_shape[0]
    named = record.weights.get(weights) if isinstance(weights, str) else None
    if named is not None and named.dataset != spec.name:
        raise ValueError(f"{record.name}'s weights {weights!r} were trained on {named.dataset}, "
                         f"not {spec.name}: evaluate them on {named.dataset}.")
    if named is not None:  # the bare network: the pipeline below applies the preprocessing
        weights = zoo.weights_file(record, weights)
    build = zoo.build_float_twin if float_twin else zoo.build_model
    model = build(record.name, weights=weights, num_classes=spec.num_classes,
                  input_shape=(size, size, spec.input_shape[2]), **(model_config or {}))
    compile_for_classification(model)
    test = datasets.pipeline(
        datasets.load_split(spec, spec.test_split, data_dir), spec, training=False,
        batch_size=batch_size, preprocessing_name=datasets.preprocessing_for(record, spec),
        image_size=size, limit=limit,
    )
    loss, top1, top5 = model.evaluate(test, verbose=0)
    return {"model": record.name, "dataset": spec.name, "weights": str(weights),
            "top1": top1, "top5": top5, "loss": loss}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python training/evaluate.py", description=__doc__)
    parser.add_argument("dataset", choices=sorted(datasets.DATASETS))
    parser.add_argument("--model", required=True)
    parser.add_argument("--weights", required=True, help="a named set or a file path")
    parser.add_argument("--model-config", type=json.loads, default={},
                        help="JSON configuration overrides, as the run's train.py was given")
    parser.add_argument("--data-dir")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--test-examples", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--float-twin", action="store_true",
                        help="weights of a train.py --float-twin run")
    args = parser.parse_args(argv)
    try:
        result = evaluate(args.dataset, args.model, args.weights, data_dir=args.data_dir,
                          batch_size=args.batch_size, limit=args.test_examples,
                          image_size=args.image_size, float_twin=args.float_twin,
                          model_config=args.model_config)
    except (datasets.DatasetMissingError, ValueError,
            zoo.registry.UnknownOptionError) as error:
        sys.exit(f"error: {error}")
    print(f"{result['model']} on {result['dataset']}: top-1 {100 * result['top1']:.2f}%, "
          f"top-5 {100 * result['top5']:.2f}%")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
