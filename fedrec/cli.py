"""The ``fedrec`` command. Flags are generated from :class:`fedrec.config.TrainConfig`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from fedrec.config import TrainConfig, coerce, field_type
from fedrec.errors import FedrecError


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        base, _ = field_type(f)
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(
                flag, dest=f.name, default=None, choices=f.metadata.get("choices"), metavar=None if f.metadata.get("choices") else base.__name__.upper(), help=help_text
            )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    given = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name)
        if value is not None:
            given[f.name] = coerce(value, field_type(f), f.name)
    return TrainConfig(**given)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedrec", description="Privacy-preserving federated recommendation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train one model centrally and evaluate it (full ranking, leave-one-out)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_flags(train)
    train.add_argument("--out", required=True, type=Path, help="run directory for metrics.json and model.pt")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        if args.command == "train":
            from fedrec.training.central import train_centrally

            document = train_centrally(config_from_args(args), args.out)
            metrics = document["metrics"]
            print(
                f"{document['model']} on {document['data']}: HR@10 {metrics['hr@10']:.4f} "
                f"NDCG@10 {metrics['ndcg@10']:.4f} MRR {metrics['mrr']:.4f} "
                f"({document['wall_seconds']:.0f} s) -> {args.out / 'metrics.json'}"
            )
        return 0
    except FedrecError as err:
        print(f"fedrec: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedrec: interrupted; files already written are complete.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
