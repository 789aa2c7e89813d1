"""The Airflow collector against a real metadata DB written by a real `airflow dags test` run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


@pytest.mark.e2e
def test_collects_a_dags_test_run_from_sqlite(probe_run: dict[str, str]) -> None:
    env = probe_run
    script = textwrap.dedent(
        """
        import json
        from kubeflow_bridge.compare.airflow_collector import collect_airflow_run
        from kubeflow_bridge.compare.analysis import summarize_run
        print(json.dumps(summarize_run(collect_airflow_run("collector_probe"))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    steps = {s["step"]: s for s in summary["steps"]}
    assert set(steps) == {"ingest", "tune", "evaluate", "summary"}
    assert steps["ingest"]["state"] == "succeeded"
    assert steps["ingest"]["compute_seconds"] == pytest.approx(0.2)
    assert steps["ingest"]["duration_seconds"] >= 0.2
    assert steps["evaluate"]["state"] == "failed"
    assert steps["summary"]["state"] == "succeeded"
    assert steps["tune"]["upstream"] == ["ingest"]
    # Airflow sets a run's state from its leaf tasks: an all_done summary leaf that succeeds makes the
    # run "success" although a task failed. The report still lists the failure (below); the real DAGs
    # add a watcher leaf so their runs fail as users expect.
    assert summary["state"] == "succeeded"
    assert summary["critical_path"]["steps"][:2] == ["ingest", "tune"]
    assert summary["critical_path"]["seconds"] == pytest.approx(0.3)
    assert summary["wall_seconds"] > summary["critical_path"]["seconds"]
    assert summary["outcome"] == {
        "best_params": {"lr": 0.01, "latent_dim": 8},
        "f_score": None,
        "deployed": False,
        "training_kind": None,  # this run has no train step
    }
    assert [f["step"] for f in summary["failed_steps"]] == ["evaluate"]


def test_missing_dag_run_names_the_fix(airflow_env: dict[str, str], tmp_path: Path) -> None:
    env = airflow_env
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubeflow_bridge.compare.cli",
            "--airflow-dag-id",
            "nope",
            "--out",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "Airflow has no run of DAG 'nope'" in out.stderr
    assert "airflow dags test nope" in out.stderr
