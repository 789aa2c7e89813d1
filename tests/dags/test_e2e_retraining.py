"""`airflow dags test anomaly_retraining` against the local runtime: every step for real.

Asserts the Kubeflow objects the tasks created (with their Airflow identity), the final XComs (the
summary), that the deployed model answers, and that the comparison collector reads the run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeflow_bridge import workflow
from kubeflow_bridge.workflow.tracking import EXPERIMENT, MlflowRest

from .conftest import SMALL_CONF, TRAINER_BIN, put_team_csv

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SERVICE = "e2e-airflow-vae"
CONF = {
    **SMALL_CONF,
    "worker_replicas": 2,  # a world of 3: the global batch splits unevenly, which must still train
    "service_name": SERVICE,
}


@pytest.fixture(scope="module")
def airflow_env(local_runtime: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated Airflow home (SQLite) whose connections point at the module's runtime."""
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        **local_runtime.env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def _dags_test(env: dict[str, str], dag_id: str, conf: dict[str, Any], *, check: bool = True) -> str:
    run = subprocess.run(
        [AIRFLOW, "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = run.stdout + run.stderr
    if check:
        assert run.returncode == 0, log[-6000:]
    return log


def _probe(env: dict[str, str], code: str) -> Any:
    """Run ``code`` in a fresh interpreter with ``env``; its last stdout line, parsed as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


#: The team's dataset: 8,000 minutes of telemetry up to 2026-02-02 in one CSV with its own column names.
TEAM_CSV = "s3://kubeflow-bridge/datasets/telemetry.csv"
#: The scheduled run of 2026-02-01 03:00: its data interval ends then; 3 days of lookback before it.
LOGICAL_DATE = "2026-02-01T03:00:00+00:00"
TEAM_CONF = {
    **{k: v for k, v in CONF.items() if k not in ("rows", "window_end")},
    "source": TEAM_CSV,
    "time_column": "time",
    "label_column": "is_anomaly",
    "lookback": "3D",
}


@pytest.fixture(scope="module")
def team_csv(local_runtime: Any) -> str:
    put_team_csv(local_runtime, TEAM_CSV, rows=8000, end="2026-02-02T00:00:00Z")
    return TEAM_CSV


@pytest.mark.e2e
def test_retraining_dag_runs_every_step_on_the_runtime(
    local_runtime: Any, airflow_env: dict[str, str], team_csv: str
) -> None:
    env = airflow_env
    run = subprocess.run(
        [AIRFLOW, "dags", "test", "anomaly_retraining", LOGICAL_DATE, "--conf", json.dumps(TEAM_CONF)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    # The run as the comparison reads it (metadata DB + cluster), in a fresh interpreter.
    probe = textwrap.dedent(
        """
        import json
        from kubeflow_bridge.compare.airflow_collector import collect_airflow_run
        from kubeflow_bridge.compare.analysis import summarize_run
        print(json.dumps(summarize_run(collect_airflow_run("anomaly_retraining"))))
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    states = {s["step"]: s["state"] for s in summary["steps"]}
    assert summary["state"] == "succeeded"
    assert states == {
        **{s: "succeeded" for s in workflow.STEPS},
        "champion": "succeeded",
        "summary": "succeeded",
        "check_run": "skipped",
    }
    compute = {s["step"]: s["compute_seconds"] for s in summary["steps"]}
    for step in ("ingest", "preprocess", "tune", "train", "evaluate"):
        assert compute[step] and compute[step] > 0, step
    # The data interval picked the rows: [2026-01-29 03:00, 2026-02-01 03:00) of the CSV, 3 days of minutes.
    prefix = workflow.run_prefix(workflow.DEFAULTS["artifact_root"], summary["run_id"])
    read = "import sys; from trainer import io; print(io.read_text(sys.argv[1]))"
    meta_uri = f"{workflow.uri(prefix, 'dataset')}/metadata.json"
    ingest_meta = json.loads(
        subprocess.run(
            [str(TRAINER_BIN / "python"), "-c", read, meta_uri],
            env={**env, **local_runtime.env}, capture_output=True, text=True, check=True, timeout=60,
        ).stdout
    )  # fmt: skip
    assert ingest_meta["rows"] == 3 * 1440 and ingest_meta["labelled"]
    assert (ingest_meta["start"], ingest_meta["end"]) == ("2026-01-29T03:00:00", "2026-02-01T02:59:00")
    outcome = summary["outcome"]
    assert set(outcome["best_params"]) == {"lr", "latent_dim"}
    assert workflow.DEFAULTS["lr_min"] <= outcome["best_params"]["lr"] <= workflow.DEFAULTS["lr_max"]
    assert 0.0 <= outcome["f_score"] <= 1.0
    assert outcome["deployed"] is True

    ns = workflow.DEFAULTS["namespace"]
    experiments = local_runtime.kubectl_json("get", "experiments", "-n", ns)["items"]
    ours = [
        e for e in experiments if e["metadata"]["annotations"].get("kubeflow-bridge.io/task-id") == "tune"
    ]
    assert len(ours) == 1
    assert ours[0]["metadata"]["annotations"]["kubeflow-bridge.io/dag-id"] == "anomaly_retraining"
    assert ours[0]["spec"]["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "0"}]
    # training_api's default: a Kubeflow Trainer v2 TrainJob of 1 + worker_replicas torchrun nodes.
    jobs = local_runtime.kubectl_json("get", "trainjobs", "-n", ns)["items"]
    train = [j for j in jobs if j["metadata"]["annotations"].get("kubeflow-bridge.io/task-id") == "train"]
    assert len(train) == 1 and train[0]["spec"]["trainer"]["numNodes"] == 3
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in train[0]["status"]["conditions"])
    assert summary["outcome"]["training_kind"] == "TrainJob"
    isvc = local_runtime.kubectl_json("get", "inferenceservice", SERVICE, "-n", ns)
    recorded = float(isvc["metadata"]["annotations"]["kubeflow-bridge.io/metric.composite_f1"])
    assert recorded == pytest.approx(outcome["f_score"])
    url = isvc["status"]["url"]
    answer = httpx.post(
        f"{url}/v1/models/anomaly-vae:predict", json=workflow.smoke_payload("synthetic", rows=5), timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 5
    # MLflow (the runtime's server; the DAG read the mlflow_default connection from the env file): the
    # trials nest under one tuning run, train and evaluate share one run, the deployed version is champion.
    mlflow = MlflowRest(local_runtime.env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(EXPERIMENT, f"tags.`kubeflow_bridge.run_id` = '{summary['run_id']}'")
    steps = [{t["key"]: t["value"] for t in r["data"]["tags"]}.get("kubeflow_bridge.step") for r in runs]
    assert sorted(steps) == sorted(["tune", "train"] + ["trial"] * TEAM_CONF.get("max_trials", 4))
    (train_run,) = [r for r, step in zip(runs, steps, strict=True) if step == "train"]
    metrics = {m["key"]: m["value"] for m in train_run["data"]["metrics"]}
    assert metrics["eval_composite_f1"] == pytest.approx(outcome["f_score"])
    champion = mlflow.version_by_alias(workflow.DEFAULTS["registered_model"], "champion")
    assert champion is not None and champion["run_id"] == train_run["info"]["run_id"]
    tags = {t["key"]: t["value"] for t in champion["tags"]}
    assert tags["kubeflow_bridge.inferenceservice"] == f"{ns}/{SERVICE}"
    assert tags["kubeflow_bridge.model_uri"] == workflow.evaluated_model_uri(prefix)


@pytest.mark.e2e
def test_kfp_pipeline_inside_airflow(local_runtime: Any, airflow_env: dict[str, str], team_csv: str) -> None:
    # Params in (the trigger conf), the KFP run's outputs out to the downstream `report` task. The data:
    # the team's CSV without its labels, so nothing can be evaluated and the no-labels policy decides
    # (if_nothing_serves: this service does not exist yet, so the model deploys).
    conf = {
        **{k: v for k, v in CONF.items() if k != "rows"},
        "source": team_csv,
        "time_column": "time",
        "lookback": "3D",
        "service_name": "e2e-kfp-in-airflow",
        "registered_model": "e2e-kfp-in-airflow",  # its own champion, as its own service
        "experiment": "e2e-kfp-in-airflow",
    }
    _dags_test(airflow_env, "kfp_in_airflow", conf)
    probe = textwrap.dedent(
        """
        import json
        from sqlalchemy import select
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        with create_session() as session:
            rows = session.execute(select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == "kfp_in_airflow", XComModel.key == "return_value"))
            print(json.dumps({r.task_id: XComModel.deserialize_value(r) for r in rows}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=airflow_env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    xcoms = json.loads(out.stdout.strip().splitlines()[-1])
    assert xcoms["prepare"]["source"] == team_csv and xcoms["prepare"]["label_column"] == ""
    assert xcoms["prepare"]["window_end"] == CONF["window_end"]
    report = xcoms["report"]
    assert report["state"] == "succeeded"
    assert report["run_id"] == xcoms["run_pipeline"]["run_id"]
    assert set(report["best_params"]) == {"lr", "latent_dim"}
    assert report["f_score"] is None  # not evaluable: no labels
    assert report["gate"] == "deploy" and report["deployed"] is True
    # The service records no score for a model deployed without one (the next run has nothing to beat).
    isvc = local_runtime.kubectl_json("get", "inferenceservice", "e2e-kfp-in-airflow", "-n", "kubeflow-user")
    assert isvc["metadata"]["annotations"][f"kubeflow-bridge.io/metric.{workflow.F_SCORE_METRIC}"] == ""
    assert report["url"].startswith("http://127.0.0.1:")


LINKS_PROBE = """
    import json
    from sqlalchemy import select
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    with create_session() as session:
        rows = session.execute(select(XComModel.dag_id, XComModel.task_id, XComModel.key, XComModel.value)
                               .where(XComModel.key.like("_link_%")).order_by(XComModel.timestamp))
        values = ((f"{r.dag_id}.{r.task_id}", XComModel.deserialize_value(r)) for r in rows)
        print(json.dumps({key: value for key, value in values if value}))
"""


@pytest.mark.e2e
def test_extra_links_open_the_runtimes_pages(
    local_runtime: Any, airflow_env: dict[str, str], run_ui_driver: Any, tmp_path: Path
) -> None:
    """The links the retraining DAG's and kfp_in_airflow's tasks recorded (the tests above ran them) open
    the runtime's UI in Chromium: the KFP run graph, the Katib plot, the TrainJob's pods and the model."""
    links = _probe(airflow_env, LINKS_PROBE)
    pages = [
        {"name": "run", "url": links["kfp_in_airflow.run_pipeline"], "follow_log": "log"},
        {"name": "tune", "url": links["anomaly_retraining.tune"]},
        {"name": "train", "url": links["anomaly_retraining.train"], "follow_log": "node"},
        {"name": "model", "url": links["anomaly_retraining.deploy"]},
    ]
    kfp_run = links["kfp_in_airflow.run_pipeline"].rsplit("/", 1)[1]
    compare = links["kfp_in_airflow.run_pipeline"].replace(
        f"runs/details/{kfp_run}", f"compare?runlist={kfp_run},{kfp_run}"
    )
    pages.append({"name": "compare", "url": compare})
    dashboard = json.loads(local_runtime.env["AIRFLOW_CONN_KUBEFLOW_DEFAULT"])["extra"]["dashboard_url"]
    assert all(p["url"].startswith(f"{dashboard}/_/") for p in pages), links
    for page in pages:
        page["screenshot"] = str(tmp_path / f"{page['name']}.png")
    seen = run_ui_driver("pages.js", {"pages": pages}, tmp_path)
    # The KFP run: every task in the graph with its state, the evaluation report rendered, a task's log.
    run = seen["run"]
    assert "/_/pipeline/runs/details/" in run["url"]
    assert {n["task"]: n["state"] for n in run["nodes"]} == {s: "SUCCEEDED" for s in workflow.STEPS}
    assert any("<svg" in frame and "evaluation" in frame for frame in run["iframes"])  # evaluate's report
    # evaluate's Metrics artifact as a table (this run's data has no labels: no F1, the rest is there)
    assert re.search(r"evaluate: metrics\s+metric\s+value\s+channels\s+\d", run["text"]), run["text"][-3000:]
    assert run["log"]
    # Katib: one point per trial on the objective plot, the trials' table (their pods are gone: Katib
    # deletes a finished trial's job).
    tune = seen["tune"]
    assert tune["points"] == CONF["max_trials"] and tune["text"].count("Succeeded") >= CONF["max_trials"]
    assert "pod gone" in tune["text"]
    # The TrainJob: its 3 nodes' pods, node 0's log with the epochs.
    train = seen["train"]
    assert train["title"].startswith("TrainJob ") and train["text"].count("-node-0-") == 3
    assert "epoch=" in train["log"]
    # The KFP UI's run comparison (its hash route): params and each task's numeric outputs side by side.
    assert (
        seen["compare"]["title"] == "Comparing 2 runs"
        and "evaluate.compute_seconds" in seen["compare"]["text"]
    )
    # The InferenceService: ready, its URL, all traffic on one revision.
    model = seen["model"]
    assert model["title"] == f"InferenceService {SERVICE}" and "Ready: Succeeded" in model["text"]
    assert "100" in model["text"] and "http://127.0.0.1:" in model["text"]


RUN_STATES_PROBE = """
    import json
    from sqlalchemy import select
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    def value(state):
        return getattr(state, "value", state)
    with create_session() as session:
        runs = [r for r in session.scalars(select(DagRun).where(DagRun.dag_id == "anomaly_retraining"))
                if (r.conf or {}).get("service_name") == SERVICE]
        run = runs[-1]
        tis = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id))
        print(json.dumps({"run_id": run.run_id, "state": value(run.state),
                          "tasks": {ti.task_id: value(ti.state) for ti in tis}}))
"""
CRASH_MESSAGE = "replica crashed on start (crash-pods fault of the local runtime)"
#: How long the failing run may take: ingest, preprocess, one trial and the failing job take ~40 s.
FAILING_RUN_LIMIT_S = 240


def _restarts_forever(job: dict[str, Any], pods: list[dict[str, Any]]) -> bool:
    """The job's replicas keep restarting and nothing will ever fail the job (no backoffLimit)."""
    if (job["spec"].get("runPolicy") or {}).get("backoffLimit") is not None:
        return False
    name = job["metadata"]["name"]
    restarts = [
        cs.get("restartCount", 0)
        for p in pods
        if p["metadata"].get("labels", {}).get("training.kubeflow.org/job-name") == name
        for cs in p.get("status", {}).get("containerStatuses") or []
    ]
    return bool(restarts) and max(restarts) >= 3


@pytest.mark.e2e
def test_failing_replica_fails_the_run_and_deploys_nothing(
    local_runtime: Any, airflow_env: dict[str, str], tmp_path: Path
) -> None:
    # Valid input does not make a replica fail, so the runtime's crash-pods fault (the named seam)
    # makes every replica of the train PyTorchJob crash on start with its own words; the job, its
    # restarts, backoff limit and logs are real.
    service = "e2e-failing-replica"
    ns = workflow.DEFAULTS["namespace"]
    # On the Training Operator v1 path (training_api=pytorchjob): its backoffLimit must end the run.
    conf = {
        **CONF,
        "max_trials": 1,
        "parallel_trials": 1,
        "service_name": service,
        "training_api": "pytorchjob",
    }

    def services() -> dict[str, str]:
        items = local_runtime.kubectl_json("get", "inferenceservices", "-n", ns)["items"]
        return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}

    def our_jobs() -> list[dict[str, Any]]:
        jobs = local_runtime.kubectl_json("get", "pytorchjobs", "-n", ns)["items"]
        return [j for j in jobs if j["spec"]["pytorchReplicaSpecs"].get("Worker", {}).get("replicas") == 2]

    before = services()
    jobs_before = {j["metadata"]["name"] for j in our_jobs()}
    crash = {"name_pattern": "^anomaly-retraining-train-", "exit_code": 1, "message": CRASH_MESSAGE}
    local_runtime.admin("crash-pods", crash)
    out = tmp_path / "dags_test.log"  # a file, not a pipe: the loop below does not drain one
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [AIRFLOW, "dags", "test", "anomaly_retraining", "--conf", json.dumps(conf)],
            env=airflow_env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + FAILING_RUN_LIMIT_S
        while proc.poll() is None:
            new = [j for j in our_jobs() if j["metadata"]["name"] not in jobs_before]
            pods = local_runtime.kubectl_json("get", "pods", "-n", ns)["items"] if new else []
            if new and _restarts_forever(new[0], pods):
                pytest.fail(
                    f"PyTorchJob {new[0]['metadata']['name']}'s failing replicas restart forever: it has "
                    "no runPolicy.backoffLimit, so the run can never fail"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"the failing run did not end in {FAILING_RUN_LIMIT_S}s")
            time.sleep(3)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        local_runtime.admin("crash-pods", {"name_pattern": ""})
    log = out.read_text(errors="replace")

    run = _probe(airflow_env, RUN_STATES_PROBE.replace("SERVICE", repr(service)))
    assert run["state"] == "failed", log[-6000:]
    tasks = run["tasks"]
    assert tasks["ingest"] == tasks["preprocess"] == tasks["tune"] == "success"
    assert tasks["train"] == "failed"
    assert tasks["evaluate"] == tasks["gate"] == tasks["deploy"] == "upstream_failed"
    assert tasks["check_run"] == "failed" and tasks["summary"] == "success"
    # The train task's error names the step's PyTorchJob and why it failed.
    named = rf"PyTorchJob {ns}/anomaly-retraining-train-\w+ failed: PyTorchJobFailed"
    assert re.search(named, log), log[-6000:]
    # ... and carries the failing replica's own words (its previous container's log, after restarts).
    assert CRASH_MESSAGE in log, log[-6000:]

    ours = [
        j
        for j in our_jobs()
        if j["metadata"]["annotations"].get("kubeflow-bridge.io/run-id") == run["run_id"]
    ]
    assert len(ours) == 1
    conditions = {c["type"]: c["status"] for c in ours[0]["status"]["conditions"]}
    assert conditions.get("Failed") == "True" and conditions.get("Succeeded") != "True"
    # Nothing deployed: no service of this run, and every other one untouched.
    assert service not in services()
    assert services() == before
