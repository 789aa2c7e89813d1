"""Load DAG files by path (as Airflow's DAG processor does), once per test session."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
_loaded: dict[str, ModuleType] = {}


def _load(name: str) -> ModuleType:
    if name not in _loaded:
        path = DAGS_DIR / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"dagfile_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


@pytest.fixture(scope="session")
def load_dag_file():  # type: ignore[no-untyped-def]
    """``load_dag_file("anomaly_retraining")`` -> the imported DAG module."""
    return _load


REPO = Path(__file__).resolve().parents[2]
#: The e2e runs' small workflow params (seconds per step on this machine); tests add service_name.
SMALL_CONF = {
    "rows": 5000,
    "max_trials": 2,
    "parallel_trials": 2,
    "tune_epochs": 1,
    "epochs": 2,
    "worker_replicas": 1,
    "f_score_threshold": 0.0,
    "window_end": "2026-02-01T00:00:00Z",
}
TRAINER_BIN = REPO / ".venv-trainer" / "bin"


class LocalRuntime:
    """A local Kubeflow runtime started with the public CLI in a temp state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env: dict[str, str] = {}

    def up(self) -> None:
        import subprocess

        subprocess.run(
            [str(TRAINER_BIN / "kubeflow-bridge"), "local", "up", "--state-dir", str(self.state_dir)],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        for line in (self.state_dir / "env").read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                import shlex

                key, _, value = line[len("export ") :].partition("=")
                self.env[key] = shlex.split(value)[0] if value else ""

    def down(self) -> None:
        import subprocess

        subprocess.run(
            [str(TRAINER_BIN / "kubeflow-bridge"), "local", "down", "--state-dir", str(self.state_dir)],
            check=False, capture_output=True, timeout=120,
        )  # fmt: skip

    @property
    def api(self) -> str:
        """The Kubernetes API server's URL (from the kubeconfig ``local up`` wrote)."""
        import subprocess

        return subprocess.run(
            ["kubectl", "--kubeconfig", self.env["KUBECONFIG"], "config", "view", "--minify",
             "-o", "jsonpath={.clusters[0].cluster.server}"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout.strip()  # fmt: skip

    @property
    def headers(self) -> dict[str, str]:
        """The runtime's token (``local up`` requires one on both APIs, as a cluster does)."""
        return {"Authorization": f"Bearer {(self.state_dir / 'token').read_text().strip()}"}

    def admin(self, action: str, body: dict) -> None:  # type: ignore[type-arg]
        """``POST /_admin/<action>`` on the Kubernetes API (HTTPS with the runtime's CA, its token)."""
        import httpx

        httpx.post(
            f"{self.api}/_admin/{action}", json=body, headers=self.headers,
            verify=str(self.state_dir / "tls" / "ca.crt"), timeout=10,
        ).raise_for_status()  # fmt: skip

    def kubectl_json(self, *args: str) -> dict:  # type: ignore[type-arg]
        import json
        import subprocess

        out = subprocess.run(
            ["kubectl", "--kubeconfig", self.env["KUBECONFIG"], *args, "-o", "json"],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def local_runtime(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``kubeflow-bridge local up`` for this module; ``local down`` afterwards, whatever happens."""
    runtime = LocalRuntime(tmp_path_factory.mktemp("runtime"))
    try:
        runtime.up()
        yield runtime
    finally:
        runtime.down()


#: Writes a synthetic telemetry series as a team would keep it: one CSV on S3 with its own column names.
_TEAM_CSV = """
import glob, sys, tempfile
import pandas as pd
from trainer import io
from trainer.__main__ import main
uri, rows, end = sys.argv[1], sys.argv[2], sys.argv[3]
with tempfile.TemporaryDirectory() as tmp:
    assert main(["ingest", "--out", tmp + "/raw", "--rows", rows, "--end", end]) == 0
    df = pd.concat(pd.read_parquet(f) for f in sorted(glob.glob(tmp + "/raw/month=*/*.parquet")))
df = df.drop(columns=["anomaly_type"]).rename(columns={"timestamp": "time", "label": "is_anomaly"})
df["time"] = pd.to_datetime(df["time"]).dt.tz_localize("UTC")
io.write_bytes(uri, df.to_csv(index=False).encode())
"""


def put_team_csv(runtime: LocalRuntime, uri: str, *, rows: int, end: str) -> None:
    """Put ``rows`` minutes of labelled telemetry ending (exclusively) at ``end`` at ``uri`` (a CSV on S3)."""
    import os
    import subprocess

    subprocess.run(
        [str(TRAINER_BIN / "python"), "-c", _TEAM_CSV, uri, str(rows), end],
        env={**os.environ, **runtime.env}, check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (never a fixed one: other test runs share the machine)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowStandalone:
    """``kubeflow-bridge airflow`` (the README's way to ``airflow standalone``: scheduler, triggerer, DAG
    processor, API server) in its own process group.

    Args:
        env: The environment (AIRFLOW_HOME, the database, connections); the API port, log-server ports
            and the executor are set here.
        log: Where its output goes.
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        import sys

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.command = [
            str(Path(sys.executable).with_name("kubeflow-bridge")),
            "airflow",
            "--port",
            str(self.port),
        ]
        self.env = {
            **env,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "0",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "0",
        }
        self.log = log
        self.proc: Any = None

    def start(self, wait_for_dag: str, timeout: float = 180.0) -> None:
        """Start it and wait until the API lists ``wait_for_dag`` (the DAG processor parsed it)."""
        import subprocess
        import time

        import httpx

        state = Path(self.env.get("AIRFLOW_HOME", str(self.log.parent))) / "kubeflow-bridge-state"
        # The connections are in ``env`` already (the test's runtime), not in the checkout's .state.
        command = [*self.command, "--state-dir", str(state), "--no-runtime"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, env=self.env, cwd=self.env.get("AIRFLOW_HOME"),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/api/v2/dags/{wait_for_dag}", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Airflow did not list {wait_for_dag} in {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(1)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL what is left, wait until it is gone."""
        import os
        import signal
        import time

        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.proc.poll()
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.2)
        self.proc.wait(timeout=5)


@pytest.fixture
def airflow_standalone(tmp_path: Path) -> Iterator[Callable[[dict[str, str], str], AirflowStandalone]]:
    """``airflow_standalone(env, dag_id)`` starts one and waits for the DAG; all stop at teardown."""
    started: list[AirflowStandalone] = []

    def start(env: dict[str, str], wait_for_dag: str) -> AirflowStandalone:
        standalone = AirflowStandalone(env, tmp_path / f"standalone-{len(started)}.log")
        started.append(standalone)
        standalone.start(wait_for_dag)
        return standalone

    try:
        yield start
    finally:
        for standalone in started:
            standalone.stop()
