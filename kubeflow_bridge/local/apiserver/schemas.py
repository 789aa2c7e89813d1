"""Field knowledge of the served kinds, from the official clients' models (``openapi_types`` and
``attribute_map`` of kubernetes, kubeflow-training and kserve), for ``fieldValidation``.

``fieldValidation=Strict`` (what kubectl sends by default) refuses unknown fields with 400 "strict
decoding error: unknown field ..."; ``Warn`` stores the object and answers with a ``Warning`` header per
unknown field; ``Ignore`` (the default of other clients) drops nothing and says nothing. A kind whose
client is not installed in the runtime's environment (Katib's Experiment: the Katib SDK is not a
dependency) is not checked.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

# kind -> (module, model class); nested models resolve in that module, then in kubernetes.client
MODELS = {
    "Pod": ("kubernetes.client", "V1Pod"),
    "Job": ("kubernetes.client", "V1Job"),
    "ConfigMap": ("kubernetes.client", "V1ConfigMap"),
    "Secret": ("kubernetes.client", "V1Secret"),
    "Namespace": ("kubernetes.client", "V1Namespace"),
    "ServiceAccount": ("kubernetes.client", "V1ServiceAccount"),
    "Event": ("kubernetes.client", "CoreV1Event"),
    "PyTorchJob": ("kubeflow.training", "KubeflowOrgV1PyTorchJob"),
    "InferenceService": ("kserve", "V1beta1InferenceService"),
}
_LEAVES = {"object", "str", "int", "float", "bool", "datetime", "date", "bytearray"}


@functools.cache
def _model(module: str, name: str) -> Any:
    for candidate in (module, "kubernetes.client"):
        try:
            found = getattr(importlib.import_module(candidate), name, None)
        except ImportError:
            continue
        if found is not None:
            return found
    return None


def _walk(value: Any, type_name: str, module: str, path: str, out: list[str]) -> None:
    if value is None or type_name in _LEAVES:
        return
    if type_name.startswith("list["):
        for index, item in enumerate(value if isinstance(value, list) else []):
            _walk(item, type_name[5:-1], module, f"{path}[{index}]", out)
        return
    if type_name.startswith("dict("):
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        for key, item in (value if isinstance(value, dict) else {}).items():
            _walk(item, inner, module, f"{path}.{key}", out)
        return
    model = _model(module, type_name)
    if model is None or not isinstance(value, dict):
        return
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, item in value.items():
        attr = by_json.get(key)
        where = f"{path}.{key}" if path else key
        if attr is None:
            out.append(where)
        else:
            _walk(item, model.openapi_types[attr], module, where, out)


def unknown_fields(kind: str, obj: dict[str, Any]) -> list[str]:
    """Paths of the fields of `obj` its kind's model does not have (none when the model is unknown)."""
    if kind not in MODELS:
        return []
    module, name = MODELS[kind]
    if _model(module, name) is None:
        return []
    out: list[str] = []
    _walk(obj, name, module, "", out)
    return out
