"""Terminal-state classification of Kubeflow objects, as the real controllers write their status.

Pure functions over the object dicts the API returns. ``classify`` answers None while an object is
not finished, so a waiter keeps waiting; the rules follow the controllers' source (training operator
v1.9, Kubeflow Trainer v2.3, Katib v0.19, KServe v0.16, batch/v1 Job, Pod).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeflow_bridge.clients.kube._kinds import ResourceKind, kind_named

SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)

#: Ready=False reasons KServe/Knative write while a rollout is still progressing (not failures).
_ISVC_PROGRESS_REASONS = frozenset(
    {"", "Deploying", "RevisionMissing", "ConfigurationsNotReady", "RoutesNotReady"}
)
#: modelStatus.transitionStatus values that mean the model will not become ready without a change.
_ISVC_FAILED_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})


@dataclass(frozen=True)
class Classification:
    """A terminal state of an object.

    Args:
        state: ``succeeded``, ``failed`` or ``cancelled``.
        reason: The controller's reason (condition reason or phase).
        message: The controller's human-readable message.
    """

    state: str
    reason: str
    message: str


def conditions(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The object's ``status.conditions`` list (empty when absent)."""
    status = (obj or {}).get("status") or {}
    found = status.get("conditions") or []
    return [c for c in found if isinstance(c, dict)]


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    """The last condition of type ``ctype``, or None."""
    match = None
    for cond in conditions(obj):
        if cond.get("type") == ctype:
            match = cond
    return match


def _is_true(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    cond = condition(obj, ctype)
    return cond if cond is not None and str(cond.get("status")) == "True" else None


def _from(cond: dict[str, Any], state: str, default_reason: str) -> Classification:
    return Classification(state, str(cond.get("reason") or default_reason), str(cond.get("message") or ""))


def classify(
    kind: ResourceKind | str, obj: dict[str, Any] | None, *, min_generation: int | None = None
) -> Classification | None:
    """Say whether ``obj`` has reached a terminal state, and which.

    Args:
        kind: The object's kind (a ``ResourceKind`` or its ``kind`` name, e.g. ``"PyTorchJob"``).
        obj: The object as the API returned it.
        min_generation: InferenceService only: the generation we wrote; readiness only counts when
            ``status.observedGeneration`` has reached it (an old revision's Ready must not answer).
            When None, the object's own ``metadata.generation`` is used if the status reports one.

    Returns:
        The terminal classification, or None while the object is not finished.
    """
    if obj is None:
        return None
    rk = kind if isinstance(kind, ResourceKind) else kind_named(kind)
    if rk.kind == "InferenceService":
        return _inference_service(obj, min_generation)
    handler = _HANDLERS.get(rk.kind)
    if handler is None:
        raise ValueError(f"no terminal-state rules for kind {rk.kind!r}")
    return handler(obj)


def _v1_job(obj: dict[str, Any]) -> Classification | None:
    """A training operator v1 job (PyTorchJob, TFJob, XGBoostJob, JAXJob, MPIJob): its Failed or Succeeded
    condition."""
    # setCondition is a no-op once Failed is True, so Failed wins; Restarting is not terminal.
    kind = str(obj.get("kind") or "PyTorchJob")
    if cond := _is_true(obj, "Failed"):
        return _from(cond, FAILED, f"{kind}Failed")
    if cond := _is_true(obj, "Succeeded"):
        return _from(cond, SUCCEEDED, f"{kind}Succeeded")
    # Suspended is not terminal: queueing systems (Kueue) create jobs suspended and resume them later.
    return None


def _trainjob(obj: dict[str, Any]) -> Classification | None:
    # Trainer v2.3 copies its JobSet's Completed/Failed conditions as Complete/Failed (reasons
    # AllJobsCompleted, FailedJobs, ReachedMaxRestarts) and writes Failed itself for DeadlineExceeded and
    # TrainingRuntimeNotSupported; Suspended is not terminal.
    if cond := _is_true(obj, "Failed"):
        return _from(cond, FAILED, "FailedJobs")
    if cond := _is_true(obj, "Complete"):
        return _from(cond, SUCCEEDED, "AllJobsCompleted")
    return None


def _experiment(obj: dict[str, Any]) -> Classification | None:
    # A restart removes Succeeded/Failed and appends Restarting, so a True Restarting means running again.
    if _is_true(obj, "Restarting"):
        return None
    if cond := _is_true(obj, "Failed"):
        return _from(cond, FAILED, "ExperimentFailed")
    if cond := _is_true(obj, "Succeeded"):
        return _from(cond, SUCCEEDED, "ExperimentSucceeded")
    return None


def _trial(obj: dict[str, Any]) -> Classification | None:
    if cond := _is_true(obj, "Failed"):
        return _from(cond, FAILED, "TrialFailed")
    if cond := _is_true(obj, "MetricsUnavailable"):
        # The job succeeded but never printed the objective metric: the trial counts as failed.
        return _from(cond, FAILED, "MetricsUnavailable")
    if cond := _is_true(obj, "Killed"):
        return _from(cond, CANCELLED, "TrialKilled")
    if cond := _is_true(obj, "EarlyStopped"):
        return _from(cond, SUCCEEDED, "TrialEarlyStopped")
    if cond := _is_true(obj, "Succeeded"):
        return _from(cond, SUCCEEDED, "TrialSucceeded")
    return None


def _batch_job(obj: dict[str, Any]) -> Classification | None:
    if cond := _is_true(obj, "Failed"):
        return _from(cond, FAILED, "Failed")
    if cond := _is_true(obj, "Complete"):
        return _from(cond, SUCCEEDED, "Complete")
    return None  # Suspended (spec.suspend) is not terminal, as for PyTorchJob


def _pod(obj: dict[str, Any]) -> Classification | None:
    status = obj.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return Classification(
            SUCCEEDED, str(status.get("reason") or "Succeeded"), str(status.get("message") or "")
        )
    if phase == "Failed":
        return Classification(FAILED, str(status.get("reason") or "Failed"), str(status.get("message") or ""))
    return None


def _inference_service(obj: dict[str, Any], min_generation: int | None) -> Classification | None:
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    wanted = min_generation
    if wanted is None and observed is not None:
        wanted = (obj.get("metadata") or {}).get("generation")
    if wanted is not None and (observed is None or int(observed) < int(wanted)):
        return None  # the status still describes an older spec
    model_status = status.get("modelStatus") or {}
    transition = model_status.get("transitionStatus")
    if transition in _ISVC_FAILED_TRANSITIONS:
        info = model_status.get("lastFailureInfo") or {}
        return Classification(FAILED, str(info.get("reason") or transition), str(info.get("message") or ""))
    ready = condition(obj, "Ready")
    if ready is None:
        return None
    if str(ready.get("status")) == "True":
        return Classification(SUCCEEDED, str(ready.get("reason") or "Ready"), str(ready.get("message") or ""))
    reason = str(ready.get("reason") or "")
    if str(ready.get("status")) == "False" and reason not in _ISVC_PROGRESS_REASONS:
        return Classification(FAILED, reason, str(ready.get("message") or ""))
    return None


_HANDLERS: dict[str, Any] = {
    "PyTorchJob": _v1_job,
    "TFJob": _v1_job,
    "XGBoostJob": _v1_job,
    "JAXJob": _v1_job,
    "MPIJob": _v1_job,
    "TrainJob": _trainjob,
    "Experiment": _experiment,
    "Trial": _trial,
    "Job": _batch_job,
    "Pod": _pod,
}
