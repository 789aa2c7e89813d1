"""The catalogue of invalid inputs: each gets a message saying what to fix, and nothing is created."""

from __future__ import annotations

from typing import Any

import pytest

from kubeflow_bridge.operators.katib import KatibExperimentOperator
from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator
from kubeflow_bridge.operators.kserve import KServeDeployOperator
from kubeflow_bridge.operators.training import PyTorchJobOperator

from .conftest import FakeKfpClient, FakeObjectClient

IMAGE = "kubeflow-bridge/trainer:latest"
SPACE = [{"name": "lr", "type": "double", "min": "0.0001", "max": "0.01"}]
KATIB = {"task_id": "tune", "image": IMAGE, "objective_metric": "val_loss", "search_space": SPACE}
ISVC = {"task_id": "deploy", "name": "anomaly-vae", "image": IMAGE, "model_uri": "s3://models/vae"}

# (operator class, kwargs, message regex) -- errors raised when the task runs (after templating).
EXECUTE_CASES: list[tuple[type, dict[str, Any], str]] = [
    (PyTorchJobOperator, {"command": ["python"]}, "image is required"),
    (PyTorchJobOperator, {"image": IMAGE, "workers": -1}, "workers must be an integer >= 0"),
    (PyTorchJobOperator, {"image": IMAGE, "workers": "two"}, "workers must be an integer >= 0, not 'two'"),
    (PyTorchJobOperator, {"image": IMAGE, "workers": True}, "workers must be an integer"),
    (PyTorchJobOperator, {"image": IMAGE, "gpus": 1}, "cluster has no GPUs \\(gpus_available=false\\)"),
    (
        PyTorchJobOperator,
        {"image": IMAGE, "command": "python -m trainer"},
        "command must be a list of strings",
    ),
    (PyTorchJobOperator, {"image": IMAGE, "env": ["A=1"]}, "env must be a mapping"),
    (PyTorchJobOperator, {"image": IMAGE, "name": "Bad_Name"}, "not a valid DNS-1035 label"),
    (
        PyTorchJobOperator,
        {
            "pytorchjob": {
                "apiVersion": "kubeflow.org/v1",
                "kind": "PyTorchJob",
                "metadata": {},
                "spec": {
                    "pytorchReplicaSpecs": {
                        "Master": {
                            "replicas": 1,
                            "template": {"spec": {"containers": [{"name": "pytorch", "image": IMAGE}]}},
                        },
                        "Worker": {
                            "replicas": 0,
                            "template": {"spec": {"containers": [{"name": "pytorch", "image": IMAGE}]}},
                        },
                    }
                },
            }
        },
        "Worker",
    ),
    (
        PyTorchJobOperator,
        {
            "pytorchjob": {
                "apiVersion": "kubeflow.org/v1",
                "kind": "PyTorchJob",
                "metadata": {},
                "spec": {
                    "pytorchReplicaSpecs": {
                        "Master": {
                            "replicas": 2,
                            "template": {"spec": {"containers": [{"name": "pytorch", "image": IMAGE}]}},
                        }
                    }
                },
            }
        },
        "Master",
    ),
    (PyTorchJobOperator, {"pytorchjob": "kind: PyTorchJob"}, "pytorchjob must be a PyTorchJob manifest"),
    (KatibExperimentOperator, {**KATIB, "image": None}, "image is required"),
    (KatibExperimentOperator, {**KATIB, "objective_metric": ""}, "objective_metric is required"),
    (KatibExperimentOperator, {**KATIB, "search_space": []}, "search_space must be a non-empty list"),
    (KatibExperimentOperator, {**KATIB, "search_space": ["lr"]}, "each search_space entry must be a dict"),
    (
        KatibExperimentOperator,
        {**KATIB, "search_space": [{"name": "lr", "type": "double", "min": "0.1", "max": "0.01"}]},
        "lr|min|max",
    ),
    (
        KatibExperimentOperator,
        {**KATIB, "search_space": [{"name": "lr", "type": "float", "min": "0", "max": "1"}]},
        "float|parameterType",
    ),
    (
        KatibExperimentOperator,
        {**KATIB, "search_space": [{"name": "opt", "type": "categorical"}]},
        "opt|list",
    ),
    (
        KatibExperimentOperator,
        {**KATIB, "search_space": [{"name": "lr", "type": "double", "lo": 0}]},
        "unknown keys \\['lo'\\]",
    ),
    (KatibExperimentOperator, {**KATIB, "search_space": SPACE * 2}, "lr|duplicate"),
    (KatibExperimentOperator, {**KATIB, "algorithm": "simulated-annealing"}, "simulated-annealing|algorithm"),
    (KatibExperimentOperator, {**KATIB, "objective_type": "best"}, "best|objective"),
    (KatibExperimentOperator, {**KATIB, "max_trial_count": "0"}, "max_trial_count must be an integer >= 1"),
    (KatibExperimentOperator, {**KATIB, "goal": "low"}, "goal must be a number"),
    (
        KServeDeployOperator,
        {**ISVC, "canary_traffic_percent": 150},
        "canary_traffic_percent must be between 0 and 100",
    ),
    (
        KServeDeployOperator,
        {**ISVC, "canary_traffic_percent": "ten"},
        "canary_traffic_percent must be an integer",
    ),
    (KServeDeployOperator, {**ISVC, "storage_uri": "s3://m"}, "set exactly one of image"),
    (KServeDeployOperator, {**ISVC, "name": "Anomaly_VAE"}, "not a valid DNS-1035 label"),
    (KServeDeployOperator, {**ISVC, "model_uri": None}, "model_uri"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    EXECUTE_CASES,
    ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(EXECUTE_CASES)],
)
def test_invalid_input_fails_before_anything_is_created(
    fake_client: FakeObjectClient, context: dict, cls: type, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {"task_id": "t", **kwargs}
    with pytest.raises(ValueError, match=message):
        cls(deferrable=True, **kwargs).execute(context)
    assert fake_client.creates() == [] and fake_client.objects == {}
    assert not [c for c in fake_client.calls if c[0] == "patch"]


KFP_CASES: list[tuple[dict[str, Any], str]] = [
    ({"parameters": {"epochs": 3, "batch": 4}}, "batch.*is not an input of the pipeline"),
    ({"parameters": {}}, "epochs.*is required"),
    ({"parameters": {"epochs": "three"}}, "epochs"),
    ({"parameters": {"epochs": 3, "lr": "fast"}}, "lr"),
    ({"parameters": "not json"}, "parameters must be a mapping"),
    ({"parameters": ["epochs"]}, "parameters must be a mapping"),
    (
        {"pipeline_package_path": "/nonexistent/p.yaml", "parameters": {"epochs": 1}},
        "does not exist: compile the pipeline",
    ),
    (
        {"pipeline_package_path": None, "pipeline_id": "nope", "parameters": {}},
        "pipeline_id 'nope' is not known to KFP",
    ),
    (
        {"pipeline_package_path": None, "pipeline_id": "p-1", "pipeline_version_id": "v-9"},
        "v-9.*is not a version",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), KFP_CASES)
def test_invalid_kfp_input_starts_no_run(
    fake_kfp: FakeKfpClient, context: dict, pipeline_yaml: str, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"task_id": "run", "pipeline_package_path": pipeline_yaml, **kwargs}
    with pytest.raises(ValueError, match=message):
        KubeflowPipelineRunOperator(deferrable=True, **args).execute(context)
    assert "create_run" not in fake_kfp.calls


@pytest.mark.parametrize("text", ["root: [unclosed", "", "just: a mapping\n"])
def test_malformed_pipeline_yaml_starts_no_run(
    fake_kfp: FakeKfpClient, context: dict, tmp_path: Any, text: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"pipeline_package_path '{path}'"):
        KubeflowPipelineRunOperator(
            task_id="run", pipeline_package_path=str(path), parameters={"epochs": 1}
        ).execute(context)
    assert fake_kfp.calls == []


INIT_CASES: list[tuple[type, dict[str, Any], str]] = [
    (
        PyTorchJobOperator,
        {"image": IMAGE, "if_exists": "overwrite"},
        "if_exists must be one of reattach, fail, replace",
    ),
    (
        PyTorchJobOperator,
        {"image": IMAGE, "on_kill_action": "pause"},
        "on_kill_action must be one of delete, keep",
    ),
    (PyTorchJobOperator, {"image": IMAGE, "timeout": 0}, "timeout must be greater than 0"),
    (
        PyTorchJobOperator,
        {"image": IMAGE, "poll_interval": "soon"},
        "poll_interval must be a number of seconds",
    ),
    (
        KubeflowPipelineRunOperator,
        {},
        "set exactly one of pipeline_package_path, pipeline_func or pipeline_id",
    ),
    (
        KubeflowPipelineRunOperator,
        {"pipeline_package_path": "p.yaml", "pipeline_id": "x"},
        "set exactly one of",
    ),
    (
        KubeflowPipelineRunOperator,
        {"pipeline_func": "not callable"},
        "pipeline_func must be a @dsl.pipeline function",
    ),
    (
        KubeflowPipelineRunOperator,
        {"pipeline_package_path": "p.yaml", "pipeline_version_id": "v"},
        "pipeline_version_id needs pipeline_id",
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), INIT_CASES)
def test_invalid_arguments_fail_at_dag_parse(cls: type, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(task_id="t", **kwargs)


def test_pipeline_func_without_kfp_is_a_clear_error(fake_kfp: FakeKfpClient, context: dict) -> None:
    pytest.importorskip("airflow")
    try:
        import kfp  # noqa: F401

        pytest.skip("kfp is installed here; the error path is for workers without it")
    except ImportError:
        pass

    def pipeline() -> None: ...

    with pytest.raises(ValueError, match="pipeline_func needs the kfp SDK on the Airflow worker"):
        KubeflowPipelineRunOperator(task_id="run", pipeline_func=pipeline).execute(context)
    assert fake_kfp.calls == []


def test_missing_connection_creates_nothing(monkeypatch: pytest.MonkeyPatch, context: dict) -> None:
    from kubeflow_bridge.hooks.kubeflow import KubeflowConnectionError

    client = FakeObjectClient()
    monkeypatch.setattr(PyTorchJobOperator, "object_client", lambda self: client)
    with pytest.raises(KubeflowConnectionError, match="connection 'missing_conn' is not defined"):
        PyTorchJobOperator(task_id="t", image=IMAGE, kubeflow_conn_id="missing_conn").execute(context)
    assert client.calls == []
