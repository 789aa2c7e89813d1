"""From an InferenceService's predictor spec to the pod that runs one revision (pure).

Two predictor shapes run locally:

* a custom container (``spec.predictor.containers[0]``, normally the trainer image running
  ``python -m trainer serve ...``): its command and args run as given, except that the HTTP port is
  this revision's free port: ``--port N`` / ``--port=N`` / ``--http_port N`` / ``--http-port N``
  arguments and ``$(PORT)`` are rewritten, and ``PORT`` is set in the environment;
* ``spec.predictor.model`` with ``storageUri`` and a supported ``modelFormat.name``:

  ============================ =========================================================
  modelFormat.name             runs
  ============================ =========================================================
  ``kubeflow-bridge-vae``      ``python -m trainer serve --model <storageUri> --port N
  (aliases ``anomaly-vae``,    --model-name <isvc name>`` in the trainer image (kserve's
  ``trainer``)                 ModelServer, V1 and V2 REST)
  ``sklearn``, ``xgboost``,    :mod:`kubeflow_bridge.local.kserve.model_server` in the trainer
  ``lightgbm``                 image (kserve's ModelServer; runtime ``kserve-sklearnserver``,
                               ``kserve-xgbserver``, ``kserve-lgbserver``); a framework the
                               environment lacks fails the container, as on a cluster
  ============================ =========================================================

The legacy framework fields (``predictor.sklearn`` ...) are converted to ``predictor.model`` at
admission, as KServe's defaulting webhook does. Every other format (tensorflow, pytorch/TorchServe,
triton, onnx, huggingface, pmml, paddle, mlflow, ...) has no local runtime: the InferenceService gets
Ready=False with reason ``NoSupportingRuntime``, as KServe reports a format no ServingRuntime supports.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from kubeflow_bridge.local.images import TRAINER_IMAGE
from kubeflow_bridge.workflow.spec import storage_env_from

FRAMEWORK_RUNTIMES = {
    "sklearn": "kserve-sklearnserver",
    "xgboost": "kserve-xgbserver",
    "lightgbm": "kserve-lgbserver",
}
SUPPORTED_MODEL_FORMATS = ("kubeflow-bridge-vae", "anomaly-vae", "trainer", *FRAMEWORK_RUNTIMES)
LEGACY_FRAMEWORKS = (
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
ISVC_LABEL = "serving.kserve.io/inferenceservice"
REVISION_LABEL = "serving.knative.dev/revision"
COMPONENT_LABEL = "component"
PORT_ANNOTATION = "kubeflow-bridge.io/port"
SPEC_HASH_ANNOTATION = "kubeflow-bridge.io/predictor-spec-hash"
_PORT_FLAGS = ("--port", "--http_port", "--http-port")


class UnsupportedPredictor(ValueError):
    """A predictor the local runtime cannot run; the message says what is supported."""


@dataclass(frozen=True)
class PredictorPlan:
    """How one revision runs.

    Args:
        container: The container (name, image, command, args, env) before the port is chosen.
        model_name: Name the model server serves the model under (for ``/v1/models/<name>``).
        spec_hash: Hash of the predictor spec (canaryTrafficPercent excluded): a new hash is a new revision.
    """

    container: dict[str, Any]
    model_name: str
    spec_hash: str
    runtime: str = field(default="")


def predictor_spec_hash(isvc: dict[str, Any]) -> str:
    """Hash of the predictor spec without canaryTrafficPercent (traffic changes make no revision)."""
    predictor = copy.deepcopy((isvc.get("spec") or {}).get("predictor") or {})
    predictor.pop("canaryTrafficPercent", None)
    return hashlib.sha256(json.dumps(predictor, sort_keys=True).encode()).hexdigest()[:16]


def plan_predictor(isvc: dict[str, Any]) -> PredictorPlan:
    """The container of a revision of ``isvc``.

    Raises:
        UnsupportedPredictor: a model format or framework the local runtime does not serve.
    """
    name = isvc["metadata"]["name"]
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    spec_hash = predictor_spec_hash(isvc)
    if predictor.get("containers"):
        container = copy.deepcopy(predictor["containers"][0])
        container.setdefault("name", "kserve-container")
        model_name = name
        args = [*container.get("command", []), *container.get("args", [])]
        for index, arg in enumerate(args):
            if arg == "--model-name" and index + 1 < len(args):
                model_name = args[index + 1]
            elif arg.startswith("--model-name="):
                model_name = arg.split("=", 1)[1]
        return PredictorPlan(container, model_name, spec_hash, runtime="custom")
    for framework in LEGACY_FRAMEWORKS:
        if framework in predictor:  # admission converts them; an object stored before that did not
            predictor = convert_legacy_predictor(predictor)
    model = predictor.get("model") or {}
    fmt = ((model.get("modelFormat") or {}).get("name") or "").lower()
    if fmt not in SUPPORTED_MODEL_FORMATS:
        raise UnsupportedPredictor(
            f"unsupported model format {fmt!r}: no local serving runtime supports it; supported formats are "
            f"{list(SUPPORTED_MODEL_FORMATS)} (or use a custom predictor container)"
        )
    if not model.get("storageUri"):
        raise UnsupportedPredictor("predictor.model.storageUri is required: set the model's location")
    if fmt in FRAMEWORK_RUNTIMES:
        framework_container = {
            "name": "kserve-container",
            "image": TRAINER_IMAGE,
            "command": ["python", "-m", "kubeflow_bridge.local.kserve.model_server", "--framework", fmt],
            "args": ["--model_name", name, "--model_dir", model["storageUri"], "--http_port", "8080"],
            "env": copy.deepcopy(model.get("env") or []),
            "envFrom": storage_env_from(),
        }
        return PredictorPlan(framework_container, name, spec_hash, runtime=FRAMEWORK_RUNTIMES[fmt])
    container = {
        "name": "kserve-container",
        "image": TRAINER_IMAGE,
        "command": ["python", "-m", "trainer", "serve"],
        "args": ["--model", model["storageUri"], "--port", "8080", "--model-name", name],
        "env": copy.deepcopy(model.get("env") or []),
        # KServe's storage initializer fetches storageUri with the credentials KServe is given; here
        # the predictor itself reads it, with the namespace's storage Secret
        "envFrom": storage_env_from(),
    }
    if model.get("resources"):
        container["resources"] = copy.deepcopy(model["resources"])
    return PredictorPlan(container, name, spec_hash, runtime="kubeflow-bridge-vae")


def convert_legacy_predictor(predictor: dict[str, Any]) -> dict[str, Any]:
    """``predictor.<framework>`` -> ``predictor.model`` with ``modelFormat.name``, as KServe's defaulter does."""
    out = copy.deepcopy(predictor)
    for framework in LEGACY_FRAMEWORKS:
        if isinstance(out.get(framework), dict) and "model" not in out:
            out["model"] = {"modelFormat": {"name": framework}, **out.pop(framework)}
    return out


def with_port(container: dict[str, Any], port: int) -> dict[str, Any]:
    """The container listening on ``port``: port flags and ``$(PORT)`` rewritten, ``PORT`` in env."""
    out = copy.deepcopy(container)
    for key in ("command", "args"):
        items = [str(a).replace("$(PORT)", str(port)) for a in out.get(key) or []]
        for index, arg in enumerate(items):
            if arg in _PORT_FLAGS and index + 1 < len(items):
                items[index + 1] = str(port)
            for flag in _PORT_FLAGS:
                if arg.startswith(flag + "="):
                    items[index] = f"{flag}={port}"
        if key in out:
            out[key] = items
    env = [e for e in out.get("env") or [] if e.get("name") != "PORT"]
    env.append({"name": "PORT", "value": str(port)})
    out["env"] = env
    return out


def revision_name(isvc_name: str, number: int) -> str:
    """Knative's revision name for the predictor: ``<name>-predictor-0000N``."""
    return f"{isvc_name}-predictor-{number:05d}"


def revision_pod(isvc: dict[str, Any], plan: PredictorPlan, number: int, port: int) -> dict[str, Any]:
    """The Pod of one revision (labels as KServe/Knative put them; port and spec hash as annotations)."""
    name = isvc["metadata"]["name"]
    revision = revision_name(name, number)
    container = with_port(plan.container, port)
    # Knative's env on every revision container
    knative_env = {
        "K_REVISION": revision,
        "K_SERVICE": f"{name}-predictor",
        "K_CONFIGURATION": f"{name}-predictor",
    }
    container["env"] = [e for e in container["env"] if e.get("name") not in knative_env] + [
        {"name": k, "value": v} for k, v in knative_env.items()
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{revision}-deployment",
            "labels": {
                ISVC_LABEL: name,
                REVISION_LABEL: revision,
                "serving.knative.dev/service": f"{name}-predictor",
                COMPONENT_LABEL: "predictor",
            },
            "annotations": {PORT_ANNOTATION: str(port), SPEC_HASH_ANNOTATION: plan.spec_hash},
        },
        # Always, as a Deployment's pods: a runtime restart restarts the predictor; a crash is CrashLoopBackOff
        "spec": {"containers": [container], "restartPolicy": "Always"},
    }
