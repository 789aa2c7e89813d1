"""Result extraction from finished Kubeflow objects (pure; dicts in, small dataclasses out)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from kubeflow_bridge.clients.kube._kinds import (
    EXPERIMENT,
    JOB,
    PYTORCHJOB,
    TRAINJOB,
    ResourceKind,
    kind_named,
)
from kubeflow_bridge.clients.kube.status import classify

#: Lines of the failing replica's log kept in a JobOutcome.
LOG_TAIL_LINES = 30

_COUNT_KEYS = (
    "trials",
    "trialsSucceeded",
    "trialsFailed",
    "trialsKilled",
    "trialsPending",
    "trialsRunning",
    "trialsEarlyStopped",
    "trialMetricsUnavailable",
)


class NoBestTrialError(ValueError):
    """The Experiment has no trial that reported its objective metric (yet)."""


@dataclass
class BestTrial:
    """Katib's current optimal trial with typed values.

    Args:
        name: The trial's name.
        parameters: Parameter values converted from Katib's strings by the parameter types.
        objective_metric: The objective metric's name.
        objective_value: Its value by the metric strategy (min/max/latest), None if not numeric.
        metrics: Every numeric observed metric by its strategy.
        counts: The experiment's trial counters (``trials``, ``trialsSucceeded``, ...; 0 when absent).
    """

    name: str
    parameters: dict[str, int | float | str]
    objective_metric: str
    objective_value: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _to_float(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def typed_value(text: Any, parameter_type: str | None) -> int | float | str:
    """Convert one of Katib's string parameter values by its declared type.

    ``int`` -> int, ``double``/``float`` -> float, ``discrete`` -> int when integral else float,
    ``categorical``/``str`` or unknown -> str.
    """
    raw = str(text)
    ptype = (parameter_type or "").lower()
    if ptype in ("int", "integer"):
        return int(float(raw))
    if ptype in ("double", "float"):
        return float(raw)
    if ptype == "discrete":
        if re.fullmatch(r"[+-]?\d+", raw.strip()):
            return int(raw)
        number = _to_float(raw)
        return number if number is not None else raw
    return raw


def _metric_strategies(experiment: dict[str, Any]) -> dict[str, str]:
    objective = (experiment.get("spec") or {}).get("objective") or {}
    default = "min" if objective.get("type") == "minimize" else "max"
    strategies = {
        s.get("name"): str(s.get("value", default))
        for s in objective.get("metricStrategies") or []
        if s.get("name")
    }
    for name in [objective.get("objectiveMetricName"), *(objective.get("additionalMetricNames") or [])]:
        if name:
            strategies.setdefault(name, default)
    return strategies


def best_trial(experiment: dict[str, Any], parameter_types: dict[str, str] | None = None) -> BestTrial:
    """Read ``status.currentOptimalTrial`` of a Katib Experiment with typed values.

    Args:
        experiment: The Experiment object.
        parameter_types: ``{parameter: type}``; defaults to ``spec.parameters[].parameterType``.

    Raises:
        NoBestTrialError: When no trial has reported the objective metric.
    """
    spec = experiment.get("spec") or {}
    status = experiment.get("status") or {}
    name = (experiment.get("metadata") or {}).get("name", "")
    types = {
        p.get("name"): p.get("parameterType") for p in spec.get("parameters") or [] if isinstance(p, dict)
    }
    types.update(parameter_types or {})
    optimal = status.get("currentOptimalTrial") or {}
    trial_name = optimal.get("bestTrialName") or ""
    if not trial_name:
        raise NoBestTrialError(
            f'Experiment "{name}" has no best trial: no trial reported the objective metric '
            f"(trialsSucceeded={status.get('trialsSucceeded', 0)}, "
            f"trialMetricsUnavailable={status.get('trialMetricsUnavailable', 0)}); check that the trial "
            "prints 'metric=value' lines on stdout"
        )
    parameters = {
        str(a["name"]): typed_value(a.get("value"), types.get(a["name"]))
        for a in optimal.get("parameterAssignments") or []
        if isinstance(a, dict) and "name" in a
    }
    strategies = _metric_strategies(experiment)
    metrics: dict[str, float] = {}
    for metric in (optimal.get("observation") or {}).get("metrics") or []:
        mname = metric.get("name")
        if not mname:
            continue
        value = _to_float(metric.get(strategies.get(mname, "latest")))
        if value is None:  # Katib falls back to latest when min/max is "unavailable"
            value = _to_float(metric.get("latest"))
        if value is not None:
            metrics[mname] = value
    objective_metric = str((spec.get("objective") or {}).get("objectiveMetricName") or "")
    counts = {key: int(status.get(key) or 0) for key in _COUNT_KEYS}
    return BestTrial(
        name=trial_name,
        parameters=parameters,
        objective_metric=objective_metric,
        objective_value=metrics.get(objective_metric),
        metrics=metrics,
        counts=counts,
    )


@dataclass
class JobOutcome:
    """How a PyTorchJob (or batch Job / Experiment) ended.

    Args:
        name: The object's name.
        state: ``succeeded``, ``failed``, ``cancelled`` or ``running`` when not finished.
        reason: The controller's reason.
        message: The controller's message.
        replica_statuses: ``status.replicaStatuses`` (a batch Job gets ``{"Job": {...}}``).
        failed_replica: The replica type that failed (``Master``/``Worker``), else None.
        log_tail: The last lines of the failing replica's log (or the master's when none failed).
    """

    name: str
    state: str
    reason: str
    message: str
    replica_statuses: dict[str, Any]
    failed_replica: str | None
    log_tail: str


def _kind_of(obj: dict[str, Any]) -> ResourceKind:
    kind = obj.get("kind")
    if kind == "Job":
        return JOB
    if kind == "Experiment":
        return EXPERIMENT
    if kind == "TrainJob":
        return TRAINJOB
    if kind in ("TFJob", "XGBoostJob", "JAXJob", "MPIJob"):
        return kind_named(kind)
    return PYTORCHJOB


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _pick_log(logs: dict[str, str], replica: str | None, job_name: str) -> str:
    if not logs:
        return ""
    role = (replica or "master").lower()
    # pods are "<job>-<role>-<index>"; batch Job pods "<job>-<hash>"
    for pod, text in sorted(logs.items()):
        if (pod.startswith(f"{job_name}-{role}-") or pod == f"{job_name}-{role}") and (
            replica or text.strip()
        ):
            return text
    # No replica counted as failed (restartPolicy OnFailure restarts in place): the first log with text.
    for _, text in sorted(logs.items()):
        if text.strip():
            return text
    return logs[sorted(logs)[0]]


def job_outcome(job: dict[str, Any], logs: dict[str, str] | None = None) -> JobOutcome:
    """Summarise a finished job and the failing replica's last log lines.

    Args:
        job: The PyTorchJob, TrainJob or batch Job object.
        logs: ``{pod name: log text}`` as ``job_logs`` returns it.
    """
    name = (job.get("metadata") or {}).get("name", "")
    status = job.get("status") or {}
    verdict = classify(_kind_of(job), job)
    if job.get("kind") == "Job":
        replicas = {"Job": {k: status.get(k, 0) for k in ("active", "succeeded", "failed")}}
    elif job.get("kind") == "TrainJob":  # one entry per replicated job (its child Jobs' counts)
        replicas = {
            str(e.get("name")): {k: e.get(k, 0) for k in ("active", "succeeded", "failed")}
            for e in status.get("jobsStatus") or []
        }
    else:
        replicas = dict(status.get("replicaStatuses") or {})
    failed_replica = None
    for rtype in sorted(replicas, key=lambda r: (r != "Master", r)):
        if int((replicas[rtype] or {}).get("failed") or 0) > 0:
            failed_replica = rtype
            break
    if failed_replica is None and verdict is not None and verdict.state == "failed":
        # The counts can be gone (pods cleaned up, or restarted to the backoff limit); the training
        # operator's Failed or Restarting message still names the replica type ("... because 1 Master
        # replica(s) failed."): the latest such message wins.
        messages = [verdict.message or ""] + [
            str(c.get("message") or "") for c in reversed(status.get("conditions") or [])
        ]
        named = next((m for m in (re.search(r"(\w+) replica\(s\) failed", t) for t in messages) if m), None)
        failed_replica = named.group(1) if named else None
    text = _pick_log(logs or {}, failed_replica, name)
    return JobOutcome(
        name=name,
        state=verdict.state if verdict else "running",
        reason=verdict.reason if verdict else "",
        message=verdict.message if verdict else "",
        replica_statuses=replicas,
        failed_replica=failed_replica,
        log_tail=tail(text) if text else "",
    )


@dataclass
class IsvcEndpoint:
    """Where an InferenceService answers and how its traffic is split.

    Args:
        name: The InferenceService's name.
        url: ``status.url`` (external URL), None until the ingress is ready.
        ready: Whether the Ready condition is True.
        traffic: The predictor's traffic targets (``status.components.predictor.traffic``).
        latest_ready_revision: The newest revision that became ready.
        previous_rolledout_revision: The revision that served 100% before the latest rollout.
        address_url: The in-cluster URL (``status.address.url``).
        observed_generation: The generation the status describes.
    """

    name: str
    url: str | None
    ready: bool
    traffic: list[dict[str, Any]]
    latest_ready_revision: str | None
    previous_rolledout_revision: str | None
    address_url: str | None = None
    observed_generation: int | None = None

    def percent(self, *, latest: bool) -> int:
        """Traffic percent on the latest revision (``latest=True``) or on the others."""
        return sum(
            int(t.get("percent") or 0) for t in self.traffic if bool(t.get("latestRevision")) is latest
        )


def isvc_endpoint(isvc: dict[str, Any]) -> IsvcEndpoint:
    """Read an InferenceService's URL, readiness, traffic split and revisions."""
    status = isvc.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    ready = any(
        c.get("type") == "Ready" and str(c.get("status")) == "True" for c in status.get("conditions") or []
    )
    observed = status.get("observedGeneration")
    return IsvcEndpoint(
        name=(isvc.get("metadata") or {}).get("name", ""),
        url=status.get("url"),
        ready=ready,
        traffic=[dict(t) for t in predictor.get("traffic") or []],
        latest_ready_revision=predictor.get("latestReadyRevision"),
        previous_rolledout_revision=predictor.get("previousRolledoutRevision"),
        address_url=(status.get("address") or {}).get("url"),
        observed_generation=int(observed) if observed is not None else None,
    )


#: Katib's per-state trial name lists in ``Experiment.status``, and the state each stands for.
TRIAL_LISTS = {
    "succeededTrialList": "Succeeded",
    "failedTrialList": "Failed",
    "earlyStoppedTrialList": "EarlyStopped",
    "metricsUnavailableTrialList": "MetricsUnavailable",
    "killedTrialList": "Killed",
    "runningTrialList": "Running",
    "pendingTrialList": "Pending",
}


def trial_states(experiment: dict[str, Any]) -> dict[str, str]:
    """``{trial name: state}`` from an Experiment's status lists."""
    status = experiment.get("status") or {}
    return {name: state for key, state in TRIAL_LISTS.items() for name in status.get(key) or []}


def trial_table(experiment: dict[str, Any], trials: list[dict[str, Any]]) -> list[str]:
    """The experiment's trials as aligned text rows: name, state, parameters, objective (header first)."""
    objective = ((experiment.get("spec") or {}).get("objective") or {}).get(
        "objectiveMetricName", "objective"
    )
    states = trial_states(experiment)
    rows = [("trial", "state", "parameters", objective)]
    for trial in sorted(trials, key=lambda t: (t.get("metadata") or {}).get("name", "")):
        name = (trial.get("metadata") or {}).get("name", "")
        params = ", ".join(
            f"{p.get('name')}={p.get('value')}"
            for p in (trial.get("spec") or {}).get("parameterAssignments") or []
        )
        metrics = ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []
        value = next((str(m.get("latest")) for m in metrics if m.get("name") == objective), "-")
        rows.append((name, states.get(name, "-"), params, value))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
