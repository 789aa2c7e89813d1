"""InferenceService status and traffic as KServe v0.16 (Serverless mode) computes them (pure).

Traffic (ksvc_reconciler.go): with ``canaryTrafficPercent`` C set and a rolled-out revision that is not
the latest ready one: ``[{latestRevision: true, percent: C}, {revisionName: <rolled out>, latestRevision:
false, percent: 100 - C, tag: "prev"}]`` (the second omitted when C == 100); otherwise the latest ready
revision takes 100% and becomes ``latestRolledoutRevision`` (the one before it becomes
``previousRolledoutRevision``). A latest revision that is not ready (starting, unknown image, model that
fails to load) leaves the traffic where it was; Ready then says why, at the new observedGeneration.
Conditions are Knative's, sorted by type: IngressReady, PredictorConfigurationReady (Info),
PredictorReady, PredictorRouteReady (Info), Ready.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"


@dataclass(frozen=True)
class Revision:
    """One predictor revision.

    Args:
        name: ``<isvc>-predictor-0000N``.
        number: N.
        state: ``ready``, ``pending`` or ``failed``.
        port: The predictor's port on 127.0.0.1.
        reason: Why it failed or is pending.
        message: Details.
    """

    name: str
    number: int
    state: str
    port: int
    reason: str = ""
    message: str = ""


@dataclass
class Outcome:
    """What one reconcile decided.

    Args:
        status: The new ``status``.
        routes: (revision name, port, percent) for the proxy.
        keep: Revisions whose pods must keep running (others are stopped).
    """

    status: dict[str, Any]
    routes: list[tuple[str, int, int]]
    keep: set[str]


def _condition(
    old: list[dict[str, Any]],
    ctype: str,
    cstatus: str,
    now: str,
    reason: str = "",
    message: str = "",
    info: bool = False,
) -> dict[str, Any]:
    previous = next((c for c in old if c.get("type") == ctype), None)
    cond: dict[str, Any] = {"type": ctype, "status": cstatus}
    cond["lastTransitionTime"] = (
        previous["lastTransitionTime"]
        if previous and previous.get("status") == cstatus and previous.get("lastTransitionTime")
        else now
    )
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    if info:
        cond["severity"] = "Info"
    return cond


def compute_status(
    isvc: dict[str, Any],
    revisions: list[Revision],
    *,
    proxy_url: str,
    now: str,
    invalid: str | None = None,
    runtime: str = "",
) -> Outcome:
    """The InferenceService's new status from its revisions (see the module docstring).

    Args:
        isvc: The object (its current status is the previous state).
        revisions: Every revision that exists, any order.
        proxy_url: The local URL of the service (the traffic-splitting proxy).
        now: Timestamp for changed conditions.
        invalid: Why the predictor cannot run at all (unsupported model format), if so.
        runtime: Serving runtime name to report.
    """
    meta = isvc["metadata"]
    name, namespace = meta["name"], meta.get("namespace") or "default"
    old = copy.deepcopy(isvc.get("status") or {})
    old_conditions: list[dict[str, Any]] = old.get("conditions") or []
    old_pred = (old.get("components") or {}).get("predictor") or {}
    canary = ((isvc.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    by_name = {r.name: r for r in revisions}
    ordered = sorted(revisions, key=lambda r: r.number)
    latest = ordered[-1] if ordered else None
    ready = [r for r in ordered if r.state == "ready"]
    latest_ready = ready[-1] if ready else None
    rolled = old_pred.get("latestRolledoutRevision") or ""
    previous = old_pred.get("previousRolledoutRevision") or ""
    if rolled and (rolled not in by_name or by_name[rolled].state != "ready"):
        rolled = latest_ready.name if latest_ready else ""

    traffic: list[dict[str, Any]] = []
    routes: list[tuple[str, int, int]] = []
    if latest is not None and latest.state == "ready":
        if canary is not None and rolled and rolled != latest.name:
            percent = int(canary)
            entry: dict[str, Any] = {"latestRevision": True, "percent": percent, "revisionName": latest.name}
            if ((meta.get("annotations") or {}).get(TAG_ROUTING_ANNOTATION) or "").lower() == "true":
                entry["tag"] = "latest"
            traffic.append(entry)
            if percent < 100:
                traffic.append(
                    {"latestRevision": False, "percent": 100 - percent, "revisionName": rolled, "tag": "prev"}
                )
        else:
            traffic.append({"latestRevision": True, "percent": 100, "revisionName": latest.name})
            if rolled != latest.name:
                previous = rolled or previous
                rolled = latest.name
    elif rolled:
        # the latest revision is not ready: everything stays on the rolled-out revision
        traffic.append({"latestRevision": False, "percent": 100, "revisionName": rolled})
    for entry in traffic:
        if entry["percent"] > 0 or len(traffic) == 1:
            routes.append((entry["revisionName"], by_name[entry["revisionName"]].port, entry["percent"]))
    keep = {entry["revisionName"] for entry in traffic}
    if latest is not None and latest.state == "pending":
        keep.add(latest.name)

    if invalid is not None:
        pred_status, pred_reason, pred_message = FALSE, "NoSupportingRuntime", invalid
    elif latest is None:
        pred_status, pred_reason, pred_message = (
            UNKNOWN,
            "RevisionMissing",
            "Configuration is waiting for a Revision to become ready.",
        )
    elif latest.state == "failed":
        pred_status, pred_reason = FALSE, latest.reason or "RevisionFailed"
        pred_message = f"Revision {latest.name!r} failed with message: {latest.message}"
    elif latest.state == "pending":
        pred_status, pred_reason = UNKNOWN, latest.reason or "RevisionMissing"
        pred_message = latest.message or f"Revision {latest.name!r} is starting"
    else:
        pred_status, pred_reason, pred_message = TRUE, "", ""
    route_ok = bool(traffic)
    conditions = [
        _condition(old_conditions, "IngressReady", TRUE if route_ok else UNKNOWN, now),
        _condition(
            old_conditions,
            "PredictorConfigurationReady",
            pred_status,
            now,
            pred_reason,
            pred_message,
            info=True,
        ),
        _condition(old_conditions, "PredictorReady", pred_status, now, pred_reason, pred_message),
        _condition(old_conditions, "PredictorRouteReady", TRUE if route_ok else UNKNOWN, now, info=True),
        _condition(old_conditions, "Ready", pred_status, now, pred_reason, pred_message),
    ]
    predictor: dict[str, Any] = {}
    if latest is not None:
        predictor["latestCreatedRevision"] = latest.name
    if latest_ready is not None:
        predictor["latestReadyRevision"] = latest_ready.name
    if rolled:
        predictor["latestRolledoutRevision"] = rolled
    if previous and previous != rolled:
        predictor["previousRolledoutRevision"] = previous
    if traffic:
        predictor["traffic"] = traffic
        predictor["url"] = proxy_url
        predictor["address"] = {"url": f"http://{name}-predictor.{namespace}.svc.cluster.local"}
    if latest is None or invalid is not None:
        transition, target, active = "InvalidSpec" if invalid else "InProgress", "", ""
    elif latest.state == "failed":
        transition, target, active = "BlockedByFailedLoad", "FailedToLoad", "Loaded" if rolled else ""
    elif latest.state == "pending":
        transition, target, active = "InProgress", "Loading", "Loaded" if rolled else ""
    else:
        transition, target, active = "UpToDate", "Loaded", "Loaded"
    model_status: dict[str, Any] = {
        "transitionStatus": transition,
        "copies": {"failedCopies": 0, "totalCopies": 1},
    }
    if target:
        model_status["states"] = {"activeModelState": active, "targetModelState": target}
    if invalid is not None:
        model_status["lastFailureInfo"] = {"reason": "NoSupportingRuntime", "message": invalid}
    elif latest is not None and latest.state == "failed":
        model_status["copies"]["failedCopies"] = 1
        model_status["lastFailureInfo"] = {"reason": "ModelLoadFailed", "message": latest.message}
    status: dict[str, Any] = {
        "conditions": conditions,
        "observedGeneration": meta.get("generation", 1),
        "components": {"predictor": predictor} if predictor else {},
        "modelStatus": model_status,
        "deploymentMode": "Serverless",
    }
    if runtime:
        status["servingRuntimeName"] = runtime
    if traffic:
        status["url"] = proxy_url
        status["address"] = {"url": f"http://{name}.{namespace}.svc.cluster.local"}
    return Outcome(status, routes, keep)
