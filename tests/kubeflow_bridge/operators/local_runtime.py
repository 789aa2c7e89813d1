"""Start the local Kubeflow runtime (from .venv-trainer) for integration tests, and read its env file."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
TRAINER_PYTHON = ROOT / ".venv-trainer" / "bin" / "python"


@dataclass
class Runtime:
    state_dir: Path
    proc: subprocess.Popen[bytes]
    api: str
    kfp: str | None
    env: dict[str, str]

    def faults(self, **settings: Any) -> None:
        import httpx

        httpx.post(f"{self.api}/_admin/faults", json=settings, timeout=10).raise_for_status()

    def reset_faults(self) -> None:
        import httpx

        httpx.delete(f"{self.api}/_admin/faults", timeout=10).raise_for_status()


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, _, value = parts[1].partition("=")
            env[key] = value
    return env


@contextlib.contextmanager
def local_runtime(state_dir: Path, *extra: str, timeout: float = 60) -> Iterator[Runtime]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "runtime.log", "ab") as log:
        proc = subprocess.Popen(
            [
                str(TRAINER_PYTHON),
                "-m",
                "kubeflow_bridge.local.daemon",
                "--state-dir",
                str(state_dir),
                "--no-s3",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=ROOT,
        )
    try:
        info_file = state_dir / "runtime.json"
        deadline = time.monotonic() + timeout
        while not info_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"local runtime did not start: {(state_dir / 'runtime.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)
        info = json.loads(info_file.read_text())
        yield Runtime(state_dir, proc, info["api"], info.get("kfp"), read_env_file(Path(info["env"])))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
