from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import TaskDeferred

from kubeflow_bridge.operators._base import KubeflowOperatorError
from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator
from kubeflow_bridge.triggers.kfp import KubeflowPipelineRunTrigger
from kubeflow_bridge.triggers.kubeflow import FIRE_DELAY_SECONDS

from .conftest import FakeKfpClient


def test_rendered_strings_are_cast_and_run_id_pushed_before_waiting(
    fake_kfp: FakeKfpClient, context: dict, pipeline_yaml: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY")  # the default hold
    op = KubeflowPipelineRunOperator(
        task_id="run",
        pipeline_package_path=pipeline_yaml,
        parameters={"epochs": "3", "lr": "0.01"},
        timeout=60,
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    (run,) = fake_kfp.runs.values()
    assert run["runtime_config"]["parameters"] == {"epochs": 3, "lr": 0.01}
    assert run["experiment_id"] == "exp-Default"
    assert context["ti"].xcoms["run_id"] == run["run_id"]
    assert (
        context["ti"]
        .xcoms["_link_KubeflowPipelineRunLink"]
        .endswith(f"/_/pipeline/#/runs/details/{run['run_id']}")
    )
    trigger = deferred.value.trigger
    assert isinstance(trigger, KubeflowPipelineRunTrigger) and trigger.run_id == run["run_id"]
    # Held past the deferral so Airflow's scheduler sees the worker's exit first (FIRE_DELAY_SECONDS).
    assert trigger.fire_not_before is not None
    assert 0 < trigger.fire_not_before - time.time() <= FIRE_DELAY_SECONDS


def test_sync_run_returns_state_and_outputs(
    fake_kfp: FakeKfpClient, context: dict, pipeline_yaml: str
) -> None:
    fake_kfp.next_state = "SUCCEEDED"
    result = KubeflowPipelineRunOperator(
        task_id="run", pipeline_package_path=pipeline_yaml, parameters={"epochs": 1}, deferrable=False
    ).execute(context)
    assert result["state"] == "succeeded" and result["run_id"] == "run-1"


@pytest.mark.parametrize(
    ("state", "status"), [("FAILED", "failed"), ("CANCELED", "cancelled"), ("CANCELING", "cancelled")]
)
def test_sync_run_never_succeeds_when_failed_or_cancelled(
    fake_kfp: FakeKfpClient, context: dict, pipeline_yaml: str, state: str, status: str
) -> None:
    fake_kfp.next_state = state
    with pytest.raises(KubeflowOperatorError, match=f"KFP run run-1 {status}"):
        KubeflowPipelineRunOperator(
            task_id="run", pipeline_package_path=pipeline_yaml, parameters={"epochs": 1}, deferrable=False
        ).execute(context)


def test_retry_reattaches_to_the_running_run(
    fake_kfp: FakeKfpClient, context: dict, pipeline_yaml: str
) -> None:
    for _ in range(2):
        with pytest.raises(TaskDeferred):
            KubeflowPipelineRunOperator(
                task_id="run", pipeline_package_path=pipeline_yaml, parameters={"epochs": 1}
            ).execute(context)
    assert fake_kfp.calls.count("create_run") == 1


def test_on_kill_terminates_the_run(fake_kfp: FakeKfpClient, context: dict, pipeline_yaml: str) -> None:
    op = KubeflowPipelineRunOperator(
        task_id="run", pipeline_package_path=pipeline_yaml, parameters={"epochs": 1}
    )
    with pytest.raises(TaskDeferred):
        op.execute(context)
    op.on_kill()
    assert fake_kfp.runs["run-1"]["state"] == "CANCELING"


def test_a_bad_fire_delay_setting_fails_before_the_run_is_created(
    fake_kfp: FakeKfpClient, context: dict, pipeline_yaml: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.exceptions import AirflowConfigException

    op = KubeflowPipelineRunOperator(
        task_id="run", pipeline_package_path=pipeline_yaml, parameters={"epochs": 1}, timeout=60
    )
    monkeypatch.setenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", "-1")
    with pytest.raises(AirflowConfigException, match="trigger_fire_delay"):
        op.execute(context)
    assert fake_kfp.runs == {}
    monkeypatch.setenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", "0")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.trigger.fire_not_before <= time.time()
