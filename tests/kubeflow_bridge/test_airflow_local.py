"""``kubeflow-bridge airflow``: the environment it gives ``airflow standalone``, and its refusals.

The command itself starts every ``airflow standalone`` of the e2e tests (tests/dags/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kubeflow_bridge.airflow_local import standalone_env

CLI = str(Path(sys.executable).with_name("kubeflow-bridge"))


def test_env_keeps_one_jwt_secret_pauses_dags_and_carries_the_runtime(tmp_path: Path) -> None:
    runtime = {"AIRFLOW_CONN_KUBEFLOW_DEFAULT": '{"conn_type": "kubeflow"}', "KUBECONFIG": "/k"}
    first = standalone_env(
        {"PATH": "/usr/bin"}, home=tmp_path, state_dir=tmp_path / "s", runtime_env=runtime, port=8123
    )
    again = standalone_env(
        {"PATH": "/usr/bin"}, home=tmp_path, state_dir=tmp_path / "s", runtime_env={}, port=8123
    )
    secret = first["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(secret) >= 64 and again["AIRFLOW__API_AUTH__JWT_SECRET"] == secret  # kept across starts
    assert oct((tmp_path / "s" / "jwt_secret").stat().st_mode & 0o777) == "0o600"
    assert first["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"
    assert first["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)  # standalone runs `airflow`
    assert first["AIRFLOW_HOME"] == str(tmp_path) and first["AIRFLOW_CONFIG"] == str(tmp_path / "airflow.cfg")
    assert first["KUBECONFIG"] == "/k" and first["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8123"
    # An AIRFLOW_HOME the user set wins over the checkout.
    mine = standalone_env(
        {"AIRFLOW_HOME": "/srv/af"}, home=tmp_path, state_dir=tmp_path / "s", runtime_env={}, port=1
    )
    assert mine["AIRFLOW_HOME"] == "/srv/af" and mine["AIRFLOW_CONFIG"] == "/srv/af/airflow.cfg"


def test_without_a_runtime_env_file_it_says_how_to_start_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [CLI, "airflow", "--runtime-state", str(tmp_path / "none"), "--state-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "kubeflow-bridge local up" in done.stderr and "--no-runtime" in done.stderr
