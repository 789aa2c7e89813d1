"""The local Kubeflow runtime for the operator tests (no S3), on the package's test helper."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from kubeflow_bridge.local.testing import RuntimeHandle as Runtime
from kubeflow_bridge.local.testing import local_runtime as _local_runtime

ROOT = Path(__file__).resolve().parents[3]
TRAINER_PYTHON = ROOT / ".venv-trainer" / "bin" / "python"

__all__ = ["ROOT", "TRAINER_PYTHON", "Runtime", "local_runtime"]


@contextlib.contextmanager
def local_runtime(state_dir: Path, *extra: str, timeout: float = 60) -> Iterator[Runtime]:
    with _local_runtime(state_dir, "--no-s3", *extra, timeout=timeout) as rt:
        yield rt
