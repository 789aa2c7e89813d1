"""Data types and pure helpers shared by the sync and async Kubernetes clients."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubeflow_bridge.clients.kube._errors import AlreadyExistsError, IdentityMismatchError
from kubeflow_bridge.clients.kube._kinds import (
    EXPERIMENT,
    JOB,
    POD,
    PYTORCHJOB,
    TRAINJOB,
    TRIAL,
    V1_JOB_KINDS,
    ResourceKind,
)
from kubeflow_bridge.clients.kube.status import classify
from kubeflow_bridge.resources.names import IDENTITY_LABEL

#: Deployment/ReplicaSet-style suspend fields, by kind; kinds absent here are cancelled by deletion.
SUSPEND_PATCHES: dict[str, dict[str, Any]] = {
    **{kind.kind: {"spec": {"runPolicy": {"suspend": True}}} for kind in V1_JOB_KINDS},
    "Job": {"spec": {"suspend": True}},
    "TrainJob": {"spec": {"suspend": True}},
}


class IfExists(str, Enum):  # noqa: UP042 - str mixin keeps Python 3.10 working
    """What ``create`` does when an object with the same name exists.

    REATTACH: return the existing object when its identity label equals ours (a retry of the same task).
    FAIL: raise :class:`AlreadyExistsError`.
    REPLACE: delete the existing object (same identity only), wait until it is gone, create ours.
    """

    REATTACH = "reattach"
    FAIL = "fail"
    REPLACE = "replace"


@dataclass(frozen=True)
class CreateResult:
    """What ``create`` did. ``created=False`` means an existing object was reattached."""

    obj: dict[str, Any]
    created: bool


@dataclass(frozen=True)
class WaitOutcome:
    """How a wait ended.

    Args:
        state: ``succeeded``, ``failed``, ``cancelled`` (incl. deleted while waiting), ``timeout`` or ``error``.
        reason: The controller's reason, ``Deleted``, ``Timeout`` or the API error reason.
        message: A human-readable explanation.
        obj: The last version of the object seen (None when it was never read).
    """

    state: str
    reason: str
    message: str
    obj: dict[str, Any] | None

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


def object_name(body: dict[str, Any]) -> str:
    name = (body.get("metadata") or {}).get("name")
    if not name:
        raise ValueError(
            "body.metadata.name is required: the bridge creates objects under deterministic names"
        )
    return str(name)


def identity_of(obj: dict[str, Any] | None) -> str | None:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    value = labels.get(IDENTITY_LABEL)
    return str(value) if value else None


def with_kind(kind: ResourceKind, body: dict[str, Any]) -> dict[str, Any]:
    """Fill in apiVersion and kind when the body lacks them (the API requires both)."""
    out = dict(body)
    out.setdefault("apiVersion", kind.api_version)
    out.setdefault("kind", kind.kind)
    return out


def resolve_conflict(
    kind: ResourceKind, body: dict[str, Any], existing: dict[str, Any], mode: IfExists, namespace: str
) -> bool:
    """Decide what to do after a 409: True = reattach, False = replace; raises on fail/mismatch."""
    name = object_name(body)
    ours, theirs = identity_of(body), identity_of(existing)
    where = f'{kind.kind} "{name}" in namespace "{namespace}"'
    if mode is IfExists.FAIL:
        raise AlreadyExistsError(
            409,
            "AlreadyExists",
            f"{where} already exists (if_exists=fail); delete it or choose if_exists=reattach",
        )
    if ours is None or ours != theirs:
        raise IdentityMismatchError(
            409,
            "AlreadyExists",
            f"{where} already exists but was not created by this task (identity label {IDENTITY_LABEL}="
            f"{theirs!r}, ours {ours!r}); refusing to {mode.value} it. Delete it, or give this task another name",
        )
    return mode is IfExists.REATTACH


def outcome_of(
    kind: ResourceKind, obj: dict[str, Any] | None, min_generation: int | None
) -> WaitOutcome | None:
    verdict = classify(kind, obj, min_generation=min_generation)
    if verdict is None:
        return None
    return WaitOutcome(verdict.state, verdict.reason, verdict.message, obj)


def not_found_outcome(kind: ResourceKind, name: str, namespace: str) -> WaitOutcome:
    """A wait for an object that was never seen: an error, not a cancellation (nothing was deleted)."""
    return WaitOutcome(
        "error", "NotFound", f'{kind.kind} "{name}" not found in namespace "{namespace}"', None
    )


def created_object_outcome(outcome: WaitOutcome) -> WaitOutcome:
    """How a wait ended for an object the caller created: not found then means deleted, i.e. cancelled."""
    if outcome.state == "error" and outcome.reason == "NotFound":
        return WaitOutcome("cancelled", "Deleted", f"{outcome.message}: it was deleted", outcome.obj)
    return outcome


def deleted_outcome(kind: ResourceKind, name: str, obj: dict[str, Any] | None) -> WaitOutcome:
    return WaitOutcome("cancelled", "Deleted", f'{kind.kind} "{name}" was deleted before it finished', obj)


def log_selectors(kind: ResourceKind, name: str, role: str) -> list[str]:
    """Label selectors, in order of preference, that find the pods of a job's ``role``.

    ``role``: ``master`` (the training operator's job-role=master; a TrainJob's node 0), ``worker`` (a
    TrainJob's other nodes), or ``all``.
    """
    if kind == TRAINJOB:  # JobSet's labels on the trainer nodes
        base = f"jobset.sigs.k8s.io/jobset-name={name},jobset.sigs.k8s.io/replicatedjob-name=node"
        if role == "master":
            return [f"{base},batch.kubernetes.io/job-completion-index=0"]
        if role == "all":
            return [f"jobset.sigs.k8s.io/jobset-name={name}"]
        return [f"{base},batch.kubernetes.io/job-completion-index!=0"]
    if kind in V1_JOB_KINDS:  # the operator labels the master (a TFJob's Chief, else Worker 0)
        base = f"training.kubeflow.org/job-name={name}"
        if role == "master":
            return [
                f"{base},training.kubeflow.org/job-role=master",
                f"{base},training.kubeflow.org/replica-type=master",
            ]
        if role == "all":
            return [base]
        return [f"{base},training.kubeflow.org/replica-type={role.lower()}"]
    if kind in (JOB, TRIAL):
        # A trial's job has the trial's name: batch Jobs label pods job-name, PyTorchJobs the operator's labels.
        selectors = [f"job-name={name}", f"batch.kubernetes.io/job-name={name}"]
        if kind == TRIAL:
            selectors += log_selectors(PYTORCHJOB, name, role)
        return selectors
    if kind == EXPERIMENT:
        return [f"katib.kubeflow.org/experiment={name}"]
    if kind == POD:
        return []
    raise ValueError(f"no pod labels known for {kind.kind}; use a v1 job kind, TRAINJOB, JOB, TRIAL or POD")


def has_restarted(pod: dict[str, Any], container: str | None) -> bool:
    """True when ``container`` of ``pod`` ran before (restartPolicy OnFailure/Always): its crash is in the
    ``previous`` log, and the current log may be empty."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if container is None or status.get("name") == container:
            return int(status.get("restartCount") or 0) > 0
    return False


def join_logs(previous: str, current: str) -> str:
    """One text from a restarted container's previous and current logs."""
    if not previous:
        return current
    return f"{previous.rstrip()}\n--- container restarted ---\n{current}"


def log_container(kind: ResourceKind, pod: dict[str, Any]) -> str | None:
    """The container whose log to read: ``pytorch`` for training-operator pods, ``node`` for Trainer v2's,
    else the first one."""
    containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    for name in ("pytorch", "node"):
        if name in containers:
            return name
    return containers[0] if containers else None
