"""Shared request helpers and the service state behind the local KFP API's handlers."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubeflow_bridge.local.kfp.query import ApiError, bad_request, check_length, not_found, now_ts, rfc3339
from kubeflow_bridge.local.kfp.runs import RunExecutor
from kubeflow_bridge.local.kfp.store import Store, public

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# user data whose keys are never renamed
_OPAQUE = {"pipeline_spec", "parameters", "pipelineSpec", "plugins_input", "pluginsInput"}


def snake_keys(obj: Any) -> Any:
    """protojson accepts lowerCamelCase and proto names alike; the handlers work on proto names."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            name = _CAMEL.sub("_", key).lower() if isinstance(key, str) else key
            out[name] = value if key in _OPAQUE else snake_keys(value)
        return out
    if isinstance(obj, list):
        return [snake_keys(v) for v in obj]
    return obj


async def read_body(request: web.Request, allowed: set[str], wrapper: str | None = None) -> dict[str, Any]:
    """The JSON object of a create call; unknown fields are a 400 as in protojson."""
    raw = await request.read()
    if not raw.strip():
        raise bad_request("request body is empty: send the object as JSON")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    body = snake_keys(body)
    if wrapper and wrapper in body and isinstance(body[wrapper], dict) and len(body) == 1:
        body = body[wrapper]
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown field(s) {unknown}; accepted fields: {sorted(allowed)}")
    return body


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class KfpState:
    """What every handler needs: the store, the run executor, and configuration."""

    store: Store
    executor: RunExecutor
    pipeline_root: str
    multi_user: bool = False  # Kubeflow's mode: experiments (and their runs) live in profile namespaces

    def scoped(
        self, items: list[dict[str, Any]], namespace: str, experiment_id: str = "", *, by_experiment: bool
    ) -> list[dict[str, Any]]:
        """What a list call may see: in multi-user mode only the items of `namespace` (or of the
        experiment's namespace), one of which must be given, as KFP requires. Runs and recurring runs
        (`by_experiment`) belong to their experiment's namespace."""
        if not self.multi_user:
            return items
        if experiment_id:
            namespace = self.must_get("experiments", experiment_id, "experiment").get("namespace", "")
        if not namespace:
            raise bad_request("Resource cannot have an empty namespace and experiment id in multi-user mode")
        if not by_experiment:
            return [x for x in items if x.get("namespace", "") == namespace]
        spaces = {e["experiment_id"]: e.get("namespace", "") for e in self.store.all("experiments")}
        return [x for x in items if spaces.get(x.get("experiment_id", "")) == namespace]

    def must_get(self, table: str, ident: str, kind: str) -> dict[str, Any]:
        obj = self.store.get(table, ident)
        if obj is None:
            raise not_found(kind, ident)
        return obj

    def default_experiment_id(self) -> str:
        for exp in self.store.all("experiments"):
            if exp["display_name"] == "Default":
                return str(exp["experiment_id"])
        return str(
            self.create_experiment({"display_name": "Default", "description": "Default experiment"})[
                "experiment_id"
            ]
        )

    def create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = (body.get("display_name") or "").strip()
        if not name:
            raise bad_request("experiment display_name is empty: give the experiment a name")
        check_length("Experiment", "Name", name)
        namespace = str(body.get("namespace") or "") if self.multi_user else ""  # single-user: ignored
        if self.multi_user and not namespace:
            raise bad_request("An experiment cannot have an empty namespace in multi-user mode")
        for exp in self.store.all("experiments"):
            if exp["display_name"] == name and exp.get("namespace", "") == namespace:
                raise ApiError(
                    409, f"experiment {name!r} already exists (experiment_id {exp['experiment_id']})"
                )
        exp = {
            "experiment_id": new_id(),
            "display_name": name,
            "description": body.get("description") or "",
            "created_at": rfc3339(now_ts()),
            "namespace": namespace,
            "storage_state": "AVAILABLE",
            "last_run_created_at": rfc3339(None),
        }
        self.store.put("experiments", exp["experiment_id"], exp)
        return exp

    def version_spec(self, ref: dict[str, Any]) -> dict[str, Any]:
        pipeline_id = ref.get("pipeline_id") or ""
        version_id = ref.get("pipeline_version_id") or ""
        if pipeline_id:
            self.must_get("pipelines", pipeline_id, "pipeline")
        if not version_id:
            versions = [v for v in self.store.all("versions") if v["pipeline_id"] == pipeline_id]
            if not versions:
                raise bad_request(f"pipeline {pipeline_id!r} has no versions: upload one first")
            version = versions[-1]
        else:
            version = self.must_get("versions", version_id, "pipeline version")
        if pipeline_id and version["pipeline_id"] != pipeline_id:
            raise bad_request(f"pipeline version {version_id!r} does not belong to pipeline {pipeline_id!r}")
        from kubeflow_bridge.local.kfp.spec import unwrap_spec

        return unwrap_spec(version["pipeline_spec"])  # the stored public form, platform settings re-attached


def respond(obj: Any, status: int = 200) -> web.Response:
    if isinstance(obj, dict):
        obj = public(obj)
    return web.json_response(obj, status=status, dumps=lambda o: json.dumps(o, default=str))
