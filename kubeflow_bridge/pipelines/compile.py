"""Compile ``anomaly_pipeline`` to KFP IR YAML.

``python -m kubeflow_bridge.pipelines.compile --out kubeflow_bridge/pipelines/anomaly_pipeline.yaml``
(the checked-in YAML; a test fails when it is not what a fresh compile gives).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: The checked-in compiled pipeline, next to this module.
COMPILED_PATH = Path(__file__).with_name("anomaly_pipeline.yaml")


def compile_pipeline(out: str | os.PathLike[str]) -> Path:
    """Compile the pipeline to ``out`` (written atomically) and return the path."""
    from kfp import compiler

    from kubeflow_bridge.pipelines.pipeline import anomaly_pipeline

    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".yaml", dir=target.parent)
    os.close(fd)
    try:
        compiler.Compiler().compile(anomaly_pipeline, package_path=tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m kubeflow_bridge.pipelines.compile", description=__doc__)
    parser.add_argument("--out", default=str(COMPILED_PATH), help=f"output YAML (default {COMPILED_PATH})")
    args = parser.parse_args(argv)
    path = compile_pipeline(args.out)
    print(f"compiled anomaly_pipeline to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
