"""Critical path of compute, orchestration overhead and outcome equality (pure functions).

Orchestration overhead = wall time of the run minus the critical path of compute: the longest chain
of dependent steps, each weighted by the compute time the trainer itself measured. What remains is
what the orchestrator (and the platform under it) added: scheduling, pod start-up, polling, XCom or
artifact passing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeflow_bridge.compare.model import (
    FAILED,
    PENDING,
    SKIPPED,
    UPSTREAM_FAILED,
    OrchestratorRun,
    Outcome,
    StepRecord,
)

#: Two steps whose times touch within this many seconds are treated as ordered when dependencies
#: are inferred from times (orchestrators round timestamps differently).
_TIME_SLACK_SECONDS = 1e-3


#: States of steps that did no work (Airflow still stamps skipped tasks with a start and an end).
_NEVER_RAN = (SKIPPED, UPSTREAM_FAILED, PENDING)


@dataclass(frozen=True)
class CriticalPath:
    """The longest chain of dependent steps weighted by compute seconds.

    Attributes:
        seconds: Sum of the compute seconds along the chain.
        steps: The chain, first step first.
        inferred: True when some dependencies were inferred from times (a step's ``upstream`` was None).
    """

    seconds: float
    steps: list[str]
    inferred: bool


def _predecessors(steps: list[StepRecord]) -> tuple[dict[str, list[str]], bool]:
    known = {s.step for s in steps}
    preds: dict[str, list[str]] = {}
    inferred = False
    for step in steps:
        if step.upstream is not None:
            preds[step.step] = [u for u in step.upstream if u in known and u != step.step]
            continue
        inferred = True
        # Unknown dependencies: everything that had finished when this step started came before it.
        if step.start is None:
            preds[step.step] = []
            continue
        preds[step.step] = [
            other.step
            for other in steps
            if other is not step
            and other.end is not None
            and (other.end - step.start).total_seconds() <= _TIME_SLACK_SECONDS
            and (other.start is None or other.start < step.start)
        ]
    return preds, inferred


def critical_path(steps: list[StepRecord]) -> CriticalPath:
    """Longest path through the step dependency graph, weighted by compute seconds.

    Unknown compute (None) weighs zero; steps that never ran are left out. Dependencies come from each record's ``upstream``; where that is
    None they are inferred from times (a step depends on every step that ended before it started).

    Raises:
        ValueError: The declared dependencies form a cycle.
    """
    # Steps that never ran (skipped, upstream failed) have no place on a path of work done.
    steps = [s for s in steps if s.state not in _NEVER_RAN and (s.start is not None or s.compute_seconds)]
    preds, inferred = _predecessors(steps)
    weight = {s.step: s.compute_seconds or 0.0 for s in steps}
    best: dict[str, tuple[float, list[str]]] = {}
    visiting: set[str] = set()

    def longest(name: str) -> tuple[float, list[str]]:
        if name in best:
            return best[name]
        if name in visiting:
            raise ValueError(f"step dependencies form a cycle through {name!r}; fix the upstream lists")
        visiting.add(name)
        chain_seconds, chain = 0.0, list[str]()
        for pred in preds[name]:
            seconds, path = longest(pred)
            if seconds > chain_seconds or (seconds == chain_seconds and len(path) > len(chain)):
                chain_seconds, chain = seconds, path
        visiting.discard(name)
        best[name] = (chain_seconds + weight[name], [*chain, name])
        return best[name]

    result_seconds, result_steps = 0.0, list[str]()
    for step in steps:
        seconds, path = longest(step.step)
        if seconds > result_seconds or (seconds == result_seconds and len(path) > len(result_steps)):
            result_seconds, result_steps = seconds, path
    return CriticalPath(seconds=result_seconds, steps=result_steps, inferred=inferred)


def run_window(run: OrchestratorRun) -> tuple[datetime | None, datetime | None]:
    """The run's start and end: the run's own times where known, else its steps' extremes."""
    starts = [s.start for s in run.steps if s.start is not None]
    ends = [s.end for s in run.steps if s.end is not None]
    start = run.start or (min(starts) if starts else None)
    end = run.end or (max(ends) if ends else None)
    return start, end


def wall_seconds(run: OrchestratorRun) -> float | None:
    """Wall time of the run in seconds (None when it has no start or no end)."""
    start, end = run_window(run)
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def step_overhead(step: StepRecord) -> float | None:
    """Orchestrator time inside one step: its duration minus its compute (None if either is unknown)."""
    duration = step.duration_seconds
    if duration is None or step.compute_seconds is None:
        return None
    return duration - step.compute_seconds


def _close(a: Any, b: Any, rel_tol: float, abs_tol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y, rel_tol, abs_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel_tol, abs_tol) for k in a)
    return bool(a == b)


def compare_outcomes(
    outcomes: dict[str, Outcome], *, rel_tol: float = 1e-6, abs_tol: float = 1e-9
) -> dict[str, Any]:
    """Say, field by field, whether the orchestrators' runs produced the same result.

    A field missing on any side (the run failed before producing it) is unequal, with a note naming
    the side. Numbers compare within ``rel_tol``/``abs_tol``.

    Returns:
        ``{"equal": bool, "fields": {name: {"equal": bool, "values": {orch: value}, "note": str|None}}}``;
        ``equal`` is None when there is only one run.
    """
    fields: dict[str, Any] = {}
    for name in ("best_params", "f_score", "deployed"):
        values = {orch: getattr(outcome, name) for orch, outcome in outcomes.items()}
        missing = sorted(orch for orch, value in values.items() if value is None)
        note: str | None
        if missing:
            equal, note = False, f"missing on {', '.join(missing)}"
        else:
            items = list(values.values())
            equal = all(_close(items[0], other, rel_tol, abs_tol) for other in items[1:])
            note = None if equal else "values differ"
        fields[name] = {"equal": equal, "values": values, "note": note}
    if len(outcomes) < 2:
        # One run: nothing to compare it with (the values are still reported).
        for info in fields.values():
            info["equal"], info["note"] = None, "one run only"
        return {"equal": None, "fields": fields}
    return {"equal": bool(fields) and all(f["equal"] for f in fields.values()), "fields": fields}


def summarize_run(run: OrchestratorRun) -> dict[str, Any]:
    """Everything the report says about one run, JSON-ready."""
    path = critical_path(run.steps)
    wall = wall_seconds(run)
    overhead = None if wall is None else wall - path.seconds
    start, end = run_window(run)
    steps = []
    for step in run.steps:
        entry = step.to_dict()
        entry["duration_seconds"] = step.duration_seconds
        entry["overhead_seconds"] = step_overhead(step)
        entry["offset_seconds"] = (
            None if step.start is None or start is None else (step.start - start).total_seconds()
        )
        steps.append(entry)
    return {
        "orchestrator": run.orchestrator,
        "run_id": run.run_id,
        "state": run.state,
        "start": None if start is None else start.isoformat().replace("+00:00", "Z"),
        "end": None if end is None else end.isoformat().replace("+00:00", "Z"),
        "wall_seconds": wall,
        "critical_path": {"seconds": path.seconds, "steps": path.steps, "inferred": path.inferred},
        "overhead_seconds": overhead,
        "overhead_ratio": None if overhead is None or not wall else overhead / wall,
        "compute_unknown": [
            s.step
            for s in run.steps
            if s.compute_seconds is None and s.start is not None and s.state not in _NEVER_RAN
        ],
        "failed_steps": [
            {"step": s.step, "state": s.state, "error": s.error}
            for s in run.steps
            if s.state in (FAILED, UPSTREAM_FAILED)
        ],
        "steps": steps,
        "outcome": run.outcome.to_dict(),
        "params": dict(run.params),
    }


def build_comparison(
    runs: list[OrchestratorRun], *, rel_tol: float = 1e-6, generated_at: datetime | None = None
) -> dict[str, Any]:
    """The whole comparison document (what ``reports/comparison.json`` holds).

    Args:
        runs: One run per orchestrator, in the order to show them side by side.
        rel_tol: Relative tolerance for numbers in the outcome equality.
        generated_at: Timestamp to record (default now).
    """
    if not runs:
        raise ValueError("nothing to compare: give at least one orchestrator run")
    labels = [r.orchestrator for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"each orchestrator may appear once; got {labels}")
    order: list[str] = []
    for run in runs:
        order.extend(s.step for s in run.steps if s.step not in order)
    summaries = [summarize_run(r) for r in runs]
    walls = {s["orchestrator"]: s["wall_seconds"] for s in summaries}
    return {
        "schema": "kubeflow-bridge/comparison/v1",
        "generated_at": (generated_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "steps": order,
        "runs": summaries,
        "wall_seconds": walls,
        "outcome_equality": compare_outcomes({r.orchestrator: r.outcome for r in runs}, rel_tol=rel_tol),
    }
