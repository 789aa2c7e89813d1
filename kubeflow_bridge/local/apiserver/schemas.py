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
    "TFJob": ("kubeflow.training", "KubeflowOrgV1TFJob"),
    "XGBoostJob": ("kubeflow.training", "KubeflowOrgV1XGBoostJob"),
    "JAXJob": ("kubeflow.training", "KubeflowOrgV1JAXJob"),
    "MPIJob": ("kubeflow.training", "KubeflowOrgV1MPIJob"),
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


_SCALARS = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "bytearray": {"type": "string", "format": "byte"},
    "object": {"type": "object"},
}


def _description(doc: str | None) -> str:
    """The field description in a generated model's property docstring (its middle paragraph)."""
    paragraphs = [p.strip() for p in (doc or "").split("\n\n")]
    text = [p for p in paragraphs[1:] if p and not p.startswith(":")]
    return " ".join(text[0].replace("# noqa: E501", "").split()) if text else ""


def _schema_of(type_name: str, module: str, schemas: dict[str, Any]) -> dict[str, Any]:
    if type_name in _SCALARS:
        return dict(_SCALARS[type_name])
    if type_name.startswith("list["):
        return {"type": "array", "items": _schema_of(type_name[5:-1], module, schemas)}
    if type_name.startswith("dict("):
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        return {"type": "object", "additionalProperties": _schema_of(inner, module, schemas)}
    model = _model(module, type_name)
    if model is None:
        return {"type": "object"}
    if type_name not in schemas:
        schemas[type_name] = {}  # placeholder: models refer to each other
        properties = {}
        for attr, json_name in model.attribute_map.items():
            prop = _schema_of(model.openapi_types[attr], module, schemas)
            description = _description(getattr(model, attr).__doc__)
            if "$ref" in prop:
                prop = {"allOf": [prop]}
            properties[json_name] = {**prop, **({"description": description} if description else {})}
        doc = " ".join((model.__doc__ or "").split("NOTE:")[0].split())
        schemas[type_name] = {"type": "object", "description": doc, "properties": properties}
    return {"$ref": f"#/components/schemas/{type_name}"}


def openapi_schemas(kinds: list[tuple[str, str, str]]) -> dict[str, Any]:
    """``components.schemas`` of an OpenAPI v3 group-version document for (group, version, kind)s,
    generated from the official clients' models (what ``kubectl explain`` reads)."""
    schemas: dict[str, Any] = {}
    for group, version, kind in kinds:
        gvk = [{"group": group, "version": version, "kind": kind}]
        if kind in MODELS and _model(*MODELS[kind]) is not None:
            module, name = MODELS[kind]
            _schema_of(name, module, schemas)
            schemas[name]["x-kubernetes-group-version-kind"] = gvk
            continue
        schemas[f"local.{group}.{version}.{kind}"] = {  # no client model here: fields unchecked
            "type": "object",
            "description": f"{kind} of {group or 'core'}/{version}. The local runtime has no field schema for "
            "this kind (its client library is not installed); see the kind's CRD or API reference.",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-group-version-kind": gvk,
        }
    return schemas
