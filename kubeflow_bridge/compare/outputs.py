"""Read compute seconds and the run's outcome out of the small outputs both orchestrators keep.

Both the Airflow DAG (task return values in XCom) and the KFP pipeline (output parameters) expose the
same names, so one reader serves both:

- every trainer step: ``compute_seconds`` (from the trainer's ``TRAINER_SUMMARY``), at the top level or
  under ``summary``;
- ``tune``: ``best_params`` (or ``parameters``), a dict or its JSON text;
- ``evaluate``: ``f_score``;
- ``train``: ``kind``, the training job's (TrainJob or PyTorchJob);
- ``deploy``: ``deployed`` (else: the deploy step succeeded -> True, skipped -> False);
- ``summary`` (Airflow's final task) may carry all three at once, and wins where it does.
"""

from __future__ import annotations

import json
from typing import Any

from kubeflow_bridge.compare.model import FAILED, SKIPPED, SUCCEEDED, UPSTREAM_FAILED, Outcome


def as_mapping(value: Any) -> dict[str, Any]:
    """A task output as a dict: dicts as they are, JSON object text decoded, anything else empty."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


def compute_seconds_from_output(output: Any) -> float | None:
    """The trainer-measured compute seconds in a task output, or None when it has none."""
    data = as_mapping(output)
    for candidate in (data, as_mapping(data.get("summary")), as_mapping(data.get("trainer_summary"))):
        value = candidate.get("compute_seconds")
        if value is not None:
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return None
            return seconds if seconds >= 0 else None
    return None


def _params(value: Any) -> dict[str, Any] | None:
    data = as_mapping(value)
    return data or None


def outcome_from_outputs(outputs: dict[str, Any], states: dict[str, str]) -> Outcome:
    """Build the run's outcome from per-step outputs and canonical states.

    Args:
        outputs: ``{step: output}`` where output is a dict or JSON text.
        states: ``{step: canonical state}``.
    """
    tune = as_mapping(outputs.get("tune"))
    evaluate = as_mapping(outputs.get("evaluate"))
    deploy = as_mapping(outputs.get("deploy"))
    summary = as_mapping(outputs.get("summary"))

    best_params = _params(summary.get("best_params")) or _params(
        tune.get("best_params", tune.get("parameters"))
    )
    f_score_raw = summary.get("f_score", evaluate.get("f_score"))
    f_score = None
    if f_score_raw is not None:
        try:
            f_score = float(f_score_raw)
        except (TypeError, ValueError):
            f_score = None

    deployed: bool | None
    if "deployed" in summary:
        deployed = _as_bool(summary["deployed"])
    elif "deployed" in deploy:
        deployed = _as_bool(deploy["deployed"])
    else:
        deploy_state = states.get("deploy")
        if deploy_state == SUCCEEDED:
            deployed = True
        elif deploy_state in (SKIPPED, FAILED, UPSTREAM_FAILED):
            deployed = False
        else:
            deployed = None
    training_kind = as_mapping(outputs.get("train")).get("kind") or None
    return Outcome(best_params=best_params, f_score=f_score, deployed=deployed, training_kind=training_kind)


def _as_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)
