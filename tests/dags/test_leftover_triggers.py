"""Trigger rows ``airflow dags test`` leaves behind never delete anything when a triggerer starts later.

``dags test`` runs a deferred task's trigger in its own process and leaves the trigger row in the
metadata DB. A triggerer started afterwards (``make airflow`` after ``make demo``) picks the row up, then
cancels it "by user action" when its clean-up finds the task is not deferred, and Airflow calls the
trigger's ``on_kill``. The trigger must see that nobody killed anything: the job it waited for stays.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG = """
import pendulum
from airflow.sdk import DAG
from kubeflow_bridge.operators.training import PyTorchJobOperator

with DAG(dag_id="leftover", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    PyTorchJobOperator(
        task_id="train",
        image="kubeflow-bridge/trainer:latest",
        command=["python", "-c", "print('trained')"],
        on_kill_action="delete",
        poll_interval=1,
    )
"""


def test_a_triggerer_after_dags_test_keeps_the_job(local_runtime: Any, tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "leftover.py").write_text(DAG)
    env = {
        **os.environ,
        **local_runtime.env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY": "0",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "0",
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    tested = subprocess.run(
        [AIRFLOW, "dags", "test", "leftover"], env=env, capture_output=True, text=True, timeout=300
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    with sqlite3.connect(home / "airflow.db") as db:
        assert db.execute("select count(*) from trigger").fetchone()[0] >= 1  # what dags test left
    (job,) = local_runtime.kubectl_json("get", "pytorchjobs", "-A")["items"]

    log = tmp_path / "triggerer.log"
    with log.open("wb") as out:
        triggerer = subprocess.Popen(
            [AIRFLOW, "triggerer"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def trigger_log() -> str:  # the trigger's own lines go to its task's log folder
        logs = sorted(home.glob("logs/dag_id=leftover/**/*.trigger.*.log"))
        return "".join(path.read_text(errors="replace") for path in logs)

    try:
        deadline = time.monotonic() + 120
        # Wait until the triggerer has run the leftover trigger and cancelled it "by user action".
        while "not by a user" not in trigger_log() and time.monotonic() < deadline:
            assert triggerer.poll() is None, log.read_text(errors="replace")[-3000:]
            time.sleep(1)
    finally:
        os.killpg(triggerer.pid, signal.SIGTERM)
        triggerer.wait(timeout=60)
    text = trigger_log()
    assert "Trigger cancelled by user action, invoking on_kill" in text, text[-4000:]  # Airflow's call
    assert "the task instance is success, not deferred: this trigger is a leftover" in text, text[-4000:]
    assert "not by a user" in text and "deleting PyTorchJob" not in text, text[-4000:]
    kept = local_runtime.kubectl_json("get", "pytorchjobs", "-A")["items"]
    assert [j["metadata"]["uid"] for j in kept] == [job["metadata"]["uid"]]
