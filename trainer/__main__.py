"""``python -m trainer ingest|preprocess|train|evaluate|serve``: the one CLI every orchestrator runs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

STEPS = ("ingest", "preprocess", "train", "evaluate", "serve")
#: The libraries each step imports before its work starts, so that ``compute_seconds`` is the step's own
#: work and ``import_seconds`` the process's start-up (what a warm interpreter would save).
PRELOAD = {
    "ingest": ("numpy", "pandas", "pyarrow.parquet"),
    "preprocess": ("pandas", "pyarrow.parquet", "dask.dataframe"),
    "train": ("numpy", "pandas", "pyarrow.parquet", "torch"),
    "evaluate": ("numpy", "pandas", "pyarrow.parquet", "torch"),
}


def _module(step: str) -> ModuleType:
    import importlib

    return importlib.import_module(f"trainer.{step}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for step in STEPS:
        mod = _module(step)
        p = sub.add_parser(step, help=(mod.__doc__ or "").strip().splitlines()[0], allow_abbrev=False)
        mod.add_arguments(p)
        p.add_argument("--summary-out", default=None, help="also write the TRAINER_SUMMARY JSON to this URI")
        p.add_argument("--log-level", default="INFO", help="stderr log level (default INFO)")
    return parser


def preload(step: str, args: argparse.Namespace) -> list[str]:
    """Import the step's libraries (and boto3 when an argument is an ``s3://`` URI); the names imported."""
    import importlib

    names = list(PRELOAD.get(step, ()))
    if any(isinstance(v, str) and v.startswith("s3://") for v in vars(args).values()):
        names.append("boto3")
    for name in names:
        importlib.import_module(name)
    return names


def process_seconds() -> float:
    """Seconds since this process started (Linux's /proc; 0.0 where it cannot be read)."""
    import os

    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return max(0.0, float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def run(
    argv: Sequence[str] | None = None, *, whole_process: bool | None = None
) -> tuple[int, dict[str, Any]]:
    """Run one step: its exit code (0, or 2 for bad input) and its summary (also printed on stdout).

    ``whole_process``: this process exists to run the step (default: when ``argv`` is None), so the
    step's libraries are imported before its clock starts and the process's start-up is its
    ``import_seconds``; a program calling a step as a library (False) counts neither.

    Raises:
        SystemExit: The arguments do not parse (argparse has printed the usage and the error).
    """
    from trainer.summary import StepSummary

    args = build_parser().parse_args(argv)
    whole = argv is None if whole_process is None else whole_process
    if whole:
        preload(args.step, args)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    params = {k: v for k, v in vars(args).items() if k not in ("summary_out", "log_level", "step")}
    summary = StepSummary(step=args.step, params=params)
    if whole:
        summary.import_seconds = round(process_seconds(), 3)
    step: Callable[[argparse.Namespace], dict[str, Any] | None] = _module(args.step).run
    try:
        result = step(args) or {}
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        # Bad input: one clear line on stderr, the summary on stdout, exit 2 (nothing was published).
        print(f"error: {args.step}: {exc}", file=sys.stderr, flush=True)
        return 2, summary.emit(None, error=str(exc))
    summary.outputs.update(result.get("outputs", {}))
    summary.metrics.update(result.get("metrics", {}))
    if result.get("rank", 0) == 0:
        return 0, summary.emit(args.summary_out)
    return 0, summary.as_dict()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trainer``'s entry point; the exit code."""
    return run(argv)[0]


if __name__ == "__main__":
    sys.exit(main())
