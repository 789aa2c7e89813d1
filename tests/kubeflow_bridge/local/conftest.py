"""Fixtures: a local runtime in a subprocess (free ports, tmp state), clients, and per-test namespaces."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeflow_bridge.local.testing import RuntimeHandle, processes_mentioning
from kubeflow_bridge.local.testing import start_runtime as _start_runtime
from kubeflow_bridge.local.testing import stop_runtime as stop_runtime_proc


def start_runtime(state_dir: Path, *extra: str, timeout: float = 60.0) -> RuntimeHandle:
    # No GPUs, even on a machine that has some: the tests expect GPU pods to stay Pending.
    return _start_runtime(state_dir, *extra, timeout=timeout, env={"KUBEFLOW_BRIDGE_GPUS": "0"})


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


def group_gone(pgid: int) -> bool:
    """Whether no process of the group ``pgid`` is left."""
    try:
        os.killpg(pgid, 0)
        return False
    except ProcessLookupError:
        return True


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
