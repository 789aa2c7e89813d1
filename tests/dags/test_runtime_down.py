"""The retraining DAG with no runtime behind its connection: a clear error naming `local up`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))

_DEAD_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
"""


@pytest.mark.e2e
def test_ingest_without_a_runtime_says_how_to_start_one(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(_DEAD_KUBECONFIG)  # port 1: nothing listens there
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW_CONFIG": str(tmp_path / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
            "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(
                {
                    "conn_type": "kubernetes",
                    "extra": {"kube_config_path": str(kubeconfig), "in_cluster": False},
                }
            ),
        }
    )
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    # `tasks test` runs have no data interval: the ingest template must cope with that too.
    out = subprocess.run(
        [AIRFLOW, "tasks", "test", "anomaly_retraining", "ingest"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = out.stdout + out.stderr
    # (`tasks test` exits 0 even when the task fails; the log is what a user reads.)
    assert "Task failed with exception" in log
    assert "UndefinedError" not in log
    assert "is unreachable" in log and "kubeflow-bridge local up" in log
