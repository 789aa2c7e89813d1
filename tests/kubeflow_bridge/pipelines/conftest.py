"""A local Kubeflow runtime for the pipeline's end-to-end test (started with the public CLI)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("kubeflow-bridge"))


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``kubeflow-bridge local up`` in a temp state folder; yields its env file; ``local down`` after."""
    state = tmp_path_factory.mktemp("runtime")
    try:
        subprocess.run(
            [CLI, "local", "up", "--state-dir", str(state)], check=True, capture_output=True, timeout=180
        )
        env: dict[str, str] = {}
        for line in (state / "env").read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export ") :].partition("=")
                env[key] = shlex.split(value)[0] if value else ""
        yield env
    finally:
        subprocess.run(
            [CLI, "local", "down", "--state-dir", str(state)], check=False, capture_output=True, timeout=120
        )
