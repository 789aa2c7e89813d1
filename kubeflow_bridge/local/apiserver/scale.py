"""The ``/scale`` subresource of custom resources whose CRD declares one (autoscaling/v1 Scale)."""

from __future__ import annotations

import copy
from typing import Any

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver.kinds import ResourceType


def _get(obj: Any, path: str) -> Any:
    for key in path.strip(".").split("."):
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def scale_of(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The Scale view of `obj` (spec.replicas from specReplicasPath, status from the status paths)."""
    assert rt.scale is not None
    spec_path, status_path, selector_path = rt.scale
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int(_get(obj, spec_path) or 0)},
        "status": {"replicas": int(_get(obj, status_path) or 0), "selector": _get(obj, selector_path) or ""},
    }


def with_replicas(rt: ResourceType, obj: dict[str, Any], scale: Any) -> dict[str, Any]:
    """`obj` with the replicas that a written Scale asks for; 422 if it asks for none or a bad number."""
    assert rt.scale is not None
    replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise apierrors.invalid(
            rt.group,
            rt.kind,
            obj["metadata"]["name"],
            [{"field": "spec.replicas", "message": f"must be a non-negative integer, got {replicas!r}"}],
        )
    keys = rt.scale[0].strip(".").split(".")
    if not isinstance(_get(obj, ".".join(keys[:-1])), dict):
        raise apierrors.invalid(
            rt.group,
            rt.kind,
            obj["metadata"]["name"],
            [{"field": rt.scale[0].strip("."), "message": "the object has no such replica spec to scale"}],
        )
    new = copy.deepcopy(obj)
    target = new
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = replicas
    meta = scale.get("metadata") or {}
    if meta.get("resourceVersion"):
        new["metadata"]["resourceVersion"] = meta["resourceVersion"]
    return new
