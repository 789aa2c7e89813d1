"""Shared fixtures for the trainer tests: a CLI runner and one small end-to-end pipeline per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainer.summary import parse_summary

KATIB_REGEX = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
SMALL_TRAIN = ["--epochs", "3", "--batch-size", "128", "--hidden-dims", "32,16", "--latent-dim", "4"]


@dataclass
class StepResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        return parse_summary(self.stdout)


def run_trainer(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> StepResult:
    """Run ``python -m trainer ARGS`` in a subprocess, as every orchestrator does."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    return StepResult(proc.returncode, proc.stdout, proc.stderr)


def ok(result: StepResult) -> StepResult:
    assert result.returncode == 0, (
        f"step failed:\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_process(*args: str) -> StepResult:
    """Run ``python -m trainer ARGS`` through its real entry point in this process (saves interpreter starts)."""
    import contextlib
    import io

    from trainer.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return ok(StepResult(code, out.getvalue(), err.getvalue()))


@dataclass
class Pipeline:
    root: Path
    raw: Path
    prep: Path
    model: Path
    train_metrics: Path
    evaluation: Path
    train_stdout: str


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """ingest -> preprocess -> train -> evaluate on 12k synthetic rows (shared by many tests)."""
    root = tmp_path_factory.mktemp("pipeline")
    raw, prep, model = root / "raw", root / "prep", root / "model.pt"
    metrics, evaluation = root / "train_metrics.json", root / "evaluation"
    in_process("ingest", "--out", str(raw), "--rows", "12000", "--seed", "3", "--end", "2026-03-01T00:00:00Z")
    in_process("preprocess", "--data", str(raw), "--out", str(prep), "--scheduler", "threads")
    train = in_process(
        "train", "--data", str(prep), "--model-out", str(model), "--metrics-out", str(metrics), *SMALL_TRAIN
    )
    in_process("evaluate", "--data", str(prep), "--model", str(model), "--out", str(evaluation))
    yield Pipeline(root, raw, prep, model, metrics, evaluation, train.stdout)


class TrainerTools:
    """Helpers handed to tests as the ``tools`` fixture (importlib mode cannot import conftest)."""

    KATIB_REGEX = KATIB_REGEX
    SMALL_TRAIN = SMALL_TRAIN
    run = staticmethod(run_trainer)
    in_process = staticmethod(in_process)
    ok = staticmethod(ok)
    free_port = staticmethod(free_port)


@pytest.fixture(scope="session")
def tools() -> type[TrainerTools]:
    return TrainerTools
