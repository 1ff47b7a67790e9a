"""`python -m search evolution ...` (and `darts`): run a search, resumable."""

from __future__ import annotations

import argparse
import sys

import zoo  # noqa: F401  (Keras 2 before TensorFlow)


def evolution_parser(sub):
    p = sub.add_parser("evolution", help="evolutionary group search of a binary MobileNet")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--model", default="BinaryMobileNet-Depthwise",
                   help="the BinaryMobileNet configuration whose groups are searched")
    p.add_argument("--budget-macs", type=float, help="max binary MACs (larq count)")
    p.add_argument("--budget-float-macs", type=float)
    p.add_argument("--budget-memory-mb", type=float)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--sample-size", type=int, default=5)
    p.add_argument("--mutation-rate", type=float, default=0.1)
    p.add_argument("--crossover", action="store_true")
    p.add_argument("--strategy", choices=["evolution", "random"], default="evolution",
                   help="random: the same number of uniformly random configurations, "
                        "scored the same way (the baseline evolution must beat)")
    p.add_argument("--supernet-epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-examples", type=int)
    p.add_argument("--val-examples", type=int, default=10_000)
    p.add_argument("--calibration-batches", type=int, default=10)
    p.add_argument("--data-dir")
    p.add_argument("--output-dir", default="runs/evolution")
    p.add_argument("--seed", type=int, default=0)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m search")
    sub = parser.add_subparsers(dest="search", required=True)
    evolution_parser(sub)
    args = parser.parse_args(argv)
    from search.evolution.oracle import BudgetError
    from search.evolution.run import CorruptSearchError, run_search
    from training.datasets import DatasetMissingError

    try:
        result = run_search(args)
    except (BudgetError, CorruptSearchError, DatasetMissingError, ValueError) as error:
        sys.exit(f"error: {error}")
    if result:
        print(f"best: groups {result['groups']}  val acc {100 * result['val_accuracy']:.2f}%  "
              f"binary MACs {result['binary_macs'] / 1e6:.2f}M  ({result['trials']} trials, "
              f"{result['rejected_over_budget']} rejected over budget)")
        print(f"retrain: {result['retrain']}")


if __name__ == "__main__":
    main()
