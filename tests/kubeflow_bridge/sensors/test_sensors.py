from __future__ import annotations

import json
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from kubeflow_bridge.clients.kube import INFERENCESERVICE, PYTORCHJOB
from kubeflow_bridge.operators._base import KubeflowOperatorError
from kubeflow_bridge.sensors.base import KubeflowObjectSensor
from kubeflow_bridge.sensors.kserve import InferenceServiceSensor
from kubeflow_bridge.sensors.training import PyTorchJobSensor


class Store:
    def __init__(self, objects: dict[tuple[str, str], dict]) -> None:
        self.objects = objects

    def get(self, kind: Any, name: str, *, namespace: str) -> dict | None:
        return self.objects.get((kind.plural, name))


@pytest.fixture
def objects(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBEFLOW_DEFAULT", json.dumps({"conn_type": "kubeflow", "extra": {"namespace": "ns"}})
    )
    found: dict[tuple[str, str], dict] = {}
    monkeypatch.setattr(KubeflowObjectSensor, "object_client", lambda self: Store(found))
    return found


def job(cond: str | None) -> dict:
    conds = [{"type": cond, "status": "True", "reason": f"PyTorchJob{cond}", "message": ""}] if cond else []
    return {"kind": "PyTorchJob", "metadata": {"name": "j"}, "status": {"conditions": conds}}


def test_pytorchjob_sensor_pokes_until_succeeded(objects: dict) -> None:
    sensor = PyTorchJobSensor(task_id="s", name="j", deferrable=False)
    objects[(PYTORCHJOB.plural, "j")] = job("Running")
    assert sensor.poke({}) is False
    objects[(PYTORCHJOB.plural, "j")] = job("Succeeded")
    assert sensor.poke({}) is True


def test_pytorchjob_sensor_fails_fast_on_failure_and_absence(objects: dict) -> None:
    sensor = PyTorchJobSensor(task_id="s", name="j", deferrable=False)
    with pytest.raises(KubeflowOperatorError, match="does not exist"):
        sensor.poke({})
    objects[(PYTORCHJOB.plural, "j")] = job("Failed")
    with pytest.raises(KubeflowOperatorError, match="failed"):
        sensor.poke({})


def test_isvc_sensor_needs_the_current_generation_ready(objects: dict) -> None:
    isvc = {
        "kind": "InferenceService",
        "metadata": {"name": "m", "generation": 2},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    objects[(INFERENCESERVICE.plural, "m")] = isvc
    sensor = InferenceServiceSensor(task_id="s", name="m", deferrable=False)
    assert sensor.poke({}) is False
    isvc["status"]["observedGeneration"] = 2
    assert sensor.poke({}) is True


def test_deferrable_sensor_defers_when_not_done(objects: dict) -> None:
    objects[(PYTORCHJOB.plural, "j")] = job("Running")
    with pytest.raises(TaskDeferred) as deferred:
        PyTorchJobSensor(task_id="s", name="j", timeout=30).execute({})
    assert deferred.value.trigger.name == "j" and deferred.value.timeout is not None
    assert deferred.value.trigger.fire_not_before > time.time()  # held past the deferral
    with pytest.raises(KubeflowOperatorError, match="cancelled"):
        PyTorchJobSensor(task_id="s", name="j").execute_complete(
            {}, {"status": "cancelled", "reason": "", "message": ""}
        )
