"""Experiment admission for the local runtime: Katib's defaulting and validating webhooks, plus what
this runtime can run.

The admission chain calls :func:`validate_experiment` with the object about to be stored; like
Katib's mutating webhook, it first fills Katib's defaults into that object (in place), then validates.
"""

from __future__ import annotations

from typing import Any

from kubeflow_bridge.local.katib.search import local_problems
from kubeflow_bridge.local.katib.template import DEFAULT_CONDITIONS, DEFAULT_PRIMARY_POD_LABELS_KUBEFLOW_JOB
from kubeflow_bridge.resources.errors import FieldCause, ValidationError
from kubeflow_bridge.resources.katib import validate_experiment as validate_katib_experiment

KUBEFLOW_JOB_KINDS = ("PyTorchJob", "TFJob", "XGBoostJob", "MPIJob", "PaddleJob", "JAXJob")


def apply_defaults(obj: dict[str, Any]) -> None:
    """Katib v0.19's Experiment defaults (experiment_defaults.go), in place; malformed parts are left for
    validation to report."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("parallelTrialCount", 3)
    spec.setdefault("resumePolicy", "Never")
    objective = spec.get("objective")
    if isinstance(objective, dict) and isinstance(objective.get("objectiveMetricName"), str):
        strategy = {"minimize": "min", "maximize": "max"}.get(str(objective.get("type")))
        strategies = objective.get("metricStrategies")
        if strategy and (strategies is None or isinstance(strategies, list)):
            have = {s.get("name") for s in strategies or [] if isinstance(s, dict)}
            names = [objective["objectiveMetricName"], *(objective.get("additionalMetricNames") or [])]
            added = [{"name": n, "value": strategy} for n in names if isinstance(n, str) and n not in have]
            objective["metricStrategies"] = [*(strategies or []), *added]
    collector = spec.setdefault("metricsCollectorSpec", {})
    if isinstance(collector, dict):
        collector.setdefault("collector", {"kind": "StdOut"})
    template = spec.get("trialTemplate")
    if isinstance(template, dict) and isinstance(template.get("trialSpec"), dict):
        kind = template["trialSpec"].get("kind")
        if kind == "Job" or kind in KUBEFLOW_JOB_KINDS:
            success, failure = DEFAULT_CONDITIONS["Job" if kind == "Job" else "PyTorchJob"]
            template.setdefault("successCondition", success)
            template.setdefault("failureCondition", failure)
        if kind in KUBEFLOW_JOB_KINDS:
            template.setdefault("primaryPodLabels", dict(DEFAULT_PRIMARY_POD_LABELS_KUBEFLOW_JOB))


EDITABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
RESTARTABLE_POLICIES = ("LongRunning", "FromVolume")


def update_problems(obj: dict[str, Any], old: dict[str, Any]) -> list[FieldCause]:
    """Katib's rules for editing an Experiment (validator.go, oldInst != nil)."""
    spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
    if spec == old_spec:
        return []
    causes: list[FieldCause] = []
    status = old.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
    completed = any(c.get("type") in ("Succeeded", "Failed") for c in conditions)
    restartable = (
        any(
            c.get("type") == "Succeeded" and c.get("reason") == "ExperimentMaxTrialsReached"
            for c in conditions
        )
        and old_spec.get("resumePolicy") in RESTARTABLE_POLICIES
    )
    if completed and not restartable:
        causes.append(
            FieldCause(
                "spec.resumePolicy",
                f"Invalid value: {spec.get('resumePolicy')!r}: Experiment can be restarted if it is in succeeded state "
                "by reaching max trials and spec.resumePolicy = LongRunning or spec.resumePolicy = FromVolume, "
                "when experiment is completed",
            )
        )
    max_trials = spec.get("maxTrialCount")
    if isinstance(max_trials, int) and max_trials <= int(status.get("trials") or 0):
        causes.append(
            FieldCause(
                "spec.maxTrialCount", f"Invalid value: {max_trials}: must be greater than status.trials count"
            )
        )
    rest = {k: v for k, v in spec.items() if k not in EDITABLE}
    if rest != {k: v for k, v in old_spec.items() if k not in EDITABLE}:
        causes.append(
            FieldCause(
                "spec",
                "Forbidden: only spec.parallelTrialCount, spec.maxTrialCount and spec.maxFailedTrialCount are editable",
            )
        )
    return causes


def validate_experiment(obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Katib's defaults (in place), Katib's webhook checks (with its edit rules when `old` is the stored
    Experiment), then the local runtime's limits (algorithms, collector kinds, grid steps).

    Raises:
        ValidationError: every problem found, each saying what to fix.
    """
    apply_defaults(obj)
    causes: list[FieldCause] = update_problems(obj, old) if old is not None else []
    try:
        validate_katib_experiment(obj)
    except ValidationError as exc:
        causes.extend(exc.causes)
    if not causes:
        causes.extend(FieldCause(field, message) for field, message in local_problems(obj))
    if causes:
        name = str((obj.get("metadata") or {}).get("name") or "")
        raise ValidationError("Experiment", name, causes)
