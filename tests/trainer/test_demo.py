"""`python -m trainer.demo` (what `make demo` runs), end to end on a small size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.e2e
def test_demo_runs_every_step_and_serves(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--rows",
            "20000",
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for step in ("ingest", "preprocess", "train", "evaluate", "serve"):
        assert f"$ python -m trainer {step}" in out
    assert "V1 answer:" in out and '"predictions"' in out
    assert "V2 answer:" in out and '"anomaly"' in out
    report = tmp_path / "demo" / "evaluation" / "report.html"
    model = tmp_path / "demo" / "evaluation" / "model.pt"
    assert f"Report: {report}" in out and report.exists()
    assert f"Model (with threshold): {model}" in out and model.exists()
