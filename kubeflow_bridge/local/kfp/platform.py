"""kfp-kubernetes platform config (the ``platforms.kubernetes`` document of a compiled pipeline).

What has a local meaning is honoured: ``secretAsEnv``, ``configMapAsEnv`` and ``fieldPathAsEnv``
become the task's environment (read from the runtime's Kubernetes API); pod labels and annotations,
node selectors, tolerations, affinities, image pull settings, shared memory and security contexts
have no effect on a local process and say so in the task's log. What cannot be done locally
(volumes of any kind, PVCs, init containers) is refused when the run is created, naming the task.
"""

from __future__ import annotations

import base64
from typing import Any

PLATFORM_KEY = "platformSpec"  # where the runtime keeps the platform document beside the pipeline spec

HONOURED = ("secretAsEnv", "configMapAsEnv", "fieldPathAsEnv")
NO_OP = (
    "podMetadata",
    "nodeSelector",
    "tolerations",
    "nodeAffinity",
    "podAffinity",
    "imagePullPolicy",
    "imagePullSecret",
    "enabledSharedMemory",
    "securityContext",
    "activeDeadlineSeconds",
)
REFUSED = (
    "secretAsVolume",
    "configMapAsVolume",
    "pvcMount",
    "genericEphemeralVolume",
    "emptyDirMounts",
    "initContainers",
)


def public_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec as the KFP API shows it: bare, or ``{pipeline_spec, platform_spec}`` with platform settings."""
    if PLATFORM_KEY not in spec:
        return spec
    return {
        "pipeline_spec": {k: v for k, v in spec.items() if k != PLATFORM_KEY},
        "platform_spec": spec[PLATFORM_KEY],
    }


def executors(platform: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Executor label -> its Kubernetes settings."""
    kubernetes = ((platform or {}).get("platforms") or {}).get("kubernetes") or {}
    return dict((kubernetes.get("deploymentSpec") or {}).get("executors") or {})


def platform_problems(platform: dict[str, Any] | None) -> list[str]:
    """What the local runtime cannot do, one line per executor and setting."""
    problems = []
    for label, settings in executors(platform).items():
        for key in settings:
            if key in REFUSED:
                problems.append(
                    f"executor {label!r}: kubernetes {key} cannot be mounted by the local runtime (no "
                    "containers, no volumes): pass the data as inputs or artifacts, or secrets with "
                    "use_secret_as_env"
                )
            elif key not in HONOURED and key not in NO_OP:
                problems.append(
                    f"executor {label!r}: kubernetes setting {key!r} is unknown to the local runtime"
                )
    return problems


def _name(item: dict[str, Any], legacy: str, parameter: str, params: dict[str, Any]) -> str:
    spec = item.get(parameter) or {}
    constant = (spec.get("runtimeValue") or {}).get("constant")
    if constant is not None:
        return str(constant)
    if spec.get("componentInputParameter"):
        return str(params.get(spec["componentInputParameter"], ""))
    return str(item.get(legacy) or "")


def task_env(
    settings: dict[str, Any], params: dict[str, Any], read: Any, namespace: str, pod_name: str
) -> tuple[dict[str, str], list[str]]:
    """The environment a task's settings give it, and the log lines about what has no effect.

    Args:
        settings: The task executor's kubernetes settings.
        params: The run's parameters (names given as pipeline inputs).
        read: ``read(kind, name) -> dict | None`` reads a Secret or ConfigMap from the runtime.
        namespace: The namespace secrets and config maps are read from.
        pod_name: What ``metadata.name`` means for a field path.

    Raises:
        LookupError: a required Secret, ConfigMap or key is missing (the task fails, saying which).
    """
    env: dict[str, str] = {}
    for kind, key, legacy, parameter, data_key in (
        ("Secret", "secretAsEnv", "secretName", "secretNameParameter", "secretKey"),
        ("ConfigMap", "configMapAsEnv", "configMapName", "configMapNameParameter", "configMapKey"),
    ):
        for item in settings.get(key) or []:
            name = _name(item, legacy, parameter, params)
            obj = read(kind, name)
            if obj is None:
                if item.get("optional"):
                    continue
                raise LookupError(f'{kind} "{name}" not found in namespace {namespace!r} (kubernetes {key})')
            data = dict(obj.get("data") or {})
            for mapping in item.get("keyToEnv") or []:
                if mapping.get(data_key) not in data:
                    raise LookupError(
                        f'{kind} "{name}" has no key {mapping.get(data_key)!r} (kubernetes {key})'
                    )
                value = data[mapping[data_key]]
                env[mapping["envVar"]] = base64.b64decode(value).decode() if kind == "Secret" else str(value)
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    for item in settings.get("fieldPathAsEnv") or []:
        env[item["name"]] = fields.get(item.get("fieldPath", ""), "")
    notes = [
        f"kubernetes {key} has no effect on a local process: {settings[key]}"
        for key in NO_OP
        if key in settings
    ]
    return env, notes
