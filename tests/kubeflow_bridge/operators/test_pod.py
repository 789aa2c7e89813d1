"""``TrainerPodOperator``: trainer steps as pods on the local runtime, run by ``dag.test()``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeflow_bridge.operators.pod import TrainerPodOperator, is_unreachable

from .local_runtime import Runtime, dag_test_file, local_runtime

DAG_FILE = """
import json, os, sys
from datetime import datetime, timedelta
from airflow.sdk import DAG, task
from kubeflow_bridge.operators.pod import TrainerPodOperator

OUT = os.environ["KB_TEST_OUT"]
with DAG("kb_pod", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    ingest = TrainerPodOperator(
        task_id="ingest", namespace="{{ params.ns }}", params={"ns": os.environ["KB_TEST_NS"]},
        arguments=["ingest", "--source", "synthetic", "--rows", "{{ 10000 + 2000 }}", "--seed", "3",
                   "--out", OUT + "/raw"])
    bad = TrainerPodOperator(task_id="bad_flag", namespace=os.environ["KB_TEST_NS"],
                             arguments=["ingest", "--source", "synthetic", "--rows", "5", "--out", OUT + "/bad"])
    # Its timeout kills it: Airflow calls on_kill, which must stop the pod, not leave it running.
    slow = TrainerPodOperator(task_id="slow", namespace=os.environ["KB_TEST_NS"],
                              execution_timeout=timedelta(seconds=6),
                              arguments=["ingest", "--source", "synthetic", "--rows", "100000000",
                                         "--out", OUT + "/slow"])

    @task
    def record(summary: dict) -> None:
        with open(OUT + "/summary.json", "w") as f:
            json.dump(summary, f)

    record(ingest.output)

if __name__ == "__main__":
    dr = dag.test()
    print("RESULT " + json.dumps({ti.task_id: str(ti.state) for ti in dr.get_task_instances()}))
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with local_runtime(tmp_path_factory.mktemp("kb-pod") / "state") as rt:
        yield rt


@pytest.mark.e2e
def test_trainer_steps_run_as_pods_and_return_the_summary(runtime: Runtime, tmp_path: Path) -> None:
    import httpx

    namespace = f"pod-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{runtime.api}/api/v1/namespaces", json={"metadata": {"name": namespace}}, timeout=10
    ).raise_for_status()
    out = tmp_path / "out"
    out.mkdir()
    env = {**runtime.env, "KB_TEST_OUT": str(out), "KB_TEST_NS": namespace}
    states, log = dag_test_file(DAG_FILE, tmp_path / "airflow", env)
    assert states == {"ingest": "success", "record": "success", "bad_flag": "failed", "slow": "failed"}, log[
        -4000:
    ]
    assert "cannot be called outside of the Task Runner" not in log  # run as the task runner runs it

    # The trainer's summary came back as the XCom: the step, its own timing, its output URI.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == "ingest" and summary["compute_seconds"] > 0
    assert summary["outputs"] == {"dataset": str(out / "raw")}
    assert summary["metrics"]["rows"] == 12000 and summary["f_score"] is None  # templated --rows rendered
    assert (out / "raw" / "_SUCCESS").exists()
    # A bad flag fails the task with the trainer's own one-line reason, and writes nothing.
    assert "rows must be in [1000, 100000000]; got 5" in log
    assert not (out / "bad").exists()
    # The pods are deleted when they finish, and the timed-out one when it is killed: no orphan runs on.
    pods = httpx.get(f"{runtime.api}/api/v1/namespaces/{namespace}/pods", timeout=10).json()["items"]
    assert pods == [], [p["metadata"]["name"] for p in pods]
    assert not (out / "slow" / "_SUCCESS").exists()


def test_arguments_that_do_not_render_to_a_list_are_refused_before_any_pod() -> None:
    for arguments in ("ingest --rows 5", []):
        op = TrainerPodOperator(task_id="x", arguments=arguments)
        with pytest.raises(ValueError, match="non-empty list"):
            op.execute({})  # type: ignore[arg-type]


def test_unreachable_api_is_recognised_through_the_exception_chain() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("HTTPConnectionPool(host='127.0.0.1', port=1): failed") from inner
    except RuntimeError as exc:
        assert is_unreachable(exc) is True
    assert is_unreachable(ValueError("bad argument")) is False


@pytest.mark.e2e
def test_on_kill_deletes_the_running_pod(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A user's kill while the step runs: on_kill stops the pod now (the task process is about to exit)."""
    import threading
    import time

    import httpx
    from airflow.sdk import DAG

    from .conftest import FakeTI

    for key, value in runtime.env.items():
        monkeypatch.setenv(key, value)
    namespace = f"kill-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{runtime.api}/api/v1/namespaces", json={"metadata": {"name": namespace}}, timeout=10
    ).raise_for_status()
    op = TrainerPodOperator(
        task_id="slow",
        namespace=namespace,
        arguments=["ingest", "--source", "synthetic", "--rows", "100000000", "--out", str(tmp_path / "slow")],
    )
    ti = FakeTI(dag_id="kb_kill", task_id="slow")
    ti.try_number = 1  # type: ignore[attr-defined]
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            context = {
                "ti": ti,
                "task_instance": ti,
                "run_id": ti.run_id,
                "dag": DAG("kb_kill", schedule=None),
            }
            op.execute(context)  # type: ignore[arg-type]
            outcome.append(None)
        except BaseException as exc:  # the kill makes the wait fail; what matters is the pod
            outcome.append(exc)

    def pods() -> list[dict]:
        url = f"{runtime.api}/api/v1/namespaces/{namespace}/pods"
        return [
            p
            for p in httpx.get(url, timeout=10).json()["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while not any(p.get("status", {}).get("phase") == "Running" for p in pods()):
        assert time.monotonic() < deadline and worker.is_alive(), outcome
        time.sleep(0.3)
    op.on_kill()
    deadline = time.monotonic() + 15
    while pods():
        assert time.monotonic() < deadline, "on_kill left the pod running"
        time.sleep(0.3)
    worker.join(timeout=60)
    assert not (tmp_path / "slow" / "_SUCCESS").exists()
