"""``compare_orchestrators`` end to end: Airflow (scheduler) and KFP on the same inputs, then the report.

The DAG triggers ``anomaly_retraining`` and waits for it (TriggerDagRunOperator's way), which needs a
scheduler, so this test runs it under ``airflow standalone`` (LocalExecutor, cron schedules off so only
the runs we trigger execute) against a local runtime of its own.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from kubeflow_bridge import workflow

from .conftest import SMALL_CONF

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "compare_orchestrators"
CONF = {**SMALL_CONF, "service_name": "e2e-compare"}
RUN_TIMEOUT_S = 900.0

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def _wait_for_run(api: httpx.Client, dag_id: str, run_id: str, log_tail: Callable[[], str]) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        response = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        run: dict[str, Any] = response.json()
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(
                f"{dag_id} run {run_id} still {run['state']} after {RUN_TIMEOUT_S:.0f}s:\n{log_tail()}"
            )
        time.sleep(3)


def _task_states(api: httpx.Client, dag_id: str, run_id: str) -> dict[str, str]:
    response = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    response.raise_for_status()
    return {ti["task_id"]: ti["state"] for ti in response.json()["task_instances"]}


def _xcom(api: httpx.Client, run_id: str, task_id: str, key: str = "return_value") -> Any:
    response = api.get(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
        params={"deserialize": True, "stringify": False},
    )
    response.raise_for_status()
    return response.json()["value"]


def _failed_task_logs(api: httpx.Client, home: Path, dag_id: str, run_id: str, lines: int = 40) -> str:
    """The task states of a run and the log tails of its failed tasks (for assertion messages)."""
    states = _task_states(api, dag_id, run_id)
    parts = [f"{dag_id} {run_id}: {states}"]
    run_dir = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    for task_id, state in states.items():
        if state in ("failed", "upstream_failed"):
            for log in sorted((run_dir / f"task_id={task_id}").glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {log.relative_to(home)}\n" + "\n".join(tail))
    return "\n".join(parts)


def test_compare_dag_runs_both_orchestrators_and_writes_the_report(
    local_runtime: Any, airflow_standalone: Any, tmp_path: Path
) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    # The database in airflow.cfg, not in the environment: task processes get the variable blanked,
    # and the compare step's collector reads the connection from the config file.
    # One JWT secret for every component (the API server signs the tasks' execution-API tokens).
    (home / "airflow.cfg").write_text(
        f"[database]\nsql_alchemy_conn = sqlite:///{home}/airflow.db\n"
        f"[api_auth]\njwt_secret = {secrets.token_urlsafe(32)}\n"
    )
    env = {
        **os.environ,
        **local_runtime.env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),  # the links, the docs, the conf check
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Only triggered runs execute: no scheduled retraining run appears beside ours.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
    }
    report_dir = tmp_path / "report"
    env["KUBEFLOW_BRIDGE_REPORTS_DIR"] = str(report_dir)  # the plugin's comparison page shows this one
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    standalone = airflow_standalone(env, DAG_ID)
    with httpx.Client(base_url=standalone.base_url, timeout=30) as api:
        for dag_id in (DAG_ID, "anomaly_retraining"):
            api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        # The API server refuses a conf the DAG cannot take, naming every bad field, and creates no run.
        bad = {**CONF, "rowz": 5000, "rows": 5}
        refused = api.post(
            "/api/v2/dags/anomaly_retraining/dagRuns", json={"logical_date": None, "conf": bad}
        )
        assert refused.status_code == 400, refused.text
        problems = refused.json()["detail"].split("; ")
        assert problems[0].startswith("Unknown param 'rowz' (did you mean 'rows'?)")
        assert problems[1:] == ["Invalid input for param rows: 5 is less than the minimum of 1000 (minimum)"]
        assert api.get("/api/v2/dags/anomaly_retraining/dagRuns").json()["total_entries"] == 0
        response = api.post(
            f"/api/v2/dags/{DAG_ID}/dagRuns",
            json={"logical_date": None, "conf": {**CONF, "report_dir": str(report_dir)}},
        )
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        run = _wait_for_run(api, DAG_ID, run_id, standalone.log_tail)
        states = _task_states(api, DAG_ID, run_id)
        assert run["state"] == "success", (states, standalone.log_tail())
        assert states == {t: "success" for t in ("prepare", "run_airflow", "run_kfp", "compare")}

        # Same inputs on both sides: the triggered Airflow run's conf and the KFP run's parameters.
        airflow_run_id = f"compare__{run_id}"
        triggered = api.get(f"/api/v2/dags/anomaly_retraining/dagRuns/{airflow_run_id}").json()
        assert triggered["state"] == "success", _failed_task_logs(
            api, home, "anomaly_retraining", airflow_run_id
        )
        kfp_run_id = _xcom(api, run_id, "run_kfp", key="run_id")
        kfp_run = httpx.get(
            f"{local_runtime.env['KUBEFLOW_BRIDGE_KFP_ENDPOINT'].rstrip('/')}/apis/v2beta1/runs/{kfp_run_id}",
            headers=local_runtime.headers,
            timeout=30,
        ).json()
        kfp_params = kfp_run["runtime_config"]["parameters"]
        airflow_conf = triggered["conf"]
        assert airflow_conf["service_name"] == "e2e-compare-airflow"
        assert kfp_params["service_name"] == "e2e-compare-kfp"
        # Each side its own service and registered model; one tracking URI (the runtime's MLflow).
        assert (airflow_conf["registered_model"], kfp_params["registered_model"]) == (
            "anomaly-detector-airflow",
            "anomaly-detector-kfp",
        )
        assert airflow_conf["tracking_uri"] == local_runtime.env["MLFLOW_TRACKING_URI"]
        for name in workflow.DEFAULTS:
            if name not in ("service_name", "registered_model"):
                assert str(airflow_conf[name]) == str(kfp_params[name]), name
        assert airflow_conf["rows"] == CONF["rows"] and airflow_conf["window_end"] == CONF["window_end"]

        final = _xcom(api, run_id, "compare")

        # The plugin's "Kubeflow" tab of the retraining run: each task's Kubeflow pages and the
        # evaluation report, one click away; the comparison in the navigation.
        views = {
            (v["name"], v["destination"]): v["href"]
            for p in api.get("/api/v2/plugins").json()["plugins"]
            for v in p["external_views"]
        }
        assert views[("Kubeflow", "dag_run")] == "/kubeflow-bridge/runs/{DAG_ID}/{RUN_ID}"
        assert (
            views[("Kubeflow", "task_instance")] == "/kubeflow-bridge/runs/{DAG_ID}/{RUN_ID}?task={TASK_ID}"
        )
        tab = api.get(f"/kubeflow-bridge/runs/anomaly_retraining/{quote(airflow_run_id)}")
        assert tab.status_code == 200, tab.text
        hrefs = re.findall(r"href='([^']+)'", tab.text)
        for page in ("/_/katib/experiment/", "/_/trainjobs/details/", "/_/models/details/"):
            assert any(page in h for h in hrefs), (page, hrefs)
        # the objects the tasks made, with their states now, read from the runtime
        states = dict(
            re.findall(r"(\w+) <code>[^<]+</code><br><span class='object-state'>([^<]*)<", tab.text)
        )
        assert states["Experiment"].startswith("succeeded: "), states
        assert states["TrainJob"].startswith("succeeded: "), states
        assert states["InferenceService"].startswith("succeeded: "), states
        (report,) = [h for h in hrefs if "/pipeline/artifacts/get?" in h]
        shown = httpx.get(html.unescape(report), timeout=30)
        assert shown.status_code == 200 and "<svg" in shown.text and "evaluation" in shown.text
        # the evaluate task's own tab: that task only, its report embedded (the plot, no click away)
        evaluate = api.get(f"/kubeflow-bridge/runs/anomaly_retraining/{quote(airflow_run_id)}?task=evaluate")
        assert evaluate.status_code == 200 and evaluate.text.count("<tr><th>") == 2, (
            evaluate.text
        )  # the header and one task
        assert f"<iframe class='report' src='{report}'" in evaluate.text
        compared = api.get(views[("Orchestrator comparison", "nav")])
        assert compared.status_code == 200 and "Same workflow, two orchestrators" in compared.text

    # The waiting tasks reported their progress into their task logs (the triggerer's lines sit beside
    # the worker's in the task's log folder).
    run_dir = home / "logs" / "dag_id=anomaly_retraining" / f"run_id={airflow_run_id}"

    def task_log(task_id: str) -> str:
        return "".join(
            f.read_text(errors="replace") for f in sorted((run_dir / f"task_id={task_id}").glob("*.log*"))
        )

    tune_log, train_log, deploy_log = task_log("tune"), task_log("train"), task_log("deploy")
    assert re.search(r"Experiment \S+: \w+; trials \d+/2", tune_log), tune_log[-3000:]
    assert re.search(r"trial\s+state\s+parameters\s+val_loss", tune_log), tune_log[-3000:]  # the final table
    # node 0's log (the TrainJob's, training_api's default), streamed
    assert "-node-0-0] " in train_log and "epoch=" in train_log, train_log[-3000:]
    assert re.search(r"InferenceService \S+: Ready=True; url http", deploy_log), deploy_log[-3000:]
    assert "is this task's (dag anomaly_retraining" in train_log  # identity (and URL) at submit

    # Each side deployed its own InferenceService.
    ns = workflow.DEFAULTS["namespace"]
    for name in ("e2e-compare-airflow", "e2e-compare-kfp"):
        isvc = local_runtime.kubectl_json("get", "inferenceservice", name, "-n", ns)
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in isvc["status"]["conditions"]), name

    # The report in the requested folder, both orchestrators with their steps, the outcome equality.
    assert (report_dir / "comparison.html").is_file()
    comparison = json.loads((report_dir / "comparison.json").read_text())
    runs = {r["orchestrator"]: r for r in comparison["runs"]}
    assert set(runs) == {"airflow", "kfp"}
    assert runs["airflow"]["run_id"] == airflow_run_id and runs["kfp"]["run_id"] == kfp_run_id
    # Each side's inputs, as its orchestrator recorded them (the report shows them side by side).
    assert runs["airflow"]["params"]["service_name"] == "e2e-compare-airflow"
    assert runs["kfp"]["params"]["service_name"] == "e2e-compare-kfp"
    assert str(runs["airflow"]["params"]["rows"]) == str(runs["kfp"]["params"]["rows"]) == str(CONF["rows"])
    for orchestrator, summary in runs.items():
        assert summary["state"] == "succeeded", orchestrator
        steps = {s["step"]: s for s in summary["steps"]}
        for step in ("ingest", "preprocess", "tune", "train", "evaluate", "deploy"):
            assert steps[step]["state"] == "succeeded", (orchestrator, step)
            assert steps[step]["start"] and steps[step]["end"], (orchestrator, step)
        for step in ("ingest", "preprocess", "tune", "train", "evaluate"):
            assert steps[step]["compute_seconds"] > 0, (orchestrator, step)  # the trainer's own timings
        assert summary["wall_seconds"] > 0
        assert summary["outcome"]["deployed"] is True
    # Same seeded inputs, same trainer: the same tuned parameters, F-score and deploy decision.
    # Both sides logged to MLflow; the report links their runs and the comparison's history.
    assert set(comparison["mlflow"]["links"]) == {"airflow", "kfp"}, comparison["mlflow"]
    assert len(comparison["mlflow"]["history"]) == 1
    # And each side's own page: the Airflow run's grid, the KFP run's page on the runtime's dashboard.
    assert comparison["links"]["airflow"].endswith(f"/dags/anomaly_retraining/runs/{quote(airflow_run_id)}")
    assert comparison["links"]["kfp"].endswith(f"/_/pipeline/#/runs/details/{kfp_run_id}")
    equality = comparison["outcome_equality"]
    assert set(equality["fields"]) == {"best_params", "f_score", "deployed"}
    assert equality["equal"] is True, equality
    verdict = "same outcome"
    assert (
        final == f"{verdict}; report: {report_dir / 'comparison.html'} and {report_dir / 'comparison.json'}"
    )

    # A user's kill under the real scheduler and triggerer: marking the deferred `tune` task failed through
    # the REST API makes the triggerer call on_kill, which deletes the task's own Katib Experiment
    # (on_kill_action="delete"); the run then fails and nothing downstream is created.
    # 100 trials one at a time: the Experiment outlasts the operator's wait on the worker, so tune defers.
    conf = {
        **CONF,
        "service_name": "e2e-user-kill",
        "max_trials": 100,
        "parallel_trials": 1,
        "tune_epochs": 1000,
    }
    ns = workflow.DEFAULTS["namespace"]

    def experiments_of(kill_run_id: str) -> list[str]:
        items = local_runtime.kubectl_json("get", "experiments", "-n", ns)["items"]
        return [
            e["metadata"]["name"]
            for e in items
            if e["metadata"].get("annotations", {}).get("kubeflow-bridge.io/run-id") == kill_run_id
        ]

    with httpx.Client(base_url=standalone.base_url, timeout=30) as api:
        response = api.post(
            "/api/v2/dags/anomaly_retraining/dagRuns", json={"logical_date": None, "conf": conf}
        )
        assert response.status_code == 200, response.text
        kill_run_id = response.json()["dag_run_id"]
        deadline = time.monotonic() + 300
        while _task_states(api, "anomaly_retraining", kill_run_id).get(
            "tune"
        ) != "deferred" or not experiments_of(kill_run_id):
            assert time.monotonic() < deadline, standalone.log_tail()
            time.sleep(2)
        (experiment,) = experiments_of(kill_run_id)
        time.sleep(5)  # let the trigger read the task's state at its start (deferred)
        api.patch(
            f"/api/v2/dags/anomaly_retraining/dagRuns/{kill_run_id}/taskInstances/tune",
            json={"new_state": "failed"},
        ).raise_for_status()
        deadline = time.monotonic() + 60
        while experiments_of(kill_run_id):
            assert time.monotonic() < deadline, (
                f"Experiment {experiment} survived the kill\n{standalone.log_tail()}"
            )
            time.sleep(2)
        run = _wait_for_run(api, "anomaly_retraining", kill_run_id, standalone.log_tail)
        assert run["state"] == "failed"
        states = _task_states(api, "anomaly_retraining", kill_run_id)
        assert (
            states["tune"] == "failed"
            and states["train"] == "upstream_failed"
            and states["deploy"] == "upstream_failed"
        )
    kill_dir = home / "logs" / "dag_id=anomaly_retraining" / f"run_id={kill_run_id}" / "task_id=tune"
    kill_log = "".join(f.read_text(errors="replace") for f in sorted(kill_dir.glob("*.log*")))
    assert re.search(rf"task killed: deleting \w+ {ns}/{experiment}", kill_log), kill_log[-3000:]
    services = local_runtime.kubectl_json("get", "inferenceservices", "-n", ns)["items"]
    assert "e2e-user-kill" not in {s["metadata"]["name"] for s in services}
