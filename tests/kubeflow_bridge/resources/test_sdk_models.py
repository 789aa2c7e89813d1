"""The builders' output against the official SDKs' generated model classes and the kfp compiler.

These run in the trainer environment (kserve, kubeflow-training, kfp installed), where the Makefile
runs the resources tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kubeflow_bridge.resources.katib import Objective, Parameter, build_experiment, trainer_trial_template
from kubeflow_bridge.resources.kfp import (
    build_recurring_run_request,
    build_run_request,
    parse_pipeline_yaml,
    pipeline_inputs,
    validate_parameters,
)
from kubeflow_bridge.resources.kserve import build_inference_service
from kubeflow_bridge.resources.names import Identity, with_identity
from kubeflow_bridge.resources.training import RunPolicy, build_pytorchjob, resource_requirements

_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "datetime": (str,),
    "date": (str,),
}


def to_model(data: Any, klass: str, modules: list[Any], path: str = "") -> Any:
    """Build the SDK's generated model objects from a manifest, strictly.

    Like the generated ApiClient's deserializer (which in kserve cannot resolve the Kubernetes core
    classes such as V1ObjectMeta), but resolving classes in several modules, failing on any field the
    model does not declare, and checking primitive types. The model constructors check required fields.
    """
    if data is None:
        return None
    if klass.startswith("list["):
        assert isinstance(data, list), f"{path}: expected a list, got {data!r}"
        return [to_model(item, klass[5:-1], modules, f"{path}[{i}]") for i, item in enumerate(data)]
    match = re.match(r"dict\(([^,]*), (.*)\)", klass)
    if match:
        assert isinstance(data, dict), f"{path}: expected an object, got {data!r}"
        return {k: to_model(v, match.group(2), modules, f"{path}.{k}") for k, v in data.items()}
    if klass in _PRIMITIVES:
        ok = isinstance(data, _PRIMITIVES[klass]) and not (
            klass in ("int", "float") and isinstance(data, bool)
        )
        assert ok, f"{path}: expected {klass}, got {data!r}"
        return data
    cls = next((getattr(m, klass) for m in modules if hasattr(m, klass)), None)
    assert cls is not None, f"{path}: no model class {klass}"
    if getattr(cls, "allowable_values", None) and not cls.attribute_map:
        assert data in cls.allowable_values, f"{path}: {data!r} is not one of {cls.allowable_values}"
        return data
    assert isinstance(data, dict), f"{path}: expected a {klass} object, got {data!r}"
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = set(data) - set(by_json)
    assert not unknown, f"{path}: {klass} has no fields {sorted(unknown)}"
    kwargs = {
        by_json[k]: to_model(v, cls.openapi_types[by_json[k]], modules, f"{path}.{k}")
        for k, v in data.items()
    }
    return cls(**kwargs)


def _round_trip(
    api_client: Any, obj: dict[str, Any], klass: str, modules: list[Any]
) -> tuple[Any, dict[str, Any]]:
    model = to_model(obj, klass, modules)
    return model, api_client.sanitize_for_serialization(model)


def _training_modules() -> tuple[Any, list[Any]]:
    training = pytest.importorskip("kubeflow.training")
    kubernetes_models = pytest.importorskip("kubernetes.client.models")
    return training, [training.models, kubernetes_models]


IDENTITY = Identity.airflow("iss_anomaly", "train", "manual__2026-11-22T00:00:00+00:00")


def test_pytorchjob_deserializes_into_kubeflow_training_models() -> None:
    training, modules = _training_modules()
    job = with_identity(
        build_pytorchjob(
            name=IDENTITY.resource_name(max_length=40),
            namespace="kubeflow",
            image="kubeflow-bridge/trainer:latest",
            command=["python", "-m", "trainer", "train"],
            args=["--epochs", "2"],
            env={"AWS_ENDPOINT_URL": "http://127.0.0.1:8333"},
            resources=resource_requirements(cpu="1", memory="2Gi", gpu=1),
            workers=2,
            nproc_per_node="auto",
            run_policy=RunPolicy(clean_pod_policy="None", backoff_limit=1, ttl_seconds_after_finished=60),
        ),
        IDENTITY,
    )
    model, back = _round_trip(training.ApiClient(), job, "KubeflowOrgV1PyTorchJob", modules)
    assert isinstance(model, training.KubeflowOrgV1PyTorchJob)
    master = model.spec.pytorch_replica_specs["Master"]
    assert master.replicas == 1 and master.template.spec.containers[0].name == "pytorch"
    assert master.template.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert model.spec.pytorch_replica_specs["Worker"].replicas == 2
    assert model.spec.run_policy.clean_pod_policy == "None"
    # Every field we emit is a field of the model: nothing is dropped on the way back.
    assert back == job


def test_inference_services_deserialize_into_kserve_models() -> None:
    kserve = pytest.importorskip("kserve")
    custom = with_identity(
        build_inference_service(
            name="iss-vae",
            namespace="models",
            image="kubeflow-bridge/trainer:latest",
            model_uri="s3://models/vae/1",
            resources=resource_requirements(cpu="1", memory="1Gi"),
            min_replicas=1,
            canary_traffic_percent=10,
            deployment_mode="Serverless",
        ),
        IDENTITY,
    )
    model_isvc = build_inference_service(
        name="iss-onnx",
        storage_uri="s3://models/onnx/1",
        model_format="onnx",
        model_format_version="1",
        protocol_version="v2",
    )
    api = kserve.ApiClient()
    modules = [kserve.models, pytest.importorskip("kubernetes.client.models")]
    for manifest in (custom, model_isvc):
        model, back = _round_trip(api, manifest, "V1beta1InferenceService", modules)
        assert isinstance(model, kserve.V1beta1InferenceService)
        if "model" in back["spec"]["predictor"]:
            # V1beta1ModelSpec embeds a container whose name the SDK defaults to "" (KServe fills it in).
            assert back["spec"]["predictor"]["model"].pop("name") == ""
        assert back == manifest
    model, _ = _round_trip(api, custom, "V1beta1InferenceService", modules)
    assert model.spec.predictor.canary_traffic_percent == 10
    assert model.spec.predictor.containers[0].ports[0].container_port == 8080


def test_katib_pytorchjob_trial_spec_deserializes_into_kubeflow_training_models() -> None:
    training, modules = _training_modules()
    experiment = build_experiment(
        name="iss-tune",
        objective=Objective(objective_metric_name="val_loss"),
        parameters=[Parameter.double("learning_rate", 0.001, 0.1)],
        trial_template=trainer_trial_template(
            "kubeflow-bridge/trainer:latest", ["learning_rate"], kind="PyTorchJob", workers=1
        ),
    )
    trial_spec = experiment["spec"]["trialTemplate"]["trialSpec"]
    with_metadata = {**trial_spec, "metadata": {"name": "iss-tune-abcdefgh"}}
    _, back = _round_trip(training.ApiClient(), with_metadata, "KubeflowOrgV1PyTorchJob", modules)
    assert back == with_metadata


PIPELINE_SOURCE = """
from kfp import dsl


@dsl.component(base_image="python:3.11")
def scale(x: float, times: int, label: str, enabled: bool, tags: list, extra: dict) -> float:
    return x * times


@dsl.pipeline(name="tiny-pipeline")
def tiny(times: int, x: float = 0.5, label: str = "a", enabled: bool = True, tags: list = ["t"], extra: dict = {"k": 1}):
    scale(x=x, times=times, label=label, enabled=enabled, tags=tags, extra=extra)
"""


def test_kfp_compiled_pipeline_inputs_and_parameters(tmp_path: Path) -> None:
    pytest.importorskip("kfp")
    import importlib.util

    from kfp import compiler

    # kfp reads a component's source with inspect, so the pipeline must live in a real file.
    source = tmp_path / "tiny_pipeline.py"
    source.write_text(PIPELINE_SOURCE)
    spec = importlib.util.spec_from_file_location("tiny_pipeline", source)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    package = tmp_path / "tiny.yaml"
    compiler.Compiler().compile(module.tiny, str(package))

    doc = parse_pipeline_yaml(package.read_text())
    assert doc.name == "tiny-pipeline" and doc.platform_spec is None
    inputs = pipeline_inputs(doc)
    assert {name: (d.type, d.required, d.default) for name, d in inputs.items()} == {
        "times": ("NUMBER_INTEGER", True, None),
        "x": ("NUMBER_DOUBLE", False, 0.5),
        "label": ("STRING", False, "a"),
        "enabled": ("BOOLEAN", False, True),
        "tags": ("LIST", False, ["t"]),
        "extra": ("STRUCT", False, {"k": 1.0}),
    }
    typed = validate_parameters(
        doc, {"times": "3", "x": "2", "enabled": "false", "tags": '["u", "v"]', "extra": "{}"}
    )
    assert typed == {"times": 3, "x": 2.0, "enabled": False, "tags": ["u", "v"], "extra": {}}
    body = build_run_request(display_name="tiny", pipeline_spec=doc, parameters={"times": 4})
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "tiny-pipeline"
    assert body["runtime_config"] == {"parameters": {"times": 4}}
    with pytest.raises(ValueError, match="times"):
        validate_parameters(doc, {"x": 1})


def test_strict_model_walker_catches_unknown_fields_and_wrong_types() -> None:
    _, modules = _training_modules()
    job = build_pytorchjob(name="x", image="img", command=["true"])
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replica"] = 1
    with pytest.raises(AssertionError, match=r"has no fields \['replica'\]"):
        to_model(job, "KubeflowOrgV1PyTorchJob", modules)
    job = build_pytorchjob(name="x", image="img", command=["true"])
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = "1"
    with pytest.raises(AssertionError, match="expected int"):
        to_model(job, "KubeflowOrgV1PyTorchJob", modules)


def test_kfp_requests_deserialize_into_kfp_server_api_models() -> None:
    kfp_server_api = pytest.importorskip("kfp_server_api")
    modules = [kfp_server_api.models]
    api = kfp_server_api.ApiClient()
    ir = {
        "pipelineInfo": {"name": "p"},
        "root": {"inputDefinitions": {"parameters": {"n": {"parameterType": "NUMBER_INTEGER"}}}},
    }
    run = build_run_request(
        display_name="r",
        description="d",
        experiment_id="e",
        pipeline_spec=ir,
        parameters={"n": "2"},
        service_account="sa",
        pipeline_root="s3://b/p",
    )
    model, back = _round_trip(api, run, "V2beta1Run", modules)
    assert model.runtime_config.parameters == {"n": 2}
    assert back == run
    recurring = build_recurring_run_request(
        display_name="nightly",
        cron="0 2 * * *",
        start_time="2026-11-22T00:00:00Z",
        pipeline_version_reference={"pipeline_id": "p1", "pipeline_version_id": "v1"},
        parameters={"n": 3},
        experiment_id="e",
        namespace="team",
    )
    # start_time is a datetime in the model; the walker keeps the RFC 3339 string the API takes.
    model, back = _round_trip(api, recurring, "V2beta1RecurringRun", modules)
    assert model.trigger.cron_schedule.cron == "0 0 2 * * *" and model.max_concurrency == "1"
    assert back == recurring
    periodic = build_recurring_run_request(
        display_name="hourly", interval_seconds=3600, pipeline_version_reference={"pipeline_id": "p1"}
    )
    model, back = _round_trip(api, periodic, "V2beta1RecurringRun", modules)
    assert model.trigger.periodic_schedule.interval_second == "3600" and model.mode == "ENABLE"
    assert back == periodic
