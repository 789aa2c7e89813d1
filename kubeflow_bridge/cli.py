"""The ``kubeflow-bridge`` console script. Subcommands load their modules lazily (importing this is cheap)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeflow-bridge", description="kubeflow-bridge command line")
    sub = parser.add_subparsers(dest="command", required=True)
    from kubeflow_bridge.local.cli import add_parser as add_local

    add_local(sub)
    # Other subcommands mount their own argument sets here.
    try:
        from kubeflow_bridge.compare import cli as compare_cli
    except ImportError:
        pass
    else:
        compare = sub.add_parser("compare", help="compare one workflow run by Airflow and by KFP")
        compare_cli.build_parser(compare)
        compare.set_defaults(func=compare_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
