"""The catalogue of invalid inputs: each gets a message saying what to fix, and nothing is created."""

from __future__ import annotations

from typing import Any

import pytest

from kubeflow_bridge.operators.katib import KatibExperimentOperator
from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator
from kubeflow_bridge.operators.kserve import KServeDeployOperator
from kubeflow_bridge.operators.training import PyTorchJobOperator, TrainJobOperator

from .conftest import FakeKfpClient, FakeObjectClient

IMAGE = "kubeflow-bridge/trainer:latest"
SPACE = [{"name": "lr", "type": "double", "min": "0.0001", "max": "0.01"}]
KATIB = {"task_id": "tune", "image": IMAGE, "objective_metric": "val_loss", "search_space": SPACE}
ISVC = {"task_id": "deploy", "name": "anomaly-vae", "image": IMAGE, "model_uri": "s3://models/vae"}


def _space(**changes: Any) -> dict[str, Any]:
    """A valid search-space entry with ``changes`` (None removes a key)."""
    entry = {"name": "lr", "type": "double", "min": "0.0001", "max": "0.01", **changes}
    return {k: v for k, v in entry.items() if v is not None or k == "name"}


def _job(
    *, labels: dict[str, str] | None = None, container_name: str = "pytorch", image: str = IMAGE
) -> dict[str, Any]:
    """A valid PyTorchJob manifest but for the given labels, container name or image."""
    container = {"name": container_name, "image": image}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"labels": labels or {}},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "template": {"spec": {"containers": [container]}}}
            }
        },
    }


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
    (KatibExperimentOperator, {**KATIB, "goal": "low"}, "goal must be a finite number"),
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
    # Numbers, names, images and env as the real API and the runtimes would refuse them.
    (PyTorchJobOperator, {"image": IMAGE, "cpu": "-1"}, "must be greater than or equal to 0"),
    (PyTorchJobOperator, {"image": IMAGE, "memory": "lots"}, "'lots' is not a quantity"),
    (PyTorchJobOperator, {"image": IMAGE, "cpu": "1 core"}, "is not a quantity"),
    (PyTorchJobOperator, {"image": IMAGE, "nproc_per_node": "many"}, "nproc_per_node must be 'auto'"),
    (PyTorchJobOperator, {"image": IMAGE, "nproc_per_node": 0}, "nproc_per_node must be 'auto'"),
    (PyTorchJobOperator, {"image": IMAGE, "env": {"A": None}}, r"env\['A'\] is None"),
    (PyTorchJobOperator, {"image": IMAGE, "env": {"bad name": "1"}}, "not a valid environment variable"),
    (PyTorchJobOperator, {"image": IMAGE, "env": {"1ST": "x"}}, "not a valid environment variable"),
    (PyTorchJobOperator, {"image": IMAGE, "command": []}, "command is an empty list"),
    (PyTorchJobOperator, {"image": IMAGE, "args": []}, "args is an empty list"),
    (PyTorchJobOperator, {"image": IMAGE, "command": ["python", None]}, "command must be a list of strings"),
    (PyTorchJobOperator, {"image": "my image:latest"}, "not a valid image reference"),
    (PyTorchJobOperator, {"image": "imäge:latest"}, "not a valid image reference"),
    (PyTorchJobOperator, {"image": "Trainer:latest"}, "not a valid image reference"),
    (PyTorchJobOperator, {"image": "trainer:"}, "not a valid image reference"),
    (PyTorchJobOperator, {"image": " trainer"}, "not a valid image reference"),
    (PyTorchJobOperator, {"image": IMAGE, "backoff_limit": -1}, "backoff_limit must be an integer >= 0"),
    (PyTorchJobOperator, {"image": IMAGE, "clean_pod_policy": "Some"}, "'Some' is not supported"),
    (PyTorchJobOperator, {"image": IMAGE, "restart_policy": "Sometimes"}, "'Sometimes' is not supported"),
    (PyTorchJobOperator, {"image": IMAGE, "namespace": "Bad_NS"}, "namespace: 'Bad_NS' is not a valid"),
    (PyTorchJobOperator, {"image": IMAGE, "namespace": "a" * 64}, "namespace: .* is not a valid"),
    (PyTorchJobOperator, {"image": IMAGE, "name": "a" * 64}, "no more than 63 characters"),
    (PyTorchJobOperator, {"image": IMAGE, "name": "9lives"}, "not a valid DNS-1035 label"),
    (PyTorchJobOperator, {"image": IMAGE, "gpus": -1}, "gpus must be an integer >= 0"),
    (PyTorchJobOperator, {"image": IMAGE, "gpus": "1.5"}, "gpus must be an integer >= 0"),
    (PyTorchJobOperator, {"image": IMAGE, "workers": 1.5}, "workers must be an integer >= 0"),
    # Kubeflow Trainer v2
    (TrainJobOperator, {"runtime": "no-such-runtime"}, "ClusterTrainingRuntime 'no-such-runtime' not found"),
    (TrainJobOperator, {"runtime_kind": "TrainingRuntime"}, "TrainingRuntime 'torch-distributed' not found"),
    (TrainJobOperator, {"runtime_kind": "Deployment"}, "runtimeRef.kind"),
    (TrainJobOperator, {"num_nodes": 0}, "num_nodes must be an integer >= 1"),
    (TrainJobOperator, {"num_nodes": "two"}, "num_nodes must be an integer >= 1"),
    (TrainJobOperator, {"num_proc_per_node": 0}, "num_proc_per_node must be an integer >= 1"),
    (TrainJobOperator, {"gpus": 1}, "cluster has no GPUs"),
    (TrainJobOperator, {"env": {"PET_NNODES": "4"}}, "must not have reserved envs"),
    (TrainJobOperator, {"env": {"A": None}}, r"env\['A'\] is None"),
    (TrainJobOperator, {"image": "my image:latest"}, "not a valid image reference"),
    (TrainJobOperator, {"command": []}, "command is an empty list"),
    (TrainJobOperator, {"cpu": "-1"}, "must be greater than or equal to 0"),
    (TrainJobOperator, {"name": "a" * 64}, "no more than 63 characters"),
    (TrainJobOperator, {"trainjob": "kind: TrainJob"}, "trainjob must be a TrainJob manifest"),
    (PyTorchJobOperator, {"image": IMAGE, "env": "A=1"}, "env must be a mapping"),
    (PyTorchJobOperator, {"pytorchjob": {"kind": "PyTorchJob"}}, "apiVersion|spec"),
    (PyTorchJobOperator, {"pytorchjob": _job(labels={"bad key!": "x"})}, "not a valid label key"),
    (PyTorchJobOperator, {"pytorchjob": _job(labels={"team": "a b"})}, "not a valid label value"),
    (PyTorchJobOperator, {"pytorchjob": _job(container_name="Bad_Container")}, "not a valid container name"),
    (PyTorchJobOperator, {"pytorchjob": _job(container_name="../../x")}, "not a valid container name"),
    (PyTorchJobOperator, {"pytorchjob": _job(image="bad image")}, "not a valid image reference"),
    (KatibExperimentOperator, {**KATIB, "search_space": [_space(min="nan")]}, "'nan' is not a valid double"),
    (KatibExperimentOperator, {**KATIB, "search_space": [_space(max="inf")]}, "'inf' is not a valid double"),
    (KatibExperimentOperator, {**KATIB, "search_space": [_space(min="-inf")]}, "'-inf' is not a valid"),
    (KatibExperimentOperator, {**KATIB, "search_space": [_space(name="l r")]}, "'name' must be a parameter"),
    (KatibExperimentOperator, {**KATIB, "search_space": [_space(name=None)]}, "'name' must be a parameter"),
    (KatibExperimentOperator, {**KATIB, "search_space": [_space(name="")]}, "'name' must be a parameter"),
    (KatibExperimentOperator, {**KATIB, "search_space": [_space(name="--lr")]}, "'name' must be a parameter"),
    (
        KatibExperimentOperator,
        {**KATIB, "search_space": [{"name": "n", "type": "int", "min": "1.5", "max": "4"}]},
        "'1.5' is not a valid int",
    ),
    (
        KatibExperimentOperator,
        {**KATIB, "search_space": [{"name": "opt", "type": "discrete", "values": ["a"]}]},
        "not a number",
    ),
    (
        KatibExperimentOperator,
        {**KATIB, "search_space": [{"name": "opt", "type": "categorical", "values": ["a", "a"]}]},
        "duplicate",
    ),
    (
        KatibExperimentOperator,
        {**KATIB, "search_space": [_space(min="0", distribution="logUniform")]},
        "must be > 0 for distribution logUniform",
    ),
    (KatibExperimentOperator, {**KATIB, "search_space": [_space(distribution="zipf")]}, "'zipf' is not"),
    (KatibExperimentOperator, {**KATIB, "additional_metrics": "f1"}, "additional_metrics must be a list"),
    (KatibExperimentOperator, {**KATIB, "additional_metrics": [1]}, "additional_metrics must be a list"),
    (KatibExperimentOperator, {**KATIB, "goal": "nan"}, "goal must be a finite number"),
    (KatibExperimentOperator, {**KATIB, "goal": float("inf")}, "goal must be a finite number"),
    (
        KatibExperimentOperator,
        {**KATIB, "parallel_trial_count": 0},
        "parallel_trial_count must be an integer",
    ),
    (KatibExperimentOperator, {**KATIB, "max_trial_count": -3}, "max_trial_count must be an integer >= 1"),
    (KatibExperimentOperator, {**KATIB, "max_failed_trial_count": -1}, "max_failed_trial_count must be"),
    (KatibExperimentOperator, {**KATIB, "trial_env": {"A": None}}, r"env\['A'\] is None"),
    (KatibExperimentOperator, {**KATIB, "trial_kind": "Deployment"}, "Deployment"),
    (KatibExperimentOperator, {**KATIB, "early_stopping": "sometimes"}, "sometimes"),
    (KatibExperimentOperator, {**KATIB, "image": "bad image"}, "not a valid image reference"),
    (KatibExperimentOperator, {**KATIB, "trial_command": []}, "trial_command is an empty list"),
    (KatibExperimentOperator, {**KATIB, "namespace": "Team A"}, "namespace: 'Team A' is not a valid"),
    (
        KatibExperimentOperator,
        {**KATIB, "experiment": "kind: Experiment"},
        "experiment must be an Experiment",
    ),
    (KServeDeployOperator, {**ISVC, "model_uri": "not a uri at all"}, "is not a URI or an absolute path"),
    (KServeDeployOperator, {**ISVC, "model_uri": "models/vae.pt"}, "is not a URI or an absolute path"),
    (KServeDeployOperator, {**ISVC, "model_uri": "s3://"}, "must name a bucket or path"),
    (
        KServeDeployOperator,
        {**ISVC, "model_uri": "ftp://host/m"},
        "must name a bucket or path after a supported",
    ),
    (KServeDeployOperator, {**ISVC, "model_uri": ""}, "model_uri is required"),
    (
        KServeDeployOperator,
        {**ISVC, "canary_traffic_percent": -5},
        "canary_traffic_percent must be an integer",
    ),
    (KServeDeployOperator, {**ISVC, "model_name": "Bad Name"}, "model_name 'Bad Name' must be letters"),
    (KServeDeployOperator, {**ISVC, "model_name": "a/b"}, "model_name 'a/b' must be letters"),
    (KServeDeployOperator, {**ISVC, "image": "bad image"}, "not a valid image reference"),
    (KServeDeployOperator, {**ISVC, "name": "a" * 46}, "no more than 45 characters|63"),
    (KServeDeployOperator, {**ISVC, "namespace": "-ns"}, "namespace: '-ns' is not a valid"),
    (
        KServeDeployOperator,
        {**ISVC, "inference_service": "kind: InferenceService"},
        "must be an InferenceService",
    ),
    (
        KServeDeployOperator,
        {"task_id": "deploy", "name": "anomaly-vae", "storage_uri": "gs://"},
        "must name a bucket or path",
    ),
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
    ({"parameters": {"epochs": 10**30}}, "between -2\\*\\*53 and 2\\*\\*53"),
    ({"parameters": {"epochs": 1.5}}, "must be an integer"),
    ({"parameters": {"epochs": True}}, "must be an integer"),
    ({"parameters": {"epochs": 1, "lr": "nan"}}, "must be a finite number"),
    ({"parameters": {"epochs": 1, "lr": float("inf")}}, "must be a finite number"),
    ({"parameters": {"epochs": 1, "dataset": 5}}, "must be a string"),
    (
        {"parameters": {"epochs": 1}, "run_name": "r" * 5000},
        "run_name must be a non-empty string of at most 255",
    ),
    ({"parameters": {"epochs": 1}, "experiment_name": "e" * 10000}, "experiment_name must be .* at most 128"),
    ({"parameters": {"epochs": 1}, "experiment_name": "  "}, "experiment_name must be a non-empty string"),
    ({"parameters": {"epochs": 1}, "namespace": "Team_A"}, "namespace"),
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
    (PyTorchJobOperator, {"image": IMAGE, "timeout": -5}, "timeout must be greater than 0"),
    (PyTorchJobOperator, {"image": IMAGE, "timeout": float("nan")}, "timeout must be greater than 0"),
    (PyTorchJobOperator, {"image": IMAGE, "timeout": float("inf")}, "timeout must be at most"),
    (PyTorchJobOperator, {"image": IMAGE, "timeout": 1e20}, "timeout must be at most"),
    (PyTorchJobOperator, {"image": IMAGE, "timeout": "a day"}, "timeout must be a number of seconds"),
    (PyTorchJobOperator, {"image": IMAGE, "poll_interval": float("nan")}, "poll_interval must be greater"),
    (KatibExperimentOperator, {**KATIB, "timeout": float("inf")}, "timeout must be at most"),
    (KServeDeployOperator, {**ISVC, "if_exists": "replace"}, "would delete the serving"),
    (KServeDeployOperator, {**ISVC, "on_kill_action": "explode"}, "on_kill_action must be one of"),
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
        cls(**{"task_id": "t", **kwargs})


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


GATE = {"metric_value": "0.9", "threshold": "0.5", "metric_name": "f1", "deploy_task_ids": "deploy"}
GATE_CASES: list[tuple[dict[str, Any], str]] = [
    ({"metric_value": "inf"}, "metric_value must be a finite number"),
    ({"metric_value": float("-inf")}, "metric_value must be a finite number"),
    ({"metric_value": "high"}, "metric_value must be a number"),
    ({"metric_value": True}, "metric_value must be a number"),
    ({"threshold": "-inf"}, "threshold must be a finite number"),
    ({"threshold": "nan"}, "threshold must be a finite number"),
    ({"threshold": None}, "threshold must be a finite number"),
    ({"threshold": "half"}, "threshold must be a number"),
    ({"baseline_value": "inf"}, "baseline_value must be a finite number"),
    ({"baseline_margin": "x"}, "baseline_margin must be a number"),
    ({"serving_value": "inf"}, "serving_value must be a finite number"),
    ({"evaluable": "maybe"}, "evaluable must be true or false"),
    ({"service_name": "Bad/Name"}, "service_name: 'Bad/Name' is not a valid"),
    ({"service_name": "a" * 64}, "service_name: must be no more than 63"),
]


@pytest.mark.parametrize(("changes", "message"), GATE_CASES)
def test_invalid_gate_input_decides_nothing(
    fake_client: FakeObjectClient, context: dict, monkeypatch: pytest.MonkeyPatch, changes: dict, message: str
) -> None:
    """A gate input that is not a usable number or name fails the task: it never reads as "deploy"."""
    from kubeflow_bridge.operators.gate import ModelGateBranchOperator

    monkeypatch.setattr(ModelGateBranchOperator, "object_client", lambda self: fake_client)
    with pytest.raises(ValueError, match=message):
        ModelGateBranchOperator(task_id="gate", **{**GATE, **changes}).choose_branch(context)
    assert "gate" not in context["ti"].xcoms and fake_client.calls == []
