"""Run the local runtime from tests and benchmarks (yours too: test your DAGs without a cluster).

Example::

    from kubeflow_bridge.local.testing import local_runtime

    def test_my_dag(tmp_path):
        with local_runtime(tmp_path / "state", "--no-s3") as rt:
            os.environ.update(rt.env)   # KUBECONFIG, AIRFLOW_CONN_*, AWS_* ...
            ...

The runtime runs in a subprocess of the trainer environment, on free ports, in its own process group,
with its state in the given folder. Standard library plus httpx (for the fault endpoints) only, so the
control-plane environment can import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeflow_bridge.local.paths import read_env_file

if TYPE_CHECKING:
    import httpx


@dataclass
class RuntimeHandle:
    """A runtime started by :func:`start_runtime`.

    Args:
        state_dir: Its state folder.
        proc: The daemon process (leader of its process group).
        api: The Kubernetes API URL.
        kfp: The KFP API URL (None when not running).
        s3: The S3 endpoint (None with ``--no-s3``).
        kubeconfig: The kubeconfig it wrote.
        env: Its env file as a dict (KUBECONFIG, AIRFLOW_CONN_*, AWS_*, KUBEFLOW_BRIDGE_KFP_ENDPOINT).
    """

    state_dir: Path
    proc: subprocess.Popen[bytes]
    api: str
    kfp: str | None
    s3: str | None
    kubeconfig: Path
    env: dict[str, str] = field(default_factory=dict)
    #: The static token set with auth on: ``/_admin`` then needs it (see :meth:`faults`).
    admin_token: str = ""
    #: The runtime's own token (``<state>/token``) when it was started with auth, else "".
    own_token: str = ""

    def admin_headers(self) -> dict[str, str]:
        """The headers an ``/_admin`` request needs now."""
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}

    def http(self) -> httpx.Client:
        """An httpx client on the Kubernetes API."""
        import httpx

        return httpx.Client(base_url=self.api, timeout=30)

    def faults(self, **settings: Any) -> dict[str, Any]:
        """Change fault injection live (see ``kubeflow_bridge.local.apiserver.faults``); returns the settings."""
        import secrets

        import httpx

        if settings.get("auth") and not settings.get("static_token"):
            # with auth on, /_admin takes only the static token: keep one, so the test can reset
            settings["static_token"] = self.admin_token or secrets.token_urlsafe(16)
        r = httpx.post(f"{self.api}/_admin/faults", json=settings, headers=self.admin_headers(), timeout=10)
        r.raise_for_status()
        if settings.get("static_token"):
            self.admin_token = str(settings["static_token"])
        return dict(r.json())

    def reset_faults(self) -> None:
        """Turn every fault off (auth back to how the runtime started)."""
        import httpx

        httpx.delete(f"{self.api}/_admin/faults", headers=self.admin_headers(), timeout=10).raise_for_status()
        self.admin_token = self.own_token  # a reset returns to the start settings


def start_runtime(
    state_dir: Path,
    *extra: str,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    auth: bool = False,
) -> RuntimeHandle:
    """Start the runtime's daemon and wait until it has written ``runtime.json``.

    Args:
        state_dir: The state folder (created if missing).
        *extra: More daemon arguments (``--no-s3``, ``--faults``, ``--history N`` ...).
        timeout: Seconds to wait for it to come up.
        env: Extra environment for the daemon (e.g. ``KUBEFLOW_BRIDGE_GPUS``).
        auth: Require the runtime's token as ``local up`` does (default for tests: no token, plain
            HTTP, so a test can speak to the API with any HTTP client).

    Raises:
        RuntimeError: It exited or did not come up in time (with its log's tail).
    """
    from kubeflow_bridge.local.cli import runtime_python

    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "runtime.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                runtime_python(),
                "-m",
                "kubeflow_bridge.local.daemon",
                "--state-dir",
                str(state_dir),
                *([] if auth else ["--no-auth"]),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    info_file = state_dir / "runtime.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"runtime exited {proc.returncode}: {log_path.read_text()[-3000:]}")
        if info_file.exists():
            info = json.loads(info_file.read_text())
            return RuntimeHandle(
                state_dir,
                proc,
                info["api"],
                info.get("kfp"),
                info.get("s3"),
                Path(info["kubeconfig"]),
                read_env_file(Path(info["env"])),
                admin_token=(token := (state_dir / "token").read_text().strip() if auth else ""),
                own_token=token,
            )
        time.sleep(0.1)
    stop_runtime(proc)
    raise RuntimeError(f"runtime did not start in {timeout}s: {log_path.read_text()[-3000:]}")


def stop_runtime(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    """SIGTERM the runtime's process group (SIGKILL after ``timeout``); True if it stopped by itself."""
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


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text`` (e.g. a state folder), from /proc."""
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


@contextlib.contextmanager
def local_runtime(state_dir: Path, *extra: str, timeout: float = 60.0) -> Iterator[RuntimeHandle]:
    """A runtime for the duration of the ``with`` block (stopped, process group and all, afterwards)."""
    rt = start_runtime(state_dir, *extra, timeout=timeout)
    try:
        yield rt
    finally:
        stop_runtime(rt.proc)
