"""Experiment and Trial status as Katib v0.19's controllers write them (pure; see LIFECYCLE notes).

``set_condition``: the same type with the same status and reason is a no-op; otherwise the old entry of
that type is removed and the new one appended (lastTransitionTime kept when the status is unchanged),
so the list order is the order of last change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubeflow_bridge.local.katib.metrics import UNAVAILABLE, metric_value

TRUE, FALSE = "True", "False"

EXPERIMENT_MESSAGES = {
    "ExperimentCreated": "Experiment is created",
    "ExperimentRunning": "Experiment is running",
    "ExperimentGoalReached": "Experiment has succeeded because Objective goal has reached",
    "ExperimentMaxTrialsReached": "Experiment has succeeded because max trial count has reached",
    "ExperimentSuggestionEndReached": "Experiment has succeeded because suggestion service has reached the end",
    "ExperimentFailed": "Experiment has failed because max failed count has reached",
}

_LISTS = {
    "pending": ("trialsPending", "pendingTrialList"),
    "running": ("trialsRunning", "runningTrialList"),
    "succeeded": ("trialsSucceeded", "succeededTrialList"),
    "failed": ("trialsFailed", "failedTrialList"),
    "killed": ("trialsKilled", "killedTrialList"),
    "earlyStopped": ("trialsEarlyStopped", "earlyStoppedTrialList"),
    "metricsUnavailable": ("trialMetricsUnavailable", "metricsUnavailableTrialList"),
}


def now_rfc3339() -> str:
    """Current UTC time as Kubernetes writes it (seconds precision, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == ctype:
            return cond  # type: ignore[no-any-return]
    return None


def has_true(status: dict[str, Any], ctype: str) -> bool:
    cond = get_condition(status, ctype)
    return cond is not None and cond.get("status") == TRUE


def set_condition(
    status: dict[str, Any], ctype: str, cstatus: str, reason: str, message: str, now: str | None = None
) -> None:
    """Katib's setCondition (see the module docstring)."""
    now = now or now_rfc3339()
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    old = get_condition(status, ctype)
    if old is not None and old.get("status") == cstatus and old.get("reason") == reason:
        return
    transition = old["lastTransitionTime"] if old is not None and old.get("status") == cstatus else now
    if old is not None:
        conditions.remove(old)
    conditions.append(
        {
            "type": ctype,
            "status": cstatus,
            "reason": reason,
            "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": transition,
        }
    )


# ---------------------------------------------------------------- Trial


def trial_state(trial: dict[str, Any]) -> str:
    """The trial's state in Katib's classification order (killed, failed, metricsUnavailable, succeeded,
    earlyStopped, running, pending)."""
    status = trial.get("status") or {}
    for ctype, state in (
        ("Killed", "killed"),
        ("Failed", "failed"),
        ("MetricsUnavailable", "metricsUnavailable"),
        ("Succeeded", "succeeded"),
        ("EarlyStopped", "earlyStopped"),
        ("Running", "running"),
    ):
        if has_true(status, ctype):
            return state
    return "pending"


def trial_is_completed(trial: dict[str, Any]) -> bool:
    return trial_state(trial) not in ("pending", "running")


def mark_trial_created(status: dict[str, Any], now: str | None = None) -> None:
    now = now or now_rfc3339()
    status.setdefault("startTime", now)
    set_condition(status, "Created", TRUE, "TrialCreated", "Trial is created", now)


def mark_trial_running(status: dict[str, Any], now: str | None = None) -> None:
    set_condition(status, "Running", TRUE, "TrialRunning", "Trial is running", now)


def _with_job(reason: str, message: str, job_reason: str, job_message: str) -> tuple[str, str]:
    if job_reason:
        reason = f"{reason}. Job reason: {job_reason}"
    if job_message:
        message = f"{message}. Job message: {job_message}"
    return reason, message


def _finish_trial(status: dict[str, Any], ctype: str, reason: str, message: str, now: str | None) -> None:
    now = now or now_rfc3339()
    running = get_condition(status, "Running")
    if running is not None:
        set_condition(status, "Running", FALSE, running["reason"], running["message"], now)
    set_condition(status, ctype, TRUE, reason, message, now)
    status["completionTime"] = now


def mark_trial_succeeded(
    status: dict[str, Any], job_reason: str = "", job_message: str = "", now: str | None = None
) -> None:
    reason, message = _with_job("TrialSucceeded", "Trial has succeeded", job_reason, job_message)
    _finish_trial(status, "Succeeded", reason, message, now)


def mark_trial_metrics_unavailable(
    status: dict[str, Any], job_reason: str = "", job_message: str = "", now: str | None = None
) -> None:
    reason, message = _with_job("MetricsUnavailable", "Metrics are not available", job_reason, job_message)
    _finish_trial(status, "MetricsUnavailable", reason, message, now)


def mark_trial_failed(
    status: dict[str, Any], job_reason: str = "", job_message: str = "", now: str | None = None
) -> None:
    reason, message = _with_job("TrialFailed", "Trial has failed", job_reason, job_message)
    _finish_trial(status, "Failed", reason, message, now)


def mark_trial_early_stopped(status: dict[str, Any], now: str | None = None) -> None:
    _finish_trial(status, "EarlyStopped", "TrialEarlyStopped", "Trial is early stopped", now)


def mark_trial_killed(status: dict[str, Any], now: str | None = None) -> None:
    _finish_trial(status, "Killed", "TrialKilled", "Trial is killed", now)


# ---------------------------------------------------------------- Experiment


def mark_experiment_created(status: dict[str, Any], now: str | None = None) -> None:
    now = now or now_rfc3339()
    status.setdefault("startTime", now)
    set_condition(status, "Created", TRUE, "ExperimentCreated", EXPERIMENT_MESSAGES["ExperimentCreated"], now)


def _experiment_finish(status: dict[str, Any], ctype: str, reason: str, now: str) -> None:
    running = get_condition(status, "Running")
    if running is not None:
        set_condition(status, "Running", FALSE, running["reason"], running["message"], now)
    set_condition(status, ctype, TRUE, reason, EXPERIMENT_MESSAGES[reason], now)
    status["completionTime"] = now


def experiment_is_completed(experiment: dict[str, Any]) -> bool:
    status = experiment.get("status") or {}
    return has_true(status, "Succeeded") or has_true(status, "Failed")


def summarize_trials(experiment: dict[str, Any], trials: list[dict[str, Any]]) -> bool:
    """Recompute counters, trial lists and currentOptimalTrial into ``experiment["status"]``.

    Returns:
        Whether the objective goal is reached by the best trial.
    """
    spec = experiment["spec"]
    objective = spec["objective"]
    status = experiment.setdefault("status", {})
    name = objective["objectiveMetricName"]
    strategy = next(
        (s["value"] for s in objective.get("metricStrategies") or [] if s.get("name") == name),
        "min" if objective.get("type") == "minimize" else "max",
    )
    goal = objective.get("goal")
    minimize = objective.get("type") == "minimize"
    for counter, listname in _LISTS.values():
        status.pop(counter, None)
        status.pop(listname, None)
    counts: dict[str, int] = dict.fromkeys(_LISTS, 0)
    best_index, best_value, goal_reached = -1, 0.0, False
    for index, trial in enumerate(trials):
        state = trial_state(trial)
        counts[state] += 1
        status.setdefault(_LISTS[state][1], []).append(trial["metadata"]["name"])
        value_text = metric_value((trial.get("status") or {}).get("observation"), name, strategy)
        if value_text is None or value_text == UNAVAILABLE:
            continue  # a MetricsUnavailable trial is never the best one
        try:
            value = float(value_text)
        except ValueError:
            best_index = index  # a non-numeric objective: the latest trial wins
            continue
        if best_index == -1:
            best_index, best_value = index, value
        if (value < best_value) if minimize else (value > best_value):
            best_index, best_value = index, value
        if goal is not None and ((best_value <= float(goal)) if minimize else (best_value >= float(goal))):
            goal_reached = True
    for state, count in counts.items():
        if count:
            status[_LISTS[state][0]] = count
    total = sum(counts.values())
    if total:
        status["trials"] = total
    else:
        status.pop("trials", None)
    optimal: dict[str, Any] = {
        "bestTrialName": "",
        "observation": {"metrics": None},
        "parameterAssignments": None,
    }
    if best_index != -1:
        best = trials[best_index]
        optimal = {
            "bestTrialName": best["metadata"]["name"],
            "parameterAssignments": [dict(a) for a in best["spec"].get("parameterAssignments") or []],
            "observation": {
                "metrics": [dict(m) for m in (best["status"].get("observation") or {}).get("metrics") or []]
            },
        }
    status["currentOptimalTrial"] = optimal
    return goal_reached


def update_experiment_condition(
    experiment: dict[str, Any], goal_reached: bool, suggestion_done: bool, now: str | None = None
) -> None:
    """Katib's UpdateExperimentStatusCondition: goal -> maxFailed -> maxTrials -> suggestion end -> running."""
    now = now or now_rfc3339()
    spec = experiment["spec"]
    status = experiment.setdefault("status", {})
    completed = sum(
        status.get(k, 0)
        for k in (
            "trialsSucceeded",
            "trialsFailed",
            "trialsKilled",
            "trialsEarlyStopped",
            "trialMetricsUnavailable",
        )
    )
    failed = status.get("trialsFailed", 0) + status.get("trialMetricsUnavailable", 0)
    active = status.get("trialsPending", 0) + status.get("trialsRunning", 0)
    if goal_reached:
        _experiment_finish(status, "Succeeded", "ExperimentGoalReached", now)
    elif spec.get("maxFailedTrialCount") is not None and failed >= spec["maxFailedTrialCount"] and failed > 0:
        _experiment_finish(status, "Failed", "ExperimentFailed", now)
    elif spec.get("maxTrialCount") is not None and completed >= spec["maxTrialCount"]:
        _experiment_finish(status, "Succeeded", "ExperimentMaxTrialsReached", now)
    elif suggestion_done and active == 0:
        _experiment_finish(status, "Succeeded", "ExperimentSuggestionEndReached", now)
    else:
        set_condition(
            status, "Running", TRUE, "ExperimentRunning", EXPERIMENT_MESSAGES["ExperimentRunning"], now
        )


def experiment_would_end(experiment: dict[str, Any], trials: list[dict[str, Any]]) -> bool:
    """Whether Katib's controller, seeing these trials, completes the experiment (goal, maxFailed or
    maxTrials): then no new trial may start. Katib's controller decides this in the same reconcile that
    creates trials; the local suggestion process creates them, so it asks before each one."""
    if experiment_is_completed(experiment):
        return True
    probe: dict[str, Any] = {"spec": experiment["spec"], "status": {}}
    update_experiment_status(probe, trials)
    return experiment_is_completed(probe)


def update_experiment_status(
    experiment: dict[str, Any],
    trials: list[dict[str, Any]],
    suggestion_done: bool = False,
    now: str | None = None,
) -> None:
    """One reconcile of a started experiment: summary always, conditions only while not completed."""
    goal_reached = summarize_trials(experiment, trials)
    if not experiment_is_completed(experiment):
        update_experiment_condition(experiment, goal_reached, suggestion_done, now)
