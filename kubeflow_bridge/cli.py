"""The ``kubeflow-bridge`` console script. Subcommands load their modules lazily (importing this is cheap)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeflow-bridge", description="kubeflow-bridge command line")
    sub = parser.add_subparsers(dest="command", required=True)
    from kubeflow_bridge.local.cli import add_parser as add_local

    add_local(sub)
    # Room for more subcommands (e.g. ``compare``): each registers its own parser here.
    try:
        from kubeflow_bridge.compare.cli import add_parser as add_compare  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        add_compare(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
