"""The records the comparison works on: one run of the workflow per orchestrator, step by step.

Collectors (Airflow, KFP) turn what each orchestrator stored into these records; everything after
that (critical path, overhead, outcome equality, the report) is pure code over them, so it is tested
with hand-made records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Canonical step states. Orchestrators' own names are mapped onto these by :func:`normalize_state`.
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
UPSTREAM_FAILED = "upstream_failed"
CANCELLED = "cancelled"
RUNNING = "running"
PENDING = "pending"
UNKNOWN = "unknown"

_STATE_ALIASES = {
    "success": SUCCEEDED,
    "succeeded": SUCCEEDED,
    "cached": SUCCEEDED,
    "failed": FAILED,
    "failure": FAILED,
    "error": FAILED,
    "skipped": SKIPPED,
    "upstream_failed": UPSTREAM_FAILED,
    "canceled": CANCELLED,
    "cancelled": CANCELLED,
    "canceling": CANCELLED,
    "removed": CANCELLED,
    "running": RUNNING,
    "deferred": RUNNING,
    "up_for_retry": RUNNING,
    "up_for_reschedule": RUNNING,
    "restarting": RUNNING,
    "queued": PENDING,
    "scheduled": PENDING,
    "pending": PENDING,
    "none": PENDING,
    "runtime_state_unspecified": UNKNOWN,
}


def normalize_state(state: object) -> str:
    """Map an Airflow task-instance state or a KFP task state onto the canonical names above.

    Args:
        state: ``"success"``, ``"SUCCEEDED"``, ``TaskInstanceState.FAILED``, ``None`` (not started)...
    """
    if state is None:
        return PENDING
    text = str(getattr(state, "value", state)).strip().lower()
    return _STATE_ALIASES.get(text, text if text else UNKNOWN)


def parse_time(value: object) -> datetime | None:
    """Parse an RFC 3339 string, epoch seconds or a datetime into an aware UTC datetime (None stays None).

    KFP reports unset times as ``1970-01-01T00:00:00Z``; those become None too.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float):
        parsed = datetime.fromtimestamp(float(value), tz=UTC)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"cannot parse time {value!r}: use RFC 3339, e.g. 2026-01-02T03:04:05Z") from exc
    else:
        raise ValueError(f"cannot parse time {value!r} of type {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.timestamp() <= 0:
        return None
    return parsed.astimezone(UTC)


def _format_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class StepRecord:
    """One step of one orchestrator's run.

    Attributes:
        step: Canonical step name (``ingest``, ``preprocess``, ``tune``, ``train``, ...).
        start: When the orchestrator started the step (None if it never ran).
        end: When the step finished (None if it never ran or still runs).
        state: Canonical state (see :func:`normalize_state`).
        compute_seconds: Time spent in the trainer's own work inside the step (its TRAINER_SUMMARY),
            None when unknown; unknown compute counts as zero on the critical path and is flagged.
        error: The error message of a failed step.
        upstream: Names of the steps this one depends on; None means "unknown, infer from times".
    """

    step: str
    start: datetime | None
    end: datetime | None
    state: str
    compute_seconds: float | None = None
    error: str | None = None
    upstream: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.step:
            raise ValueError("a step record needs a step name")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"step {self.step!r} ends ({self.end}) before it starts ({self.start})")
        if self.compute_seconds is not None and (
            not math.isfinite(self.compute_seconds) or self.compute_seconds < 0
        ):
            raise ValueError(f"step {self.step!r}: compute_seconds must be >= 0, got {self.compute_seconds}")

    @property
    def duration_seconds(self) -> float | None:
        """Wall time of the step as the orchestrator saw it (None if it has no start or end)."""
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as RFC 3339 strings)."""
        return {
            "step": self.step,
            "start": _format_time(self.start),
            "end": _format_time(self.end),
            "state": self.state,
            "compute_seconds": self.compute_seconds,
            "error": self.error,
            "upstream": None if self.upstream is None else list(self.upstream),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        """Build a record from a dict such as :meth:`to_dict` writes (states and times are normalized)."""
        if "step" not in data:
            raise ValueError(f"a step record needs 'step'; got keys {sorted(data)}")
        compute = data.get("compute_seconds")
        upstream = data.get("upstream")
        return cls(
            step=str(data["step"]),
            start=parse_time(data.get("start")),
            end=parse_time(data.get("end")),
            state=normalize_state(data.get("state")),
            compute_seconds=None if compute is None else float(compute),
            error=data.get("error") or None,
            upstream=None if upstream is None else tuple(str(u) for u in upstream),
        )


@dataclass(frozen=True)
class Outcome:
    """What the run produced, compared across orchestrators.

    Attributes:
        best_params: The tuned hyperparameters the model was trained with (None if tuning did not finish).
        f_score: The composite F-score of the evaluated model (None if evaluation did not finish).
        deployed: Whether the model was deployed (None if the run did not get that far).
        training_kind: The kind of job that trained it (``TrainJob`` on Kubeflow Trainer v2,
            ``PyTorchJob`` on the Training Operator v1; None if unknown). Reported, not compared.
    """

    best_params: dict[str, Any] | None = None
    f_score: float | None = None
    deployed: bool | None = None
    training_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "best_params": self.best_params,
            "f_score": self.f_score,
            "deployed": self.deployed,
            "training_kind": self.training_kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Outcome:
        """Build an outcome from a dict with any of ``best_params``, ``f_score``, ``deployed``,
        ``training_kind``."""
        data = data or {}
        f_score = data.get("f_score")
        deployed = data.get("deployed")
        return cls(
            best_params=None if data.get("best_params") is None else dict(data["best_params"]),
            f_score=None if f_score is None else float(f_score),
            deployed=None if deployed is None else bool(deployed),
            training_kind=data.get("training_kind") or None,
        )


@dataclass(frozen=True)
class OrchestratorRun:
    """One orchestrator's run of the workflow.

    Attributes:
        orchestrator: ``"airflow"`` or ``"kfp"`` (any label works; it names the column in the report).
        run_id: The orchestrator's run id.
        steps: The step records, in the order to show them.
        outcome: What the run produced.
        start: When the run started (default: the earliest step start).
        end: When the run ended (default: the latest step end).
        state: The run's overall state (canonical).
        params: The run's inputs (an Airflow DAG run's conf, a KFP run's parameters).
    """

    orchestrator: str
    run_id: str
    steps: list[StepRecord]
    outcome: Outcome = field(default_factory=Outcome)
    start: datetime | None = None
    end: datetime | None = None
    state: str = UNKNOWN
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [s.step for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{self.orchestrator} run {self.run_id}: duplicate steps {duplicates}")

    def step(self, name: str) -> StepRecord | None:
        """The record of step ``name``, or None."""
        return next((s for s in self.steps if s.step == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, readable back by :meth:`from_dict`."""
        return {
            "orchestrator": self.orchestrator,
            "run_id": self.run_id,
            "state": self.state,
            "start": _format_time(self.start),
            "end": _format_time(self.end),
            "steps": [s.to_dict() for s in self.steps],
            "outcome": self.outcome.to_dict(),
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrchestratorRun:
        """Build a run from a dict such as :meth:`to_dict` writes."""
        missing = [k for k in ("orchestrator", "steps") if k not in data]
        if missing:
            raise ValueError(f"an orchestrator run needs {missing}; got keys {sorted(data)}")
        return cls(
            orchestrator=str(data["orchestrator"]),
            run_id=str(data.get("run_id", "")),
            steps=[StepRecord.from_dict(s) for s in data["steps"]],
            outcome=Outcome.from_dict(data.get("outcome")),
            start=parse_time(data.get("start")),
            end=parse_time(data.get("end")),
            state=normalize_state(data.get("state", UNKNOWN)),
            params=dict(data.get("params") or {}),
        )
