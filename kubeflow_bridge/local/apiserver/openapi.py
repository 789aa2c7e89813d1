"""The OpenAPI v3 surface kubectl reads (apply, explain).

kubectl 1.32 asks ``/openapi/v3`` whether PATCH of a kind takes the ``fieldValidation`` query
parameter; if so it leaves validation to the server. So the documents list, per group/version, the
object paths with their operations, the group-version-kind extension and that parameter, plus the
kinds' schemas generated from the official clients' models (:mod:`.schemas`) for ``kubectl explain``.
"""

from __future__ import annotations

from typing import Any

from kubeflow_bridge.local.apiserver.kinds import KindRegistry, ResourceType
from kubeflow_bridge.local.apiserver.schemas import openapi_schemas


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def index(kinds: KindRegistry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rt in kinds.types:
        gv = _gv_path(rt.group, rt.version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash=local"}
    return {"paths": paths}


def _op(rt: ResourceType, action: str, with_validation: bool) -> dict[str, Any]:
    params = [{"name": "dryRun", "in": "query", "schema": {"type": "string"}}]
    if with_validation:
        params.append({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}})
    return {
        "operationId": f"{action}{rt.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    }


def group_version(kinds: KindRegistry, parts: list[str]) -> dict[str, Any] | None:
    """The document for ``/openapi/v3/api/v1`` or ``/openapi/v3/apis/<group>/<version>``."""
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    types = kinds.in_group_version(group, version)
    if not types:
        return None
    prefix = "/" + _gv_path(group, version)
    paths: dict[str, Any] = {}
    for rt in types:
        base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
        paths[base] = {"get": _op(rt, "list", False), "post": _op(rt, "post", True)}
        paths[f"{base}/{{name}}"] = {
            "get": _op(rt, "get", False),
            "put": _op(rt, "put", True),
            "patch": _op(rt, "patch", True),
            "delete": _op(rt, "delete", False),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "kubeflow-bridge local runtime", "version": "v1.32.0"},
        "paths": paths,
        # the served kinds' schemas, from the official clients' models: what `kubectl explain` reads
        "components": {"schemas": openapi_schemas([(rt.group, rt.version, rt.kind) for rt in types])},
    }
