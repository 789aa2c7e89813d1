from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from kubeflow_bridge.operators._base import KubeflowOperatorError
from kubeflow_bridge.operators.training import PyTorchJobOperator
from kubeflow_bridge.triggers.kubeflow import KubeflowObjectTrigger

from .conftest import FakeObjectClient, failed_pytorchjob, succeeded_pytorchjob


def make(**kwargs: Any) -> PyTorchJobOperator:
    base: dict[str, Any] = {
        "task_id": "train",
        "image": "kubeflow-bridge/trainer:latest",
        "command": ["python", "-m", "trainer", "train"],
    }
    base.update(kwargs)
    return PyTorchJobOperator(**base)


def test_sync_creates_waits_streams_logs_and_returns_outcome(
    fake_client: FakeObjectClient, context: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_client.progress = succeeded_pytorchjob
    fake_client.logs = {"x-master-0": "epoch=1 train_loss=0.5 val_loss=0.4\n"}
    op = make(deferrable=False, workers=1, env={"A": "1"})
    result = op.execute(context)
    assert result["state"] == "succeeded" and result["replica_statuses"] == {"Master": {"succeeded": 1}}
    (obj,) = fake_client.objects.values()
    assert obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeflow-bridge"
    assert obj["metadata"]["annotations"]["kubeflow-bridge.io/task-id"] == "task"
    assert context["task_state_store"].data["kubeflow_object"] == f"team-a/{obj['metadata']['name']}"
    assert "epoch=1 train_loss=0.5" in capsys.readouterr().out
    assert context["ti"].xcoms["_link_PyTorchJobLink"].startswith("http://dash.example/")


def test_sync_failure_raises_with_reason(fake_client: FakeObjectClient, context: dict) -> None:
    fake_client.progress = failed_pytorchjob
    fake_client.logs = {"x-master-0": "loading\nTraceback: CUDA out of memory\n"}
    with pytest.raises(
        KubeflowOperatorError, match=r"PyTorchJob team-a/.* failed: PyTorchJobFailed boom"
    ) as err:
        make(deferrable=False).execute(context)
    assert "failed replica: Master" in str(err.value) and "CUDA out of memory" in str(err.value)


def test_sync_object_deleted_mid_wait_is_cancelled_never_success(
    fake_client: FakeObjectClient, context: dict
) -> None:
    def vanish(obj: dict) -> dict:
        fake_client.objects.clear()
        return {}

    fake_client.progress = vanish
    with pytest.raises(KubeflowOperatorError, match="cancelled"):
        make(deferrable=False).execute(context)


def test_deferrable_submits_then_defers_with_timeout(fake_client: FakeObjectClient, context: dict) -> None:
    op = make(deferrable=True, timeout=120)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, KubeflowObjectTrigger)
    assert trigger.kind == "PyTorchJob" and trigger.namespace == "team-a"
    assert deferred.value.timeout is not None and deferred.value.timeout.total_seconds() >= 120
    assert fake_client.creates() == [trigger.name]
    assert not [c for c in fake_client.calls if c[0] == "wait"], "the worker must not wait in deferrable mode"
    # Bounded by default: a crash-looping replica fails the job instead of restarting until the timeout.
    (job,) = fake_client.objects.values()
    assert job["spec"]["runPolicy"]["backoffLimit"] == 3


def test_execute_complete_success_reads_result_and_logs(
    fake_client: FakeObjectClient, context: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    op = make(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    name = deferred.value.trigger.name
    obj = next(iter(fake_client.objects.values()))
    obj["status"] = succeeded_pytorchjob(obj)
    fake_client.logs = {f"{name}-master-0": "final line\n"}
    event = {
        "status": "succeeded",
        "reason": "PyTorchJobSucceeded",
        "message": "",
        "name": name,
        "namespace": "team-a",
    }
    assert op.execute_complete(context, event)["state"] == "succeeded"
    assert "final line" in capsys.readouterr().out


@pytest.mark.parametrize("status", ["failed", "cancelled", "timeout", "error", "bogus"])
def test_execute_complete_raises_for_every_non_success(
    fake_client: FakeObjectClient, context: dict, status: str
) -> None:
    op = make(deferrable=True)
    event = {"status": status, "reason": "R", "message": "M", "name": "n", "namespace": "team-a"}
    with pytest.raises(KubeflowOperatorError, match=f"PyTorchJob team-a/n {status}"):
        op.execute_complete(context, event)


def test_execute_complete_without_event_raises(fake_client: FakeObjectClient, context: dict) -> None:
    with pytest.raises(KubeflowOperatorError, match="no usable event"):
        make().execute_complete(context, None)


def test_retry_after_worker_crash_reattaches_one_object(fake_client: FakeObjectClient, context: dict) -> None:
    with pytest.raises(TaskDeferred):
        make(deferrable=True).execute(context)
    # The worker died; the retry (same identity, same state store) must not create a second object.
    with pytest.raises(TaskDeferred) as again:
        make(deferrable=True).execute(context)
    assert len(fake_client.objects) == 1
    assert fake_client.creates() == [again.value.trigger.name]


def test_retry_after_finished_success_returns_result_without_waiting(
    fake_client: FakeObjectClient, context: dict
) -> None:
    with pytest.raises(TaskDeferred):
        make(deferrable=True).execute(context)
    obj = next(iter(fake_client.objects.values()))
    obj["status"] = succeeded_pytorchjob(obj)
    result = make(deferrable=True).execute(context)
    assert result["state"] == "succeeded"
    assert len(fake_client.creates()) == 1


def test_sync_retry_after_crash_reattaches_via_resumable_mixin(
    fake_client: FakeObjectClient, context: dict
) -> None:
    calls = {"n": 0}

    def crash_then_succeed(obj: dict) -> dict:
        calls["n"] += 1
        if calls["n"] == 1:
            raise SystemExit("worker died")
        return succeeded_pytorchjob(obj)

    fake_client.progress = crash_then_succeed
    with pytest.raises(SystemExit):
        make(deferrable=False).execute(context)
    result = make(deferrable=False).execute(context)
    assert result["state"] == "succeeded"
    assert len(fake_client.creates()) == 1 and len(fake_client.objects) == 1


def test_retry_after_real_failure_starts_a_new_object(fake_client: FakeObjectClient, context: dict) -> None:
    fake_client.progress = failed_pytorchjob
    with pytest.raises(KubeflowOperatorError):
        make(deferrable=False).execute(context)
    first_uid = next(iter(fake_client.objects.values()))["metadata"]["uid"]
    fake_client.progress = succeeded_pytorchjob
    assert make(deferrable=False).execute(context)["state"] == "succeeded"
    (obj,) = fake_client.objects.values()
    assert obj["metadata"]["uid"] != first_uid


def test_wait_for_completion_false_returns_at_once(fake_client: FakeObjectClient, context: dict) -> None:
    result = make(wait_for_completion=False).execute(context)
    assert result["state"] == "submitted" and result["namespace"] == "team-a"
    assert not [c for c in fake_client.calls if c[0] == "wait"]


@pytest.mark.parametrize(("action", "remaining"), [("delete", 0), ("keep", 1)])
def test_on_kill_deletes_or_keeps(
    fake_client: FakeObjectClient, context: dict, action: str, remaining: int
) -> None:
    op = make(deferrable=True, on_kill_action=action)
    with pytest.raises(TaskDeferred):
        op.execute(context)
    op.on_kill()
    assert len(fake_client.objects) == remaining


def test_mapped_tasks_get_distinct_names(fake_client: FakeObjectClient) -> None:
    from .conftest import FakeStore, FakeTI

    for index in (0, 1):
        ctx = {"ti": FakeTI(map_index=index), "task_state_store": FakeStore()}
        make(wait_for_completion=False).execute(ctx)
    assert len(fake_client.objects) == 2


def test_if_exists_fail_refuses_an_existing_object(fake_client: FakeObjectClient, context: dict) -> None:
    make(wait_for_completion=False).execute(context)
    with pytest.raises(RuntimeError, match="already exists"):
        make(wait_for_completion=False, if_exists="fail").execute(context)


@pytest.mark.parametrize(("setting", "expected"), [("false", False), ("true", True)])
def test_deferrable_default_honours_operators_default_deferrable(
    monkeypatch: pytest.MonkeyPatch, setting: str, expected: bool
) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)
    assert make().deferrable is expected
    assert make(deferrable=not expected).deferrable is (not expected)


def test_deferrable_by_default_when_the_deployment_does_not_set_it(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__OPERATORS__")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW_CONFIG=str(tmp_path / "airflow.cfg"))
    code = (
        "from airflow.sdk.configuration import conf\n"
        "from kubeflow_bridge.operators._base import default_deferrable\n"
        "print(conf.getboolean('operators', 'default_deferrable'), default_deferrable())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "True"]  # Airflow's default says False; ours defers
