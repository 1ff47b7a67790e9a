"""`python -m zoo list [--markdown] [--family F]`: the model table, computed by larq."""

import argparse

from zoo import list_models
from zoo.profile import model_table


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="print every registered model and its costs")
    listing.add_argument("--markdown", action="store_true", help="as a Markdown table")
    listing.add_argument("--family", help="only this family")
    args = parser.parse_args(argv)
    records = list_models(args.family)
    if not records:
        parser.error(f"no models in family {args.family!r}")
    print(model_table(records, markdown=args.markdown))


if __name__ == "__main__":
    main()
