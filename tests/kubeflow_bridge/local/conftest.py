"""Fixtures: a local runtime in a subprocess (free ports, tmp state), clients, and per-test namespaces."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


@dataclass
class RuntimeHandle:
    """A running local runtime started by a fixture."""

    state_dir: Path
    proc: subprocess.Popen[bytes]
    api: str
    kfp: str | None
    s3: str | None
    kubeconfig: Path

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=30)

    def faults(self, **settings: Any) -> dict[str, Any]:
        r = httpx.post(f"{self.api}/_admin/faults", json=settings, timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def reset_faults(self) -> None:
        httpx.delete(f"{self.api}/_admin/faults", timeout=10).raise_for_status()


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text`` (from /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if text in cmd and ") Z" not in stat:
            found.append((int(d.name), cmd))
    return found


def start_runtime(state_dir: Path, *extra: str, timeout: float = 60.0) -> RuntimeHandle:
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(state_dir / "runtime.log", "ab")  # noqa: SIM115 - closed by the child's exit
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeflow_bridge.local.daemon", "--state-dir", str(state_dir), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        # No GPUs, even on a machine that has some: the tests expect GPU pods to stay Pending.
        env={**os.environ, "KUBEFLOW_BRIDGE_GPUS": "0"},
    )
    log.close()
    info_file = state_dir / "runtime.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"runtime exited {proc.returncode}: {(state_dir / 'runtime.log').read_text()[-3000:]}"
            )
        if info_file.exists():
            info = json.loads(info_file.read_text())
            return RuntimeHandle(
                state_dir, proc, info["api"], info.get("kfp"), info.get("s3"), Path(info["kubeconfig"])
            )
        time.sleep(0.1)
    stop_runtime_proc(proc)
    raise RuntimeError("runtime did not start in time")


def stop_runtime_proc(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    """SIGTERM the runtime's process group; True if it exited by itself in time."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        return False


def stop_runtime(rt: RuntimeHandle) -> None:
    """Stop the runtime; fail if it needed SIGKILL or left any process or pid file behind."""
    from kubeflow_bridge.local.processes import sweep_pid_files

    graceful = stop_runtime_proc(rt.proc)
    if not graceful:
        sweep_pid_files(rt.state_dir / "procs")
    assert graceful, (
        f"the runtime ignored SIGTERM; log tail: {(rt.state_dir / 'runtime.log').read_text()[-2000:]}"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and processes_mentioning(str(rt.state_dir)):
        time.sleep(0.2)
    left = processes_mentioning(str(rt.state_dir))
    procs_dir = rt.state_dir / "procs"
    pid_files = [f.name for f in procs_dir.iterdir()] if procs_dir.is_dir() else []
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind by the runtime: {left}"
    assert not pid_files, f"pid files left behind: {pid_files}"


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeHandle]:
    """One runtime for the session (with S3), short watch history and fast bookmarks for the tests."""
    state = tmp_path_factory.mktemp("kb-local") / "state"
    rt = start_runtime(state, "--history", "300", "--bookmark-interval", "0.5")
    try:
        yield rt
    finally:
        stop_runtime(rt)


@pytest.fixture
def namespace(runtime: RuntimeHandle) -> Iterator[str]:
    """A fresh namespace per test (deleted afterwards, which deletes what the test left)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    with runtime.http() as c:
        c.post("/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    yield name
    runtime.reset_faults()
    with runtime.http() as c:
        c.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def kube(runtime: RuntimeHandle) -> Any:
    """An ``kubernetes.client.ApiClient`` for the runtime's kubeconfig."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(runtime.kubeconfig))
    yield client
    client.close()


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def python_pod(
    name: str, code: str, *, restart: str = "Never", image: str = "python:3.11", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "containers": [{"name": "main", "image": image, "command": ["python", "-c", code], **spec}],
        },
    }
