"""Fixtures for operator unit tests: an in-memory object client at the operator's ``object_client`` seam."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubeflow_bridge.clients.kfp import KfpClient
from kubeflow_bridge.clients.kube import CreateResult, IfExists, WaitOutcome
from kubeflow_bridge.clients.kube._common import not_found_outcome, outcome_of, resolve_conflict


class FakeObjectClient:
    """Speaks the Client API contract of ``KubeflowObjectClient`` over a dict, recording every call."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.logs: dict[str, str] = {}
        #: Called with the object on each wait; returns the status to write (simulates the controller).
        self.progress: Any = None
        self.generation = 0

    def _key(self, kind: Any, name: str, namespace: str) -> tuple[str, str, str]:
        return (kind.plural, namespace, name)

    def create(self, kind: Any, body: dict, *, namespace: str, if_exists: Any = "reattach") -> CreateResult:
        json.dumps(body)  # the body must be JSON-safe, as on the wire
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        key = self._key(kind, name, namespace)
        existing = self.objects.get(key)
        if existing is not None:
            # The real client's conflict rules (reattach to our own object, fail, replace ours only).
            if resolve_conflict(kind, body, existing, IfExists(if_exists), namespace):
                return CreateResult(copy.deepcopy(existing), False)
            del self.objects[key]
        obj = copy.deepcopy(body)
        obj["metadata"].update(namespace=namespace, generation=1, uid=f"uid-{len(self.calls)}")
        self.objects[key] = obj
        return CreateResult(copy.deepcopy(obj), True)

    def get(self, kind: Any, name: str, *, namespace: str) -> dict | None:
        self.calls.append(("get", name))
        obj = self.objects.get(self._key(kind, name, namespace))
        return copy.deepcopy(obj) if obj else None

    def patch(self, kind: Any, name: str, patch: dict, *, namespace: str) -> dict:
        self.calls.append(("patch", name))
        obj = self.objects[self._key(kind, name, namespace)]
        if "spec" in patch:
            spec = _merge(obj.get("spec", {}), patch["spec"])
            if spec != obj.get("spec"):  # as the API server: only a spec change bumps the generation
                obj["spec"] = spec
                obj["metadata"]["generation"] += 1
        if "metadata" in patch:
            obj["metadata"] = _merge(obj["metadata"], patch["metadata"])
        return copy.deepcopy(obj)

    def delete(self, kind: Any, name: str, *, namespace: str, propagation: str = "Foreground") -> bool:
        self.calls.append(("delete", name))
        return self.objects.pop(self._key(kind, name, namespace), None) is not None

    def cancel(self, kind: Any, name: str, *, namespace: str) -> None:
        self.calls.append(("cancel", name))
        self.objects.pop(self._key(kind, name, namespace), None)

    def wait(
        self, kind: Any, name: str, *, namespace: str, timeout: float, min_generation: int | None = None
    ) -> WaitOutcome:
        self.calls.append(("wait", name))
        key = self._key(kind, name, namespace)
        obj = self.objects.get(key)
        if obj is None:
            return not_found_outcome(kind, name, namespace)
        if self.progress is not None:
            obj["status"] = self.progress(obj)
        found = outcome_of(kind, copy.deepcopy(obj), min_generation)
        return found or WaitOutcome("timeout", "Timeout", "still running", copy.deepcopy(obj))

    def job_logs(
        self, kind: Any, name: str, *, namespace: str, role: str = "master", tail_lines: int | None = None
    ) -> dict[str, str]:
        return dict(self.logs)

    def creates(self) -> list[str]:
        return [name for op, name in self.calls if op == "create"]


def _merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def succeeded_pytorchjob(obj: dict) -> dict:
    return {
        "conditions": [
            {"type": "Created", "status": "True", "reason": "PyTorchJobCreated"},
            {"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded", "message": "done"},
        ],
        "replicaStatuses": {"Master": {"succeeded": 1}},
    }


def failed_pytorchjob(obj: dict) -> dict:
    return {
        "conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "boom"}],
        "replicaStatuses": {"Master": {"failed": 1}},
    }


class FakeStore:
    """The task_state_store surface the operators use (get/set)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = value


class FakeTI:
    def __init__(
        self, dag_id: str = "dag", task_id: str = "task", run_id: str = "manual__1", map_index: int = -1
    ) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = dag_id, task_id, run_id, map_index
        self.xcoms: dict[str, Any] = {}
        self.stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


@pytest.fixture
def kubeflow_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBEFLOW_DEFAULT",
        json.dumps(
            {
                "conn_type": "kubeflow",
                "host": "http://127.0.0.1:9",
                "extra": {
                    "namespace": "team-a",
                    "dashboard_url": "http://dash.example",
                    "gpus_available": False,
                },
            }
        ),
    )


@pytest.fixture(autouse=True)
def defer_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deferrable operators defer right after submitting (no wait on the worker first, no trigger hold),
    so these tests see each deferral; the tests of the wait and the hold set the delay themselves."""
    monkeypatch.setenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", "0")


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch, kubeflow_conn: None) -> FakeObjectClient:
    from kubeflow_bridge.operators._base import KubeflowObjectOperator

    client = FakeObjectClient()
    monkeypatch.setattr(KubeflowObjectOperator, "object_client", lambda self: client)
    return client


@pytest.fixture
def context() -> dict[str, Any]:
    return {"ti": FakeTI(), "task_state_store": FakeStore()}


PIPELINE_YAML = """\
pipelineInfo:
  name: anomaly-flow
root:
  inputDefinitions:
    parameters:
      epochs:
        parameterType: NUMBER_INTEGER
      lr:
        parameterType: NUMBER_DOUBLE
        defaultValue: 0.001
      dataset:
        parameterType: STRING
        defaultValue: synthetic
  dag:
    tasks: {}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.0
"""


class FakeKfpClient:
    """Speaks the Client API contract of ``KfpClient`` in memory, recording every call (the wait is the
    real client's, over the fake ``get_run``)."""

    wait_for_run = KfpClient.wait_for_run

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.runs: dict[str, dict] = {}
        self.pipelines: dict[str, list[str]] = {"p-1": ["v-1"]}
        self.next_state = "RUNNING"

    def get_or_create_experiment(self, display_name: str, *, namespace: str | None = None) -> dict:
        self.calls.append("get_or_create_experiment")
        return {"experiment_id": f"exp-{display_name}", "display_name": display_name}

    def list_pipeline_versions(self, pipeline_id: str) -> dict:
        self.calls.append("list_pipeline_versions")
        if pipeline_id not in self.pipelines:
            raise RuntimeError("404 pipeline not found")
        return {"pipeline_versions": [{"pipeline_version_id": v} for v in self.pipelines[pipeline_id]]}

    def list_runs(self, *, experiment_id: str | None = None, filter: str | None = None, **_: Any) -> dict:
        self.calls.append("list_runs")
        return {"runs": [r for r in self.runs.values() if r.get("experiment_id") == experiment_id]}

    def create_run(self, body: dict) -> dict:
        json.dumps(body)
        self.calls.append("create_run")
        run = {**body, "run_id": f"run-{len(self.runs) + 1}", "state": self.next_state}
        self.runs[run["run_id"]] = run
        return run

    def get_run(self, run_id: str) -> dict:
        self.calls.append("get_run")
        return self.runs[run_id]

    def terminate_run(self, run_id: str) -> None:
        self.calls.append("terminate_run")
        self.runs[run_id]["state"] = "CANCELING"


@pytest.fixture
def pipeline_yaml(tmp_path: Any) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE_YAML)
    return str(path)


@pytest.fixture
def fake_kfp(monkeypatch: pytest.MonkeyPatch, kubeflow_conn: None) -> FakeKfpClient:
    from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator

    client = FakeKfpClient()
    monkeypatch.setattr(KubeflowPipelineRunOperator, "kfp_client", lambda self: client)
    return client
