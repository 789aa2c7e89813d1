from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from kubeflow_bridge.resources.errors import ValidationError
from kubeflow_bridge.resources.kserve import (
    InferenceServiceSpec,
    build_inference_service,
    canary_patch,
    trainer_serve_command,
    validate_inference_service,
)
from kubeflow_bridge.resources.training import resource_requirements

IMAGE = "kubeflow-bridge/trainer:latest"


def _flower_example() -> dict[str, Any]:
    # Written from the kfserving sdk v1beta1 sample notebook's InferenceService (2021), spec only.
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "flower-sample", "namespace": "kfserving-test"},
        "spec": {
            "predictor": {
                "canaryTrafficPercent": 20,
                "tensorflow": {
                    "name": "kfserving-container",
                    "resources": {
                        "limits": {"cpu": "1", "memory": "2Gi"},
                        "requests": {"cpu": "1", "memory": "2Gi"},
                    },
                    "runtimeVersion": "1.14.0",
                    "storageUri": "gs://kfserving-examples/models/tensorflow/flowers-2",
                },
            }
        },
    }


def test_real_flower_sample_validates_and_builder_matches_its_fields() -> None:
    example = _flower_example()
    validate_inference_service(example)
    built = InferenceServiceSpec(
        name="flower-sample",
        namespace="kfserving-test",
        storage_uri="gs://kfserving-examples/models/tensorflow/flowers-2",
        model_format="tensorflow",
        model_format_version="1.14.0",
        resources=resource_requirements(cpu="1", memory="2Gi"),
        canary_traffic_percent=20,
    ).to_dict()
    validate_inference_service(built)
    assert built["apiVersion"] == example["apiVersion"] and built["kind"] == example["kind"]
    assert built["metadata"] == example["metadata"]
    expected_predictor = example["spec"]["predictor"]
    predictor = built["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == expected_predictor["canaryTrafficPercent"]
    # The 2021 object used the framework field; v0.16 expresses the same model with model + modelFormat.
    model, legacy = predictor["model"], expected_predictor["tensorflow"]
    assert model["storageUri"] == legacy["storageUri"]
    assert model["resources"] == legacy["resources"]
    assert model["modelFormat"] == {"name": "tensorflow", "version": legacy["runtimeVersion"]}
    assert set(predictor) == {"model", "canaryTrafficPercent"}


def test_custom_trainer_predictor() -> None:
    isvc = build_inference_service(
        name="iss-vae",
        namespace="models",
        image=IMAGE,
        model_uri="s3://models/iss/vae/1",
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:8333"},
        resources=resource_requirements(cpu="1", memory="1Gi"),
        min_replicas=1,
        max_replicas=2,
        canary_traffic_percent=10,
        deployment_mode="RawDeployment",
        service_account_name="models-sa",
        timeout=60,
        labels={"app.kubernetes.io/managed-by": "kubeflow-bridge"},
        annotations={"kubeflow-bridge.io/dag-id": "iss"},
    )
    assert isvc["metadata"] == {
        "name": "iss-vae",
        "namespace": "models",
        "labels": {"app.kubernetes.io/managed-by": "kubeflow-bridge"},
        "annotations": {
            "kubeflow-bridge.io/dag-id": "iss",
            "serving.kserve.io/deploymentMode": "RawDeployment",
        },
    }
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == 1 and predictor["maxReplicas"] == 2
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["serviceAccountName"] == "models-sa" and predictor["timeout"] == 60
    (container,) = predictor["containers"]
    assert container == {
        "name": "kserve-container",
        "image": IMAGE,
        "command": [
            "python",
            "-m",
            "trainer",
            "serve",
            "--model",
            "s3://models/iss/vae/1",
            "--port",
            "8080",
            "--model-name",
            "anomaly-vae",
        ],
        "env": [{"name": "AWS_ENDPOINT_URL", "value": "http://127.0.0.1:8333"}],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
    }


def test_serve_command_and_canary_patch() -> None:
    assert trainer_serve_command("/m", port=9000, model_name=None) == [
        "python",
        "-m",
        "trainer",
        "serve",
        "--model",
        "/m",
        "--port",
        "9000",
    ]
    assert trainer_serve_command("/m", host="0.0.0.0")[-2:] == ["--host", "0.0.0.0"]
    raw = InferenceServiceSpec(name="raw", image=IMAGE, model_uri="/m", serve_host="0.0.0.0").to_dict()
    assert raw["spec"]["predictor"]["containers"][0]["command"][-2:] == ["--host", "0.0.0.0"]
    assert canary_patch(0) == {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
    assert canary_patch(None) == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    with pytest.raises(ValueError, match="between 0 and 100"):
        canary_patch(101)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({}, "exactly one"),
        ({"image": IMAGE, "storage_uri": "s3://m"}, "exactly one"),
        ({"image": IMAGE}, "needs model_uri"),
        ({"storage_uri": "s3://m"}, "needs model_format"),
    ],
)
def test_builder_refuses_ambiguous_predictors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InferenceServiceSpec(name="x", **kwargs).to_dict()


def test_build_validates() -> None:
    with pytest.raises(ValidationError, match="no more than 45"):
        build_inference_service(name="a" * 46, image=IMAGE, model_uri="s3://m")


@pytest.mark.parametrize(
    "uri", ["s3://b/m", "hf://org/model", "oci://reg/m:1", "/mnt/models/m", "models/m", "pvc://vol/m"]
)
def test_storage_uris_kserve_accepts(uri: str) -> None:
    validate_inference_service(
        InferenceServiceSpec(name="m", storage_uri=uri, model_format="sklearn").to_dict()
    )


def _custom() -> dict[str, Any]:
    return InferenceServiceSpec(name="iss-vae", image=IMAGE, model_uri="s3://m/1").to_dict()


def _model() -> dict[str, Any]:
    return InferenceServiceSpec(name="iss-vae", storage_uri="s3://m/1", model_format="pytorch").to_dict()


def _pred(o: dict[str, Any]) -> dict[str, Any]:
    return o["spec"]["predictor"]


def _ann(o: dict[str, Any]) -> dict[str, Any]:
    return o["metadata"].setdefault("annotations", {})


P = "spec.predictor"
C0 = f"{P}.containers[0]"
CUSTOM, MODEL = _custom, _model

CASES: list[tuple[str, Callable[[], dict[str, Any]], Callable[[dict[str, Any]], Any], str, str]] = [
    (
        "name chars",
        CUSTOM,
        lambda o: o["metadata"].update(name="ISS_vae"),
        "metadata.name",
        "not a valid DNS-1035",
    ),
    (
        "name length",
        CUSTOM,
        lambda o: o["metadata"].update(name="a" * 46),
        "metadata.name",
        "no more than 45",
    ),
    (
        "api version",
        CUSTOM,
        lambda o: o.update(apiVersion="serving.kserve.io/v1alpha1"),
        "apiVersion",
        "v1beta1",
    ),
    ("kind", CUSTOM, lambda o: o.update(kind="Service"), "kind", "'InferenceService'"),
    ("no spec", CUSTOM, lambda o: o.pop("spec"), "spec", "is required"),
    ("no predictor", CUSTOM, lambda o: o["spec"].pop("predictor"), P, "is required"),
    ("none set", CUSTOM, lambda o: _pred(o).pop("containers"), P, "found none"),
    (
        "two set",
        CUSTOM,
        lambda o: _pred(o).update(_model()["spec"]["predictor"]),
        P,
        "found ['containers', 'model']",
    ),
    (
        "canary high",
        CUSTOM,
        lambda o: _pred(o).update(canaryTrafficPercent=150),
        f"{P}.canaryTrafficPercent",
        "between 0 and 100",
    ),
    (
        "canary type",
        CUSTOM,
        lambda o: _pred(o).update(canaryTrafficPercent="20"),
        f"{P}.canaryTrafficPercent",
        "must be an integer",
    ),
    ("min replicas", CUSTOM, lambda o: _pred(o).update(minReplicas=-1), f"{P}.minReplicas", ">= 0"),
    (
        "min > max",
        CUSTOM,
        lambda o: _pred(o).update(minReplicas=3, maxReplicas=2),
        f"{P}.minReplicas",
        "greater than maxReplicas",
    ),
    (
        "scale metric",
        CUSTOM,
        lambda o: _pred(o).update(scaleMetric="gpu"),
        f"{P}.scaleMetric",
        "cpu, memory, concurrency, rps",
    ),
    ("timeout", CUSTOM, lambda o: _pred(o).update(timeout=0), f"{P}.timeout", ">= 1"),
    (
        "deployment mode",
        CUSTOM,
        lambda o: _ann(o).update({"serving.kserve.io/deploymentMode": "Raw"}),
        "metadata.annotations[serving.kserve.io/deploymentMode]",
        "Serverless, RawDeployment",
    ),
    (
        "autoscaler class",
        CUSTOM,
        lambda o: _ann(o).update({"serving.kserve.io/autoscalerClass": "vpa"}),
        "metadata.annotations[serving.kserve.io/autoscalerClass]",
        "hpa, external",
    ),
    (
        "annotation type",
        CUSTOM,
        lambda o: _ann(o).update({"x": 1}),
        "metadata.annotations[x]",
        "must be a string",
    ),
    (
        "containers type",
        CUSTOM,
        lambda o: _pred(o).update(containers={"name": "x"}),
        f"{P}.containers",
        "must be a list",
    ),
    (
        "container image",
        CUSTOM,
        lambda o: _pred(o)["containers"][0].pop("image"),
        f"{C0}.image",
        "is required",
    ),
    (
        "container command type",
        CUSTOM,
        lambda o: _pred(o)["containers"][0].update(command="serve"),
        f"{C0}.command",
        "must be a list",
    ),
    (
        "container env",
        CUSTOM,
        lambda o: _pred(o)["containers"][0].update(env=[{"name": "A", "value": 3}]),
        f"{C0}.env[0].value",
        "must be a string",
    ),
    (
        "container port",
        CUSTOM,
        lambda o: _pred(o)["containers"][0].update(ports=[{"containerPort": "8080"}]),
        f"{C0}.ports[0].containerPort",
        "must be an integer",
    ),
    (
        "container resources",
        CUSTOM,
        lambda o: _pred(o)["containers"][0].update(resources={"limits": {"cpu": "lots"}}),
        f"{C0}.resources.limits[cpu]",
        "is not a quantity",
    ),
    (
        "multi containers name",
        CUSTOM,
        lambda o: _pred(o).update(containers=[{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]),
        f"{P}.containers",
        "must be named 'kserve-container'",
    ),
    (
        "model format",
        MODEL,
        lambda o: _pred(o)["model"].pop("modelFormat"),
        f"{P}.model.modelFormat",
        "is required",
    ),
    (
        "model format name",
        MODEL,
        lambda o: _pred(o)["model"].update(modelFormat={"version": "1"}),
        f"{P}.model.modelFormat.name",
        "is required",
    ),
    (
        "model format version type",
        MODEL,
        lambda o: _pred(o)["model"]["modelFormat"].update(version=2),
        f"{P}.model.modelFormat.version",
        "must be a string",
    ),
    (
        "storage scheme",
        MODEL,
        lambda o: _pred(o)["model"].update(storageUri="ftp://x"),
        f"{P}.model.storageUri",
        "unsupported scheme",
    ),
    (
        "storage both",
        MODEL,
        lambda o: _pred(o)["model"].update(storageUris=[{"uri": "s3://y"}]),
        f"{P}.model.storageUri",
        "not both",
    ),
    (
        "protocol",
        MODEL,
        lambda o: _pred(o)["model"].update(protocolVersion="v3"),
        f"{P}.model.protocolVersion",
        "v1, v2",
    ),
    (
        "model resources",
        MODEL,
        lambda o: _pred(o)["model"].update(resources={"requests": {"memory": "2 GB"}}),
        f"{P}.model.resources.requests[memory]",
        "is not a quantity",
    ),
    (
        "framework storage",
        MODEL,
        lambda o: _pred(o).update(model=None, sklearn={"storageUri": "x://y"}),
        f"{P}.sklearn.storageUri",
        "unsupported scheme",
    ),
]


@pytest.mark.parametrize("case,base,mutate,field,fragment", CASES, ids=[c[0] for c in CASES])
def test_each_rule_rejects_with_a_message(
    case: str,
    base: Callable[[], dict[str, Any]],
    mutate: Callable[[dict[str, Any]], Any],
    field: str,
    fragment: str,
    expect_rejection: Callable[..., dict[str, str]],
) -> None:
    obj = copy.deepcopy(base())
    validate_inference_service(obj)
    mutate(obj)
    causes = expect_rejection(validate_inference_service, obj)
    assert field in causes, causes
    assert fragment in causes[field]
