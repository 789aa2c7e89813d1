"""The operators against the real local Kubeflow runtime (real API server, controllers, official clients)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from kubeflow_bridge.operators._base import KubeflowOperatorError
from kubeflow_bridge.operators.training import PyTorchJobOperator
from kubeflow_bridge.resources.names import IDENTITY_LABEL
from kubeflow_bridge.triggers.kubeflow import KubeflowObjectTrigger

from .conftest import FakeStore, FakeTI
from .local_runtime import TRAINER_PYTHON, Runtime, dag_test_file, local_runtime
from .test_bad_input import EXECUTE_CASES

pytestmark = pytest.mark.e2e

IMAGE = "kubeflow-bridge/trainer:latest"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with local_runtime(tmp_path_factory.mktemp("kb-airflow") / "state") as rt:
        yield rt


@pytest.fixture
def namespace(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> str:
    """Connections from the runtime's env file, with a fresh namespace per test."""
    import httpx

    name = f"af-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{runtime.api}/api/v1/namespaces", json={"metadata": {"name": name}}, timeout=10
    ).raise_for_status()
    for key, value in runtime.env.items():
        monkeypatch.setenv(key, value)
    conn = json.loads(runtime.env["AIRFLOW_CONN_KUBEFLOW_DEFAULT"])
    conn["extra"] = {**conn["extra"], "namespace": name, "gpus_available": False}
    monkeypatch.setenv("AIRFLOW_CONN_KUBEFLOW_DEFAULT", json.dumps(conn))
    API["url"] = runtime.api
    return name


API: dict[str, str] = {}


def objects(kind_name: str, namespace: str) -> list[dict]:
    """What exists on the runtime, read over plain HTTP (not through the code under test)."""
    import httpx

    from kubeflow_bridge.clients.kube import kind_named

    resp = httpx.get(API["url"] + kind_named(kind_name).collection_path(namespace), timeout=10)
    resp.raise_for_status()
    return list(resp.json()["items"])


def ctx(run_id: str = "manual__1") -> dict[str, Any]:
    return {"ti": FakeTI(run_id=run_id), "task_state_store": FakeStore()}


def job(**kwargs: Any) -> PyTorchJobOperator:
    base: dict[str, Any] = {
        "task_id": "task",
        "image": IMAGE,
        "command": [
            "python",
            "-c",
            "import time; time.sleep(1); print('epoch=1 train_loss=0.5 val_loss=0.4')",
        ],
        "poll_interval": 1,
        "timeout": 120,
    }
    return PyTorchJobOperator(**{**base, **kwargs})


async def run_trigger_async(trigger: KubeflowObjectTrigger) -> dict[str, Any]:
    """Run a trigger in this process, without its hold (it guards against the scheduler: none here)."""
    trigger.fire_not_before = None
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    return dict(events[0].payload)


def run_trigger(trigger: KubeflowObjectTrigger) -> dict[str, Any]:
    return asyncio.run(run_trigger_async(trigger))


def test_sync_job_runs_streams_log_and_fails_clearly(
    namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = job(deferrable=False, workers=1).execute(ctx())
    assert result["state"] == "succeeded"
    assert "epoch=1 train_loss=0.5" in capsys.readouterr().out
    with pytest.raises(KubeflowOperatorError, match="failed") as err:
        job(
            deferrable=False,
            restart_policy="Never",
            timeout=60,
            command=["python", "-c", "print('loss went nan at step 7'); raise SystemExit(3)"],
        ).execute(ctx("manual__2"))
    assert "failed replica: Master" in str(err.value) and "loss went nan at step 7" in str(err.value)


def test_own_timeout_ends_the_job_as_a_kill_would(namespace: str) -> None:
    """No orphan: the operator's timeout deletes the job (on_kill_action='delete') or says it is kept."""
    sleeper = ["python", "-c", "import time; time.sleep(300)"]
    with pytest.raises(KubeflowOperatorError, match=r"timeout.*stopped \(on_kill_action='delete'\)"):
        job(deferrable=False, timeout=3, command=sleeper).execute(ctx("manual__sync"))
    assert objects("PyTorchJob", namespace) == []
    context = ctx("manual__deferred")
    with pytest.raises(TaskDeferred) as deferred:
        job(timeout=2, command=sleeper).execute(context)
    event = run_trigger(deferred.value.trigger)
    assert event["status"] == "timeout"
    with pytest.raises(KubeflowOperatorError, match="stopped"):
        job(timeout=2, command=sleeper).execute_complete(context, event)
    assert objects("PyTorchJob", namespace) == []
    with pytest.raises(KubeflowOperatorError, match=r"left running \(on_kill_action='keep'\)"):
        job(deferrable=False, timeout=2, command=sleeper, on_kill_action="keep").execute(ctx("manual__keep"))
    assert len(objects("PyTorchJob", namespace)) == 1


def test_trigger_keeps_a_crash_looping_replicas_last_words(namespace: str) -> None:
    """On a cluster the operator deletes every pod when backoffLimit is reached: the trigger keeps the
    log it read when the replica restarted, and the task's error carries it."""
    crash = ["python", "-c", "import sys; print('CUDA out of memory at step 3', flush=True); sys.exit(1)"]
    context = ctx("manual__crashloop")
    op = job(command=crash, restart_policy="OnFailure", backoff_limit=2, poll_interval=0.5)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    event = run_trigger(deferred.value.trigger)
    assert event["status"] == "failed"
    assert any("CUDA out of memory at step 3" in text for text in event["last_words"].values()), event
    with pytest.raises(KubeflowOperatorError, match="CUDA out of memory at step 3"):
        op.execute_complete(context, event)


def test_retry_after_worker_crash_reattaches_and_restarted_trigger_finishes(namespace: str) -> None:
    context = ctx()
    with pytest.raises(TaskDeferred) as first:
        job().execute(context)
    # The worker is gone; the retry runs the operator again with the same task instance identity.
    with pytest.raises(TaskDeferred) as second:
        job().execute(context)
    found = objects("PyTorchJob", namespace)
    assert len(found) == 1 and found[0]["metadata"]["labels"][IDENTITY_LABEL]
    assert first.value.trigger.name == second.value.trigger.name
    # The triggerer restarts: the trigger is re-created from its serialized kwargs and finishes the wait.
    _, kwargs = second.value.trigger.serialize()
    event = run_trigger(KubeflowObjectTrigger(**json.loads(json.dumps(kwargs))))
    assert event["status"] == "succeeded"
    assert job().execute_complete(context, event)["state"] == "succeeded"


def test_wait_survives_api_faults_and_cut_watches(namespace: str, runtime: Runtime) -> None:
    context = ctx()
    with pytest.raises(TaskDeferred) as deferred:
        job(command=["python", "-c", "import time; time.sleep(3)"]).execute(context)
    runtime.faults(error_rate=0.3, watch_cut_after=0.5, watch_gone=1)
    try:
        event = run_trigger(deferred.value.trigger)
    finally:
        runtime.reset_faults()
    assert event["status"] == "succeeded"


def test_sync_wait_survives_api_faults_and_cut_watches(namespace: str, runtime: Runtime) -> None:
    op = job(deferrable=False, command=["python", "-c", "import time; time.sleep(3); print('done')"])
    runtime.faults(
        error_rate=0.3, watch_cut_after=0.5, watch_gone=1, seed=5
    )  # seeded: the same faults each run
    try:
        result = op.execute(ctx())
    finally:
        runtime.reset_faults()
    assert result["state"] == "succeeded"
    assert len(objects("PyTorchJob", namespace)) == 1


@pytest.mark.parametrize("rate", [0.15, 0.3])
def test_chaos_every_task_succeeds_once_under_faults(namespace: str, runtime: Runtime, rate: float) -> None:
    """Short chaos run: tasks (deferrable and sync) under ``rate`` of faults of every kind, creates whose
    answer is lost among them. Every task succeeds, each created exactly one job, nothing runs on."""
    import httpx

    third = rate / 3
    runtime.faults(
        lose_rate=third,
        error_rate=third,
        throttle_rate=third,
        retry_after=0,
        watch_cut_after=1.0,
        seed=int(rate * 100),
    )
    states = []
    try:
        for i in range(4):
            op = job(task_id=f"chaos-{i}", deferrable=i % 2 == 0, command=["python", "-c", "print('ok')"])
            context = {"ti": FakeTI(task_id=f"chaos-{i}"), "task_state_store": FakeStore()}
            try:
                states.append(op.execute(context)["state"])
            except TaskDeferred as deferred:
                event = run_trigger(deferred.trigger)
                states.append(op.execute_complete(context, event)["state"])
        injected = httpx.get(f"{runtime.api}/_admin/faults", timeout=10).json()["injected"]
    finally:
        runtime.reset_faults()
    assert states == ["succeeded"] * 4
    assert injected["lose"] > 0, injected  # creates and reads whose answer was lost did happen
    jobs = objects("PyTorchJob", namespace)
    tasks = sorted(j["metadata"]["annotations"]["kubeflow-bridge.io/task-id"] for j in jobs)
    assert tasks == [f"chaos-{i}" for i in range(4)]  # one job per task: no duplicate from a lost answer
    assert not [p for p in objects("Pod", namespace) if p["status"].get("phase") in ("Pending", "Running")]


def test_chaos_kfp_runs_start_once_when_answers_are_lost(
    namespace: str, runtime: Runtime, compiled_pipeline: str
) -> None:
    """Creates on the KFP API whose answers are lost: each task still starts exactly one run."""
    import httpx

    from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator

    runtime.faults(lose_rate=0.3, error_rate=0.1, path_pattern="^/apis/v2beta1/", seed=5)
    run_ids = []
    try:
        for i in range(4):
            op = KubeflowPipelineRunOperator(
                task_id=f"kfp-chaos-{i}",
                pipeline_package_path=compiled_pipeline,
                parameters={"a": i},
                experiment_name=f"chaos-{namespace}",
                deferrable=False,
                wait_for_completion=False,
            )
            result = op.execute({"ti": FakeTI(task_id=f"kfp-chaos-{i}"), "task_state_store": FakeStore()})
            run_ids.append(result["run_id"])
        injected = httpx.get(f"{runtime.api}/_admin/faults", timeout=10).json()["injected"]
    finally:
        runtime.reset_faults()
    assert injected["lose"] > 0, injected
    runs = httpx.get(f"{runtime.kfp}/apis/v2beta1/runs", params={"page_size": 1000}, timeout=10).json()[
        "runs"
    ]
    ours = [r for r in runs if r["run_id"] in set(run_ids) or r["display_name"].startswith("dag-kfp-chaos")]
    names = [r["display_name"] for r in ours]
    assert len(names) == len(set(names)) == 4, names  # one run per task
    assert {r["run_id"] for r in ours} == set(run_ids)


def test_deleted_job_is_cancelled_never_success(namespace: str) -> None:
    context = ctx()
    op = job(command=["python", "-c", "import time; time.sleep(30)"])
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    op.on_kill()  # on_kill_action='delete'
    event = run_trigger(deferred.value.trigger)
    assert event["status"] == "cancelled", event
    with pytest.raises(KubeflowOperatorError):
        op.execute_complete(context, event)


def test_user_kill_of_a_deferred_task_deletes_the_job_from_the_triggerer(namespace: str) -> None:
    op = job(command=["python", "-c", "import time; time.sleep(30)"])
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx())
    trigger = deferred.value.trigger
    assert trigger.on_kill_action == "delete"

    async def kill_while_waiting() -> None:
        waiting = asyncio.create_task(run_trigger_async(trigger))
        await asyncio.sleep(1)
        waiting.cancel()  # the triggerer cancels the trigger, then calls on_kill (Airflow 3.3+)
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await trigger.on_kill()

    asyncio.run(kill_while_waiting())
    assert objects("PyTorchJob", namespace) == []


def test_on_kill_keep_leaves_the_job(namespace: str) -> None:
    op = job(on_kill_action="keep", command=["python", "-c", "import time; time.sleep(2)"])
    with pytest.raises(TaskDeferred):
        op.execute(ctx())
    op.on_kill()
    assert len(objects("PyTorchJob", namespace)) == 1


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    EXECUTE_CASES,
    ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(EXECUTE_CASES)],
)
def test_bad_input_creates_nothing_on_the_runtime(
    namespace: str, cls: type, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**{"task_id": "t", **kwargs}).execute(ctx())
    for kind in ("PyTorchJob", "TrainJob", "Experiment", "InferenceService"):
        assert objects(kind, namespace) == []


# Against the runtime's pipeline ``add_pipeline(a: int, b: int = 2)`` (compiled below).
RUNTIME_KFP_CASES: list[tuple[dict[str, Any], str]] = [
    ({"parameters": {"a": 1, "c": 4}}, "c.*is not an input of the pipeline"),
    ({"parameters": {}}, "a.*is required"),
    ({"parameters": {"a": "three"}}, "parameters.a"),
    ({"parameters": {"a": 1, "b": "1.5"}}, "parameters.b"),
    ({"parameters": "not json"}, "parameters must be a mapping"),
    ({"pipeline_package_path": None, "pipeline_id": "0" * 32, "parameters": {"a": 1}}, "is not known to KFP"),
]


@pytest.mark.parametrize(("kwargs", "message"), RUNTIME_KFP_CASES)
def test_bad_kfp_input_starts_no_run_on_the_runtime(
    namespace: str, runtime: Runtime, compiled_pipeline: str, kwargs: dict[str, Any], message: str
) -> None:
    import httpx

    from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator

    def run_count() -> int:
        resp = httpx.get(f"{runtime.kfp}/apis/v2beta1/runs", params={"page_size": 1000}, timeout=10)
        resp.raise_for_status()
        return len(resp.json().get("runs") or [])

    before = run_count()
    with pytest.raises(ValueError, match=message):
        KubeflowPipelineRunOperator(
            task_id="run", **{"pipeline_package_path": compiled_pipeline, **kwargs}
        ).execute(ctx())
    assert run_count() == before


def test_sensor_waits_for_a_job_started_elsewhere(namespace: str) -> None:
    from kubeflow_bridge.sensors.training import PyTorchJobSensor

    submitted = job(wait_for_completion=False).execute(ctx())
    sensor = PyTorchJobSensor(
        task_id="s", name=submitted["name"], deferrable=False, poke_interval=0.5, timeout=60
    )
    with pytest.raises(TaskDeferred) as deferred:
        PyTorchJobSensor(task_id="s", name=submitted["name"], timeout=60).execute(ctx())
    assert run_trigger(deferred.value.trigger)["status"] == "succeeded"
    assert sensor.poke(ctx()) is True


DAG_FILE = """
import json
from datetime import datetime
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from kubeflow_bridge.operators.gate import ModelGateBranchOperator
from kubeflow_bridge.operators.training import PyTorchJobOperator

CMD = ["python", "-c", "print('epoch=1 train_loss=0.5 val_loss=0.4')"]
with DAG("kb_local", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    deferred = PyTorchJobOperator(task_id="train_deferred", image="kubeflow-bridge/trainer:latest", command=CMD,
                                  workers=1, deferrable=True, poll_interval=1, timeout=120)
    sync = PyTorchJobOperator(task_id="train_sync", image="kubeflow-bridge/trainer:latest", command=CMD,
                              deferrable=False, poll_interval=1, timeout=120)
    gate = ModelGateBranchOperator(
        task_id="gate", metric_value="{{ 0.9 if ti.xcom_pull('train_sync')['state'] == 'succeeded' else 0 }}",
        threshold=0.5, metric_name="f1", service_name="no-live-model", deploy_task_ids="deploy", skip_task_ids="skip")
    deferred >> sync >> gate >> [EmptyOperator(task_id="deploy"), EmptyOperator(task_id="skip")]
    # Fails before it creates anything: no link exists, and none is looked up.
    PyTorchJobOperator(task_id="bad_input", image="kubeflow-bridge/trainer:latest", command=CMD,
                       workers="{{ 'many' }}", deferrable=True)

if __name__ == "__main__":
    dr = dag.test()
    print("RESULT " + json.dumps({ti.task_id: str(ti.state) for ti in dr.get_task_instances()} | {"dag": str(dr.state)}))
"""


def test_dag_test_end_to_end_deferrable_and_sync(namespace: str, tmp_path: Path) -> None:
    states, log = dag_test_file(DAG_FILE, tmp_path / "airflow")
    assert states == {
        "train_deferred": "success",
        "train_sync": "success",
        "gate": "success",
        "deploy": "success",
        "skip": "skipped",
        "bad_input": "failed",
        "dag": "failed",
    }
    assert "[DAG TEST] Trigger completed" in log  # the deferrable task really deferred
    assert "workers must be an integer" in log and "XCom not found" not in log
    assert len(objects("PyTorchJob", namespace)) == 2


TRIAL = (
    "import sys\n"
    "args = dict(a.lstrip('-').split('=', 1) for a in sys.argv[1:] if '=' in a)\n"
    "lr, hidden = float(args['lr']), int(args['hidden'])\n"
    "print(f'epoch=0 val_loss={(lr - 0.005) ** 2 + hidden / 1000:.6f}', flush=True)\n"
)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_katib_experiment_returns_typed_best_parameters(namespace: str, deferrable: bool) -> None:
    from kubeflow_bridge.operators.katib import KatibExperimentOperator

    op = KatibExperimentOperator(
        task_id="tune",
        image="python:3.11",
        trial_command=["python", "-c", TRIAL],
        objective_metric="val_loss",
        search_space=[
            {"name": "lr", "type": "double", "min": "0.001", "max": "0.01"},
            {"name": "hidden", "type": "int", "min": "8", "max": "16"},
        ],
        parallel_trial_count=2,
        max_trial_count=2,
        deferrable=deferrable,
        poll_interval=1,
        timeout=240,
    )
    context = ctx()
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
        result = op.execute_complete(context, run_trigger(deferred.value.trigger))
    else:
        result = op.execute(context)
    assert result["trial_counts"]["trialsSucceeded"] == 2
    assert (
        isinstance(result["best_parameters"]["hidden"], int)
        and 8 <= result["best_parameters"]["hidden"] <= 16
    )
    assert isinstance(result["best_parameters"]["lr"], float)
    assert result["objective_metric"] == "val_loss" and result["objective_value"] is not None


PIPELINE_SOURCE = """
from kfp import compiler, dsl


@dsl.component(base_image="kubeflow-bridge/trainer:latest", install_kfp_package=False)
def add(a: int, b: int) -> int:
    return a + b


@dsl.pipeline(name="airflow-add")
def add_pipeline(a: int, b: int = 2) -> None:
    add(a=a, b=b).set_caching_options(False)


compiler.Compiler().compile(add_pipeline, __import__("sys").argv[1])
"""


@pytest.fixture(scope="module")
def compiled_pipeline(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A pipeline compiled with kfp in the trainer environment (the control plane has no kfp)."""
    folder = tmp_path_factory.mktemp("pipeline")
    (folder / "make.py").write_text(PIPELINE_SOURCE)
    subprocess.run(
        [str(TRAINER_PYTHON), str(folder / "make.py"), str(folder / "p.yaml")], check=True, timeout=120
    )
    return str(folder / "p.yaml")


def test_kfp_run_sync_and_deferrable_with_outputs(namespace: str, compiled_pipeline: str) -> None:
    from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator
    from kubeflow_bridge.triggers.kfp import KubeflowPipelineRunTrigger

    def op(**kwargs: Any) -> KubeflowPipelineRunOperator:
        return KubeflowPipelineRunOperator(
            task_id="run",
            pipeline_package_path=compiled_pipeline,
            experiment_name="airflow-tests",
            poll_interval=1,
            timeout=180,
            **kwargs,
        )

    from kubeflow_bridge.hooks.kubeflow import KubeflowHook

    assert KubeflowHook().test_connection()[0] is True
    result = op(parameters={"a": "40"}, deferrable=False).execute(ctx("sync"))
    assert result["state"] == "succeeded"
    assert 42 in [v for params in result["output_parameters"].values() for v in params.values()], result

    context = ctx("deferred")
    with pytest.raises(TaskDeferred) as deferred:
        op(parameters={"a": 1, "b": "1"}).execute(context)
    # a retry of the same task instance reattaches to the run instead of starting another
    with pytest.raises(TaskDeferred) as again:
        op(parameters={"a": 1, "b": "1"}).execute(context)
    assert again.value.trigger.run_id == deferred.value.trigger.run_id
    _, kwargs = deferred.value.trigger.serialize()

    async def wait() -> dict[str, Any]:
        events = [e async for e in KubeflowPipelineRunTrigger(**{**kwargs, "fire_not_before": None}).run()]
        assert len(events) == 1
        return dict(events[0].payload)

    event = asyncio.run(wait())
    assert event["status"] == "succeeded", event
    assert op(parameters={"a": 1}).execute_complete(context, event)["state"] == "succeeded"


SERVER = """
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
CODE = int(sys.argv[1])
class H(BaseHTTPRequestHandler):
    def _answer(self, code):
        self.send_response(code); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(b'{"predictions": [0.5], "version": "' + sys.argv[2].encode() + b'"}')
    def do_POST(self):  # predictions answer CODE (500 = a broken model)
        self.rfile.read(int(self.headers.get("Content-Length") or 0)); self._answer(CODE)
    def do_GET(self):  # health and readiness always answer
        self._answer(200)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def isvc(code: int, version: str) -> dict[str, Any]:
    container = {
        "name": "kserve-container",
        "image": "python:3.11",
        "command": ["python", "-c", SERVER, str(code), version],
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {},
        "spec": {"predictor": {"containers": [container]}},
    }


def test_kserve_deploy_canary_smoke_promote_rollback_and_gate(namespace: str) -> None:
    from kubeflow_bridge.operators.gate import ModelGateBranchOperator
    from kubeflow_bridge.operators.kserve import KServeDeployOperator

    def deploy(run: str, body: dict[str, Any], **kwargs: Any) -> Any:
        return KServeDeployOperator(
            task_id="deploy",
            name="anomaly",
            inference_service=body,
            poll_interval=1,
            timeout=90,
            deferrable=False,
            **kwargs,
        ).execute(ctx(run))

    # the first deploy defers: the trigger waits for generation 1 to be Ready
    first_op = KServeDeployOperator(
        task_id="deploy",
        name="anomaly",
        inference_service=isvc(200, "v1"),
        metrics={"f1": 0.8},
        poll_interval=1,
        timeout=90,
    )
    context = ctx("r1")
    with pytest.raises(TaskDeferred) as deferred:
        first_op.execute(context)
    assert deferred.value.trigger.min_generation == 1
    first = first_op.execute_complete(context, run_trigger(deferred.value.trigger))
    assert first["ready"] and first["url"] and first["generation"] == 1
    second = deploy(
        "r2",
        isvc(200, "v2"),
        canary_traffic_percent=20,
        smoke_payload={"instances": [[1.0]]},
        metrics={"f1": 0.9},
    )
    assert second["smoke_status"] == "ok" and second["promoted"] and second["generation"] == 3
    assert sum(t.get("percent", 0) for t in second["traffic"] if t.get("latestRevision")) == 100

    gate = ModelGateBranchOperator(
        task_id="gate",
        metric_value="0.85",
        threshold=0.5,
        metric_name="f1",
        service_name="anomaly",
        deploy_task_ids="deploy",
        skip_task_ids="skip",
    )
    assert gate.choose_branch(ctx()) == "skip"  # 0.85 does not beat the serving model's recorded 0.9

    with pytest.raises(KubeflowOperatorError, match="answered 500"):
        deploy("r3", isvc(500, "v3"), canary_traffic_percent=20, smoke_payload={"instances": [[1.0]]})
    (live,) = objects("InferenceService", namespace)
    assert (
        live["spec"]["predictor"]["canaryTrafficPercent"] == 0
    )  # rolled back: all traffic on the previous revision


def test_wait_survives_an_expired_token_rotated_in_the_kubeconfig(
    namespace: str, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    import yaml

    def mint(ttl: float) -> str:
        resp = httpx.post(
            f"{runtime.api}/_admin/tokens", json={"ttl": ttl}, headers=runtime.admin_headers(), timeout=10
        )
        resp.raise_for_status()
        return str(resp.json()["token"])

    short, long = mint(4), mint(3600)
    kubeconfig = yaml.safe_load(Path(runtime.env["KUBECONFIG"]).read_text())

    def write(token: str) -> None:
        kubeconfig["users"][0]["user"] = {"token": token}
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))

    write(short)
    k8s = json.loads(runtime.env["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
    k8s["extra"]["kube_config_path"] = str(tmp_path / "kubeconfig")
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(k8s))
    runtime.faults(auth=True, watch_cut_after=1.0)
    try:
        context = ctx()
        with pytest.raises(TaskDeferred) as deferred:
            job(command=["python", "-c", "import time; time.sleep(6)"], timeout=15).execute(context)

        async def wait_and_rotate() -> dict[str, Any]:
            waiting = asyncio.create_task(run_trigger_async(deferred.value.trigger))
            await asyncio.sleep(1.5)
            write(long)  # the token is rotated in the file, as a refreshed kubeconfig or projected token is
            return await waiting

        event = asyncio.run(wait_and_rotate())
    finally:
        runtime.reset_faults()
    assert event["status"] == "succeeded", event


def test_hook_clients_reload_a_rotated_token_after_a_401(
    namespace: str, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import httpx
    import yaml

    from kubeflow_bridge.clients.kube import PYTORCHJOB
    from kubeflow_bridge.hooks.kubeflow import KubeflowHook

    def mint(ttl: float) -> str:
        resp = httpx.post(
            f"{runtime.api}/_admin/tokens", json={"ttl": ttl}, headers=runtime.admin_headers(), timeout=10
        )
        resp.raise_for_status()
        return str(resp.json()["token"])

    kubeconfig = yaml.safe_load(Path(runtime.env["KUBECONFIG"]).read_text())

    def write(token: str) -> None:
        kubeconfig["users"][0]["user"] = {"token": token}
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))

    write(mint(3))
    k8s = json.loads(runtime.env["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
    k8s["extra"]["kube_config_path"] = str(tmp_path / "kubeconfig")
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(k8s))
    runtime.faults(auth=True)
    try:
        hook = KubeflowHook()
        sync_client = hook.get_object_client()
        assert sync_client.get(PYTORCHJOB, "absent", namespace=namespace) is None  # token still valid

        async def async_get() -> Any:
            async with KubeflowHook().async_object_client() as client:
                time.sleep(3.2)  # the token expires while the client holds it
                write(mint(3600))  # ... and is rotated in the kubeconfig
                return await client.get(PYTORCHJOB, "absent", namespace=namespace)

        assert asyncio.run(async_get()) is None  # 401 -> reload -> retried with the new token
        assert sync_client.get(PYTORCHJOB, "absent", namespace=namespace) is None  # same for the sync client
    finally:
        runtime.reset_faults()


def test_deferred_wait_streams_progress_and_the_masters_log_while_the_job_runs(
    namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import re
    from datetime import UTC, datetime

    script = "import time\nfor i in range(8):\n    print(f'tick {i}', flush=True); time.sleep(0.5)\n"
    op = job(command=["python", "-c", script], poll_interval=0.5)
    context = ctx()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert trigger.progress_interval == 0.5
    capsys.readouterr()
    event = run_trigger(trigger)
    finished = datetime.now(UTC)
    out = capsys.readouterr().out
    assert event["status"] == "succeeded" and event["streamed_log_lines"] >= 8
    # Airflow's log lines start with their own time: when each line reached the task log.
    ticks = [
        (datetime.fromisoformat(m.group(1).replace("Z", "+00:00")), m.group(2))
        for m in re.finditer(r"^(\S+Z) \[info\s*\] \[\S+-master-0\] tick (\d)", out, re.M)
    ]
    assert [n for _, n in ticks] == [str(i) for i in range(8)], out[-3000:]  # each line once, in order
    # Live, not after the fact: the first lines reached the log seconds before the wait ended.
    assert (finished - ticks[0][0]).total_seconds() > 1.5, ticks
    assert re.search(r"PyTorchJob \S+: Running; Master: 1 active", out)
    # The worker does not print the streamed log again.
    op.execute_complete(context, event)
    assert "tick 0" not in capsys.readouterr().out
