"""The REST-API Airflow collector against a real ``airflow api-server`` (simple auth manager, a viewer user)
serving the DB of a real ``airflow dags test`` run: it must build the run the DB collector builds."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeflow_bridge.compare.airflow_api import AirflowApiAuth

USER, PASSWORD = "reader", secrets.token_urlsafe(12)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def api_server(probe_run: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """``airflow api-server`` over the probe run's DB with one ``viewer`` user; yields (url, env)."""
    home = Path(probe_run["AIRFLOW_HOME"])
    passwords = home / "api-passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    port = _free_port()
    env = {
        **probe_run,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }
    log = home / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "api-server", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        yield url, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _compare(env: dict[str, str], out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubeflow_bridge.compare.cli", "--airflow-dag-id", "collector_probe",
         "--out", str(out), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _airflow_run(report_dir: Path) -> dict[str, Any]:
    (run,) = json.loads((report_dir / "comparison.json").read_text())["inputs"]
    return run  # type: ignore[no-any-return]


@pytest.mark.e2e
def test_the_api_collector_builds_the_run_the_db_collector_builds(
    api_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = api_server
    from_db = _compare(env, tmp_path / "db")
    assert from_db.returncode == 0, from_db.stderr
    # The API side gets no DB: a wrong connection proves it reads over HTTP only.
    api_env = {
        **env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/no-such.db",
        "AIRFLOW_API_PASSWORD": PASSWORD,
    }
    from_api = _compare(api_env, tmp_path / "api", "--airflow-api-url", url, "--airflow-username", USER)
    assert from_api.returncode == 0, from_api.stderr
    assert PASSWORD not in from_api.stdout + from_api.stderr
    run = _airflow_run(tmp_path / "api")
    assert run == _airflow_run(tmp_path / "db")
    steps = {s["step"]: s for s in run["steps"]}
    assert steps["tune"]["upstream"] == ["ingest"] and steps["evaluate"]["state"] == "failed"
    assert steps["ingest"]["compute_seconds"] == pytest.approx(0.2)
    assert run["outcome"]["best_params"] == {"lr": 0.01, "latent_dim": 8}


@pytest.mark.e2e
def test_api_errors_say_what_to_fix(api_server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = api_server
    wrong = _compare(
        {**env, "AIRFLOW_API_PASSWORD": "not-the-password"},
        tmp_path,
        "--airflow-api-url", url, "--airflow-username", USER,
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "refused the credentials" in wrong.stderr and "AIRFLOW_API_PASSWORD" in wrong.stderr
    assert "not-the-password" not in wrong.stderr

    token = httpx.post(f"{url}/auth/token", json={"username": USER, "password": PASSWORD}).json()
    missing = _compare(
        {**env, "AIRFLOW_API_TOKEN": token["access_token"]},
        tmp_path,
        "--airflow-api-url", url, "--airflow-run-id", "manual__nope",
    )  # fmt: skip
    assert missing.returncode == 2
    assert "has no run 'manual__nope' of DAG 'collector_probe'" in missing.stderr

    down = _compare(env, tmp_path, "--airflow-api-url", f"http://127.0.0.1:{_free_port()}")
    assert down.returncode == 2 and "cannot reach Airflow's API" in down.stderr
    assert not (tmp_path / "comparison.json").exists()


def test_api_auth_from_env_needs_the_password_and_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIRFLOW_API_TOKEN", "AIRFLOW_API_USERNAME", "AIRFLOW_API_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert AirflowApiAuth.from_env() == AirflowApiAuth()
    with pytest.raises(ValueError, match=r"user 'reader' needs its password in \$AIRFLOW_API_PASSWORD"):
        AirflowApiAuth.from_env("reader")
    monkeypatch.setenv("AIRFLOW_API_PASSWORD", "pw-123")
    monkeypatch.setenv("AIRFLOW_API_TOKEN", "jwt-456")
    auth = AirflowApiAuth.from_env("reader")
    assert (auth.username, auth.password, auth.token) == ("reader", "pw-123", "jwt-456")
    assert "pw-123" not in repr(auth) and "jwt-456" not in repr(auth)
