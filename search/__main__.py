"""`python -m search evolution ...` (and `darts`): run a search, resumable."""

from __future__ import annotations

import argparse
import json
import sys

import zoo  # noqa: F401  (Keras 2 before TensorFlow)
from search.evolution.space import CHANNELS_PER_GROUP, LCE_CHANNELS_PER_GROUP
from zoo.models.ubnas import EBNAS_OPERATIONS, GROUPED_OPERATIONS, OPERATIONS


def common_arguments(p):
    p.add_argument("--eager", action="store_true",
                   help="run every step eagerly: for debugging, and for tiny runs where "
                        "tracing the supernet's graph costs more than the steps")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data-dir")
    p.add_argument("--train-examples", type=int, help="default: all but the validation split")
    p.add_argument("--val-examples", type=int, default=10_000,
                   help="held out of the training split to score candidates")
    p.add_argument("--seed", type=int, default=0)


def evolution_parser(sub):
    p = sub.add_parser("evolution", help="evolutionary group search of a binary MobileNet")
    common_arguments(p)
    p.add_argument("--model", default="BinaryMobileNet-Depthwise",
                   help="the BinaryMobileNet configuration whose groups are searched")
    p.add_argument("--model-config", type=json.loads, default={},
                   help='JSON overrides of the network, e.g. \'{"stem_strides": 1}\'')
    p.add_argument("--channels-per-group", type=int, nargs="+", default=CHANNELS_PER_GROUP,
                   help="allowed input channels per group (default %(default)s); "
                        f"{' '.join(map(str, LCE_CHANNELS_PER_GROUP))} keeps every choice a "
                        "binary convolution in Larq Compute Engine")
    p.add_argument("--budget-macs", type=float, help="max binary MACs (larq count)")
    p.add_argument("--budget-float-macs", type=float)
    p.add_argument("--budget-memory-mb", type=float)
    p.add_argument("--budget-latency-ms", type=float,
                   help="max single-image latency in Larq Compute Engine on this machine, "
                        "estimated from a per-block table measured once per --output-dir")
    p.add_argument("--floor-macs", type=float,
                   help="min binary MACs: propose only configurations at least this costly, "
                        "e.g. a random search at equal or higher cost than an evolved pick")
    p.add_argument("--latency-threads", type=int, default=1,
                   help="interpreter threads of the latency budget (default %(default)s)")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--sample-size", type=int, default=5)
    p.add_argument("--mutation-rate", type=float, default=0.1)
    p.add_argument("--crossover", action="store_true")
    p.add_argument("--strategy", choices=["evolution", "random"], default="evolution",
                   help="random: the same number of uniformly random configurations, "
                        "scored the same way (the baseline evolution must beat)")
    p.add_argument("--supernet-epochs", type=int, default=3,
                   help="3 (the measured default) keeps supernet + 60 trials under an hour "
                        "on 2 CPU cores")
    p.add_argument("--supernet-sampling", choices=["uniform", "budget"], default="uniform",
                   help="uniform: train the supernet on every configuration (one supernet "
                        "serves searches at several budgets); budget: only on those within "
                        "the budget (measured worse at 3.3M MACs: docs/benchmarks.md)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--calibration-batches", type=int, default=10)
    p.add_argument("--finalists", type=int, default=5,
                   help="re-score this many top trials before picking the best (0: pick the "
                        "top trial); rerunning a finished search with another value re-picks")
    p.add_argument("--finalist-draws", type=int, default=3,
                   help="BatchNorm recalibrations (fresh training batches) per finalist")
    p.add_argument("--finalist-steps", type=int, default=0,
                   help="train each finalist alone this many steps from the shared weights "
                        "before re-scoring it (0: score the shared weights)")
    p.add_argument("--trial-steps", type=int, default=0,
                   help="train each trial alone this many steps from the shared weights before "
                        "scoring it (0: score the shared weights): a truer score at 300 "
                        "steps (docs/benchmarks.md), and each trial then costs that training")
    p.add_argument("--output-dir", default="runs/evolution")
    p.add_argument("--name", help="the search's folder and output prefix under --output-dir "
                                  "(default: --strategy); searches there share one supernet")


def darts_parser(sub):
    p = sub.add_parser("darts", help="differentiable binary cell search (UBNAS)")
    common_arguments(p)
    p.add_argument("--trials", type=int, default=1, help="searches; >1 varies K, arch lr")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--stem-strides", type=int, default=1, choices=(1, 2),
                   help="2 halves 28x28 inputs at the stem: 4x cheaper cells")
    p.add_argument("--k-normal", type=int, default=4)
    p.add_argument("--k-reduce", type=int, default=2)
    p.add_argument("--arch-lr", type=float, default=3e-4)
    p.add_argument("--max-parameter-free", type=int, default=2)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--operations", nargs="+", default=list(EBNAS_OPERATIONS),
                   choices=list(OPERATIONS), metavar="OP",
                   help="what an edge can become (default: EBNAS's %(default)s); add "
                        f"{' '.join(GROUPED_OPERATIONS)} for grouped binary convolutions")
    p.add_argument("--cost-weight", type=float, default=0.0,
                   help="> 0: price each operation by its measured training time (relative to "
                        "the slowest) in the architecture loss; 0 is UBNAS's objective")
    p.add_argument("--cost-channels", type=int, default=16,
                   help="channels at which operations are priced (the retrained network's)")
    p.add_argument("--plain", action="store_true",
                   help="plain binary DARTS: K=1 and no early stopping (the baseline)")
    p.add_argument("--score-epochs", type=int, default=1,
                   help="epochs to train a derived genotype before scoring it")
    p.add_argument("--output-dir", default="runs/darts")


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="python -m search")
    sub = main_parser.add_subparsers(dest="search", required=True)
    evolution_parser(sub)
    darts_parser(sub)
    return main_parser


def main(argv=None):
    args = parser().parse_args(argv)
    if args.eager:
        import tensorflow as tf

        tf.config.run_functions_eagerly(True)
    from search.evolution.oracle import BudgetError
    from search.evolution.run import run_search
    from search.resume import CorruptSearchError
    from search.darts.tuner import run_darts
    from training.datasets import DatasetMissingError

    try:
        result = (run_darts if args.search == "darts" else run_search)(args)
    except (BudgetError, CorruptSearchError, DatasetMissingError, ValueError) as error:
        sys.exit(f"error: {error}")
    if args.search == "darts":
        print(f"genotype: {result['genotype']}")
        print(f"val acc {100 * result['val_accuracy']:.2f}% after {result['epochs_run']} "
              f"epochs, {result['cpu_seconds']:.0f} CPU s ({result['stopped'] or 'ran all epochs'})")
    elif result:
        rescored = (f" (re-scored {100 * result['rescore_mean']:.2f}% over "
                    f"{len(result['finalists'][0]['rescores'])} recalibrations)"
                    if "rescore_mean" in result else "")
        under = (f", {result['rejected_under_floor']} under its floor"
                 if "floor" in result else "")
        print(f"best: groups {result['groups']}  val acc {100 * result['val_accuracy']:.2f}%{rescored}  "
              f"binary MACs {result['binary_macs'] / 1e6:.2f}M  ({result['trials']} trials, "
              f"{result['rejected_over_budget']} rejected over budget{under})")
        print(f"retrain: {result['retrain']}")


if __name__ == "__main__":
    main()
