"""Experiment admission for the local runtime: Katib's webhook rules plus what this runtime can run."""

from __future__ import annotations

from typing import Any

from kubeflow_bridge.local.katib.search import local_problems
from kubeflow_bridge.resources.errors import FieldCause, ValidationError
from kubeflow_bridge.resources.katib import validate_experiment as validate_katib_experiment


def validate_experiment(obj: dict[str, Any]) -> None:
    """Katib's webhook checks, then the local runtime's limits (algorithms, collector kinds, grid steps).

    Raises:
        ValidationError: every problem found, each saying what to fix.
    """
    causes: list[FieldCause] = []
    try:
        validate_katib_experiment(obj)
    except ValidationError as exc:
        causes.extend(exc.causes)
    if not causes:
        causes.extend(FieldCause(field, message) for field, message in local_problems(obj))
    if causes:
        name = str((obj.get("metadata") or {}).get("name") or "")
        raise ValidationError("Experiment", name, causes)
