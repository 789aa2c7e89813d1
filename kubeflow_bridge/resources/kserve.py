"""KServe InferenceService (serving.kserve.io/v1beta1) builder and validator.

Two predictor shapes: a custom container running the trainer image's ``serve`` step (the kserve
ModelServer), or a ``model`` with a ``storageUri`` and a model format served by a ServingRuntime.
The validator encodes KServe's webhook rules and the structural types of the fields the bridge emits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kubeflow_bridge.resources._checks import (
    Causes,
    check_container,
    check_object_header,
    check_resources,
    expect,
    expect_enum,
    expect_min,
)
from kubeflow_bridge.resources.errors import FieldCause, raise_if_any
from kubeflow_bridge.resources.names import object_metadata
from kubeflow_bridge.resources.training import env_list

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
#: KServe serves only the container with this name (a custom predictor's other containers are sidecars).
CONTAINER_NAME = "kserve-container"
DEFAULT_PORT = 8080
#: Knative names revisions ``<name>-predictor-00001`` and routes ``<name>-predictor.<ns>...``; KServe
#: rejects names that leave those over 63 characters, so keep InferenceService names to 45.
MAX_NAME_LENGTH = 45
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"
DEPLOYMENT_MODES = ("Serverless", "RawDeployment", "ModelMesh", "Knative", "Standard")
AUTOSCALER_CLASSES = ("hpa", "external", "none", "keda")
SCALE_METRICS = ("cpu", "memory", "concurrency", "rps")
PROTOCOL_VERSIONS = ("v1", "v2", "grpc-v1", "grpc-v2")
STORAGE_URI_PREFIXES = (
    "gs://",
    "s3://",
    "pvc://",
    "file://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "hf://",
)
#: Predictor implementations, exactly one of which must be set.
PREDICTOR_IMPLEMENTATIONS = (
    "containers",
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
)


def trainer_serve_command(
    model_uri: str,
    *,
    port: int = DEFAULT_PORT,
    model_name: str | None = "anomaly-vae",
    host: str | None = None,
) -> list[str]:
    """The command that serves a trained model with the trainer image: ``python -m trainer serve ...``.

    Args:
        model_uri: The model artifact the server loads.
        port: The port it listens on.
        model_name: The name in the URL paths (the trainer's default when None).
        host: Bind address. The trainer binds 127.0.0.1 by default, which is what Knative (Serverless)
            needs: its queue-proxy reaches the container on localhost. In RawDeployment/Standard mode the
            Service targets the pod IP, so pass ``"0.0.0.0"`` there.
    """
    command = ["python", "-m", "trainer", "serve", "--model", model_uri, "--port", str(port)]
    if model_name:
        command += ["--model-name", model_name]
    if host:
        command += ["--host", host]
    return command


@dataclass(kw_only=True)
class InferenceServiceSpec:
    """An InferenceService with one predictor.

    Set ``image`` (and ``model_uri`` or ``command``) for a custom predictor, or ``storage_uri`` and
    ``model_format`` for a runtime-served model.

    Args:
        name: Object name (DNS-1035, at most :data:`MAX_NAME_LENGTH` characters).
        namespace: Namespace, if set in the manifest.
        image: Custom predictor image (the trainer image).
        model_uri: The model the trainer's ``serve`` step loads (``s3://...``).
        model_name: Name the model is served under.
        command: Custom container command (default: :func:`trainer_serve_command`).
        args: Custom container args.
        env: Custom container environment.
        env_from: Custom container ``envFrom`` (e.g. the Secret holding the model store's credentials).
        port: Container port the server listens on.
        serve_host: ``--host`` of the trainer's serve step (see :func:`trainer_serve_command`).
        storage_uri: Model location for a runtime-served model.
        model_format: Model format name (``sklearn``, ``pytorch``, ``onnx`` ...).
        model_format_version: Model format version.
        runtime: ServingRuntime to use (KServe picks one when None).
        protocol_version: ``v1`` or ``v2`` (Open Inference Protocol).
        resources: Container resources.
        min_replicas: Minimum replicas (0 lets Knative scale to zero).
        max_replicas: Maximum replicas.
        canary_traffic_percent: Percent of traffic for the new revision; the rest stays on the
            previous rolled-out revision.
        deployment_mode: ``serving.kserve.io/deploymentMode`` annotation (``Serverless``, ``RawDeployment``...).
        service_account_name: Predictor pod service account (for storage credentials).
        timeout: Request timeout in seconds.
        labels: Object labels.
        annotations: Object annotations.
    """

    name: str
    namespace: str | None = None
    image: str | None = None
    model_uri: str | None = None
    model_name: str | None = "anomaly-vae"
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] | list[dict[str, Any]] | None = None
    env_from: list[dict[str, Any]] | None = None
    port: int = DEFAULT_PORT
    serve_host: str | None = None
    storage_uri: str | None = None
    model_format: str | None = None
    model_format_version: str | None = None
    runtime: str | None = None
    protocol_version: str | None = None
    resources: dict[str, Any] | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    canary_traffic_percent: int | None = None
    deployment_mode: str | None = None
    service_account_name: str | None = None
    timeout: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def predictor(self) -> dict[str, Any]:
        """``spec.predictor``."""
        if (self.image is None) == (self.storage_uri is None):
            raise ValueError("set either image (custom predictor) or storage_uri (model), exactly one")
        predictor: dict[str, Any] = {}
        if self.image is not None:
            if self.command is None and self.model_uri is None:
                raise ValueError("a custom predictor needs model_uri (or an explicit command)")
            container: dict[str, Any] = {"name": CONTAINER_NAME, "image": self.image}
            container["command"] = list(
                self.command
                if self.command is not None
                else trainer_serve_command(
                    str(self.model_uri), port=self.port, model_name=self.model_name, host=self.serve_host
                )
            )
            if self.args:
                container["args"] = list(self.args)
            env = env_list(self.env)
            if env:
                container["env"] = env
            if self.env_from:
                container["envFrom"] = copy.deepcopy(self.env_from)
            container["ports"] = [{"containerPort": self.port, "protocol": "TCP"}]
            if self.resources:
                container["resources"] = copy.deepcopy(self.resources)
            predictor["containers"] = [container]
        else:
            if not self.model_format:
                raise ValueError("a storage_uri model needs model_format (e.g. 'sklearn', 'pytorch', 'onnx')")
            model_format: dict[str, Any] = {"name": self.model_format}
            if self.model_format_version:
                model_format["version"] = self.model_format_version
            model: dict[str, Any] = {"modelFormat": model_format, "storageUri": self.storage_uri}
            if self.runtime:
                model["runtime"] = self.runtime
            if self.protocol_version:
                model["protocolVersion"] = self.protocol_version
            if self.resources:
                model["resources"] = copy.deepcopy(self.resources)
            predictor["model"] = model
        if self.min_replicas is not None:
            predictor["minReplicas"] = self.min_replicas
        if self.max_replicas is not None:
            predictor["maxReplicas"] = self.max_replicas
        if self.canary_traffic_percent is not None:
            predictor["canaryTrafficPercent"] = self.canary_traffic_percent
        if self.service_account_name:
            predictor["serviceAccountName"] = self.service_account_name
        if self.timeout is not None:
            predictor["timeout"] = self.timeout
        return predictor

    def to_dict(self) -> dict[str, Any]:
        """The InferenceService manifest."""
        annotations = dict(self.annotations)
        if self.deployment_mode:
            annotations[DEPLOYMENT_MODE_ANNOTATION] = self.deployment_mode
        metadata = object_metadata(self.name, self.namespace, self.labels, annotations)
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": metadata,
            "spec": {"predictor": self.predictor()},
        }


def build_inference_service(**kwargs: Any) -> dict[str, Any]:
    """Build and validate an InferenceService; keyword arguments as :class:`InferenceServiceSpec`."""
    manifest = InferenceServiceSpec(**kwargs).to_dict()
    validate_inference_service(manifest)
    return manifest


def canary_patch(canary_traffic_percent: int | None) -> dict[str, Any]:
    """A JSON merge patch that sets (or, with None, removes = promotes) ``canaryTrafficPercent``.

    Note that a merge patch replaces lists whole: to roll out a new model in a custom predictor, build
    the full InferenceService again and patch ``spec.predictor.containers`` with it instead.
    """
    if canary_traffic_percent is not None and not 0 <= canary_traffic_percent <= 100:
        raise ValueError(f"canary_traffic_percent must be between 0 and 100, not {canary_traffic_percent}")
    return {"spec": {"predictor": {"canaryTrafficPercent": canary_traffic_percent}}}


def validate_inference_service(obj: dict[str, Any]) -> None:
    """Check an InferenceService as KServe's webhook and CRD schema would.

    Raises:
        ValidationError: listing every problem found, each saying what to fix.
    """
    causes: Causes = []
    if not isinstance(obj, dict):
        raise_if_any(KIND, "", [FieldCause("", "an InferenceService must be an object")])
        return
    name = check_object_header(
        causes, obj, kind=KIND, api_version=API_VERSION, max_name_length=MAX_NAME_LENGTH
    )
    metadata: Any = obj.get("metadata")
    if isinstance(metadata, dict):
        annotations: Any = metadata.get("annotations")
        if not isinstance(annotations, dict):
            annotations = {}
        expect_enum(
            causes,
            f"metadata.annotations[{DEPLOYMENT_MODE_ANNOTATION}]",
            annotations.get(DEPLOYMENT_MODE_ANNOTATION),
            DEPLOYMENT_MODES,
        )
        expect_enum(
            causes,
            f"metadata.annotations[{AUTOSCALER_CLASS_ANNOTATION}]",
            annotations.get(AUTOSCALER_CLASS_ANNOTATION),
            AUTOSCALER_CLASSES,
        )
    spec: Any = obj.get("spec")
    if expect(causes, "spec", spec, dict, required=True):
        predictor: Any = spec.get("predictor")
        if expect(causes, "spec.predictor", predictor, dict, required=True):
            _check_predictor(causes, "spec.predictor", predictor)
        for component in ("transformer", "explainer"):
            expect(causes, f"spec.{component}", spec.get(component), dict)
    raise_if_any(KIND, name, causes)


def _check_predictor(causes: Causes, path: str, predictor: dict[str, Any]) -> None:
    present = [key for key in PREDICTOR_IMPLEMENTATIONS if predictor.get(key)]
    if len(present) != 1:
        causes.append(
            FieldCause(
                path,
                "exactly one predictor must be set: containers (custom) or model (storageUri + modelFormat)"
                + (f"; found {present}" if present else "; found none"),
            )
        )
    min_ok = expect_min(causes, f"{path}.minReplicas", predictor.get("minReplicas"), 0)
    max_ok = expect_min(causes, f"{path}.maxReplicas", predictor.get("maxReplicas"), 0)
    if min_ok and max_ok and predictor["maxReplicas"] and predictor["minReplicas"] > predictor["maxReplicas"]:
        causes.append(FieldCause(f"{path}.minReplicas", "must not be greater than maxReplicas"))
    canary: Any = predictor.get("canaryTrafficPercent")
    if expect(causes, f"{path}.canaryTrafficPercent", canary, int) and not 0 <= canary <= 100:
        causes.append(FieldCause(f"{path}.canaryTrafficPercent", f"must be between 0 and 100 (got {canary})"))
    expect_min(causes, f"{path}.timeout", predictor.get("timeout"), 1)
    expect_min(causes, f"{path}.containerConcurrency", predictor.get("containerConcurrency"), 0)
    expect_enum(causes, f"{path}.scaleMetric", predictor.get("scaleMetric"), SCALE_METRICS)
    expect_min(causes, f"{path}.scaleTarget", predictor.get("scaleTarget"), 1)
    expect(causes, f"{path}.serviceAccountName", predictor.get("serviceAccountName"), str)
    containers: Any = predictor.get("containers")
    if expect(causes, f"{path}.containers", containers, list):
        for i, container in enumerate(containers):
            check_container(causes, f"{path}.containers[{i}]", container)
            if isinstance(container, dict) and not container.get("image"):
                causes.append(
                    FieldCause(f"{path}.containers[{i}].image", "is required", "FieldValueRequired")
                )
        names = [c.get("name") for c in containers if isinstance(c, dict)]
        if len(containers) > 1 and CONTAINER_NAME not in names:
            causes.append(
                FieldCause(
                    f"{path}.containers",
                    f"with several containers, the serving one must be named {CONTAINER_NAME!r}",
                )
            )
    model: Any = predictor.get("model")
    if expect(causes, f"{path}.model", model, dict):
        _check_model(causes, f"{path}.model", model)
    for key in PREDICTOR_IMPLEMENTATIONS[2:]:
        framework: Any = predictor.get(key)
        if expect(causes, f"{path}.{key}", framework, dict):
            _check_storage_uri(causes, f"{path}.{key}.storageUri", framework.get("storageUri"))
            check_resources(causes, f"{path}.{key}.resources", framework.get("resources"))


def _check_model(causes: Causes, path: str, model: dict[str, Any]) -> None:
    model_format: Any = model.get("modelFormat")
    if expect(causes, f"{path}.modelFormat", model_format, dict, required=True):
        name = model_format.get("name")
        if not name or not isinstance(name, str):
            causes.append(
                FieldCause(
                    f"{path}.modelFormat.name",
                    "is required (e.g. 'sklearn', 'pytorch', 'onnx')",
                    "FieldValueRequired",
                )
            )
        expect(causes, f"{path}.modelFormat.version", model_format.get("version"), str)
    if model.get("storageUri") and model.get("storageUris"):
        causes.append(FieldCause(f"{path}.storageUri", "set storageUri or storageUris, not both"))
    _check_storage_uri(causes, f"{path}.storageUri", model.get("storageUri"))
    expect(causes, f"{path}.runtime", model.get("runtime"), str)
    expect_enum(causes, f"{path}.protocolVersion", model.get("protocolVersion"), PROTOCOL_VERSIONS)
    check_resources(causes, f"{path}.resources", model.get("resources"))
    check_container(
        causes,
        path,
        {"name": CONTAINER_NAME, **{k: v for k, v in model.items() if k in ("env", "args", "command")}},
    )


def model_location_problem(field: str, uri: Any) -> str | None:
    """What is wrong with ``uri`` as a model location an operator passes on, or None.

    Stricter than the webhook (which lets any string without ``://`` through as a local path): a pod's
    relative path means nothing to the user, so a location is ``scheme://rest`` or an absolute path.
    """
    if not isinstance(uri, str) or not uri.strip():
        return f"{field} is required: e.g. 's3://models/anomaly-vae/model.pt' or '/mnt/models/model.pt'"
    _scheme, sep, rest = uri.partition("://")
    if sep and (not uri.startswith(STORAGE_URI_PREFIXES) or not rest.strip("/")):
        return (
            f"{field} {uri!r} must name a bucket or path after a supported scheme "
            f"({', '.join(STORAGE_URI_PREFIXES)})"
        )
    if not sep and (not uri.startswith("/") or uri != uri.strip()):
        return f"{field} {uri!r} is not a URI or an absolute path: use e.g. 's3://models/vae/model.pt'"
    return None


def _check_storage_uri(causes: Causes, path: str, uri: Any) -> None:
    """KServe accepts its URI schemes, Azure blob https URLs (an https:// prefix) and local paths."""
    if not expect(causes, path, uri, str):
        return
    if "://" in uri and not uri.startswith(STORAGE_URI_PREFIXES):
        causes.append(
            FieldCause(
                path,
                f"{uri!r} has an unsupported scheme: use one of {', '.join(STORAGE_URI_PREFIXES)} or a path",
            )
        )
