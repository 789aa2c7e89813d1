"""Server-side printing (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``) for kubectl get."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubeflow_bridge.local.apiserver.kinds import ResourceType
from kubeflow_bridge.local.apiserver.store import Obj


def age(ts: str | None) -> str:
    """kubectl's short duration format (``5s``, ``3m``, ``2h``, ``4d``)."""
    if not ts:
        return "<unknown>"
    try:
        then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    s = int((datetime.now(UTC) - then).total_seconds())
    if s < 120:
        return f"{max(s, 0)}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 2 * 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _last_condition(obj: Obj, field: str = "type") -> str:
    conds = (obj.get("status") or {}).get("conditions") or []
    return str(conds[-1].get(field, "")) if conds else ""


def _condition(obj: Obj, ctype: str) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return str(c.get("status", ""))
    return ""


def _pod_cells(o: Obj) -> list[Any]:
    st = o.get("status") or {}
    cs = st.get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    reason = st.get("phase", "Pending")
    for c in cs:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason") and reason not in ("Succeeded",):
            reason = state["terminated"]["reason"]
    if st.get("phase") == "Succeeded":
        reason = "Completed"
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [f"{ready}/{total}", reason, restarts]


def _job_cells(o: Obj) -> list[Any]:
    st = o.get("status") or {}
    spec = o.get("spec") or {}
    status = "Running"
    if _condition(o, "Complete") == "True":
        status = "Complete"
    elif _condition(o, "Failed") == "True":
        status = "Failed"
    elif spec.get("suspend"):
        status = "Suspended"
    return [status, f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}"]


def _isvc_cells(o: Obj) -> list[Any]:
    st = o.get("status") or {}
    traffic = ((st.get("components") or {}).get("predictor") or {}).get("traffic") or []
    prev = next((t.get("percent") for t in traffic if t.get("tag") == "prev"), "")
    latest = next((t.get("percent") for t in traffic if t.get("latestRevision")), "")
    pred = (st.get("components") or {}).get("predictor") or {}
    return [st.get("url", ""), _condition(o, "Ready"), prev, latest, pred.get("latestReadyRevision", "")]


def _event_cells(o: Obj) -> list[Any]:
    io = o.get("involvedObject") or {}
    return [
        age(o.get("lastTimestamp")),
        o.get("type", ""),
        o.get("reason", ""),
        f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}",
        o.get("message", ""),
    ]


Column = tuple[str, str]
COLUMNS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "pods": ([("Ready", "string"), ("Status", "string"), ("Restarts", "integer")], _pod_cells),
    "jobs": ([("Status", "string"), ("Completions", "string")], _job_cells),
    "pytorchjobs": ([("State", "string")], lambda o: [_last_condition(o)]),
    "tfjobs": ([("State", "string")], lambda o: [_last_condition(o)]),
    "xgboostjobs": ([("State", "string")], lambda o: [_last_condition(o)]),
    "jaxjobs": ([("State", "string")], lambda o: [_last_condition(o)]),
    "mpijobs": ([("State", "string")], lambda o: [_last_condition(o)]),
    "trainjobs": ([("State", "string")], lambda o: [_last_condition(o)]),
    "experiments": (
        [("Type", "string"), ("Status", "string")],
        lambda o: [_last_condition(o), _last_condition(o, "status")],
    ),
    "trials": (
        [("Type", "string"), ("Status", "string")],
        lambda o: [_last_condition(o), _last_condition(o, "status")],
    ),
    "inferenceservices": (
        [
            ("URL", "string"),
            ("Ready", "string"),
            ("Prev", "integer"),
            ("Latest", "integer"),
            ("LatestReadyRevision", "string"),
        ],
        _isvc_cells,
    ),
    "namespaces": ([("Status", "string")], lambda o: [(o.get("status") or {}).get("phase", "")]),
    "events": (
        [
            ("Last Seen", "string"),
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
        _event_cells,
    ),
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(rt: ResourceType, objs: list[Obj], resource_version: str, cont: str = "") -> dict[str, Any]:
    """A meta.k8s.io/v1 Table with NAME, the kind's printer columns and AGE."""
    cols, cells = COLUMNS.get(rt.plural, ([], lambda o: []))
    defs = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    defs += [{"name": n, "type": t, "format": "", "description": n, "priority": 0} for n, t in cols]
    if rt.plural != "events":
        defs.append({"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0})
    rows = []
    for o in objs:
        meta = o.get("metadata") or {}
        row_cells = [meta.get("name", ""), *cells(o)]
        if rt.plural != "events":
            row_cells.append(age(meta.get("creationTimestamp")))
        rows.append(
            {
                "cells": row_cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
            }
        )
    md: dict[str, Any] = {"resourceVersion": resource_version}
    if cont:
        md["continue"] = cont
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": md,
        "columnDefinitions": defs,
        "rows": rows,
    }
