"""The ``kubeflow-bridge`` console script. Subcommands load their modules lazily (importing this is cheap).

``kubeflow-bridge local ...`` is the local runtime (:mod:`kubeflow_bridge.local.cli`);
``kubeflow-bridge compare ...`` is handed to :mod:`kubeflow_bridge.compare.cli` as a whole (and
``kubeflow-bridge demo ...`` to :mod:`kubeflow_bridge.compare.demo`, ``kubeflow-bridge airflow ...`` to
:mod:`kubeflow_bridge.airflow_local`), so one
subcommand's imports never stand in the way of another.
"""

from __future__ import annotations

import argparse
import sys

DELEGATED = {
    "airflow": (
        "kubeflow_bridge.airflow_local",
        "Airflow's UI (airflow standalone) set up for this checkout and the local runtime",
    ),
    "compare": ("kubeflow_bridge.compare.cli", "compare one workflow run by Airflow and by KFP"),
    "demo": (
        "kubeflow_bridge.compare.demo",
        "run the workflow with Airflow and KFP on the local runtime, compare",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeflow-bridge", description="kubeflow-bridge command line")
    sub = parser.add_subparsers(dest="command", required=True)
    from kubeflow_bridge.local.cli import add_parser as add_local

    add_local(sub)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=f"{help_text} (see: kubeflow-bridge {name} --help)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        module = importlib.import_module(DELEGATED[argv[0]][0])
        sys.argv[0] = f"kubeflow-bridge {argv[0]}"
        return int(module.main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
