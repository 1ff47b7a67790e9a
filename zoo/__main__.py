"""`python -m zoo list [PATTERN] [--family F] [--pretrained [KEY]] [--markdown]`: the model
table, computed by larq.
`python -m zoo info NAME [--summary]`: one record (configuration, every weights set with
its checksum, metrics and the command that made it), and larq's layer summary."""

import argparse
import json

from zoo import build_model, get_record, list_models
from zoo.profile import model_table


def describe(record) -> str:
    """A model card: everything its registry record knows, in one readable block."""
    lines = [f"{record.name}  ({record.family}; {record.paper})",
             f"  default input: {'x'.join(map(str, record.default_input_shape))}, "
             f"{record.default_num_classes} classes; minimum size {record.min_input_size}"]
    if record.aliases:
        lines.append(f"  also called: {', '.join(record.aliases)}")
    if record.config:
        lines.append(f"  configuration: {json.dumps(dict(record.config), default=str)}")
    for key, weights in record.weights.items():
        metrics = ", ".join(f"{k} {v:.2f}%" for k, v in weights.metrics.items())
        twin = ", ".join(f"{k} {v:.2f}%" for k, v in weights.float_twin_metrics.items())
        lines += [f"  weights={key!r}: {weights.dataset}, input "
                  f"{'x'.join(map(str, weights.input_shape))}, {weights.num_classes} classes, "
                  f"preprocessing {weights.preprocessing!r}"
                  + (" (applied by the model)" if weights.raw_input else ""),
                  f"    file: {weights.top.location}", f"    sha256: {weights.top.sha256}"]
        if metrics:
            lines.append(f"    metrics: {metrics}")
        if twin:
            lines.append(f"    float twin: {twin}")
        if weights.source:
            lines.append(f"    made by: {weights.source}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="print every registered model and its costs")
    listing.add_argument("--markdown", action="store_true", help="as a Markdown table")
    listing.add_argument("pattern", nargs="?",
                         help="only names matching this shell pattern, e.g. 'BinaryDenseNet*'")
    listing.add_argument("--family", help="only this family")
    listing.add_argument("--pretrained", nargs="?", const=True, metavar="KEY",
                         help="only models with weights (with this named set, e.g. imagenet)")
    info = sub.add_parser("info", help="print one model's record and weights")
    info.add_argument("name", help="a registered name or alias (case-insensitive)")
    info.add_argument("--summary", action="store_true",
                      help="also print larq's layer summary (built at the default input)")
    args = parser.parse_args(argv)
    if args.command == "info":
        try:
            record = get_record(args.name)
        except ValueError as error:
            parser.error(str(error))
        print(describe(record))
        if args.summary:
            import larq as lq

            lq.models.summary(build_model(record.name))
        return
    try:
        records = list_models(args.pattern, family=args.family, pretrained=args.pretrained)
    except ValueError as error:
        parser.error(str(error))
    if not records:
        parser.error("no registered model matches; `python -m zoo list` lists them all")
    print(model_table(records, markdown=args.markdown))


if __name__ == "__main__":
    main()
