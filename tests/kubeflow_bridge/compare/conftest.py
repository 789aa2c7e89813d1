"""Helpers for building synthetic step records with hand-checkable times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from kubeflow_bridge.compare.model import StepRecord

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def _rec(
    step: str,
    start: float | None,
    end: float | None,
    compute: float | None,
    *,
    state: str = "succeeded",
    upstream: tuple[str, ...] | None = None,
    error: str | None = None,
) -> StepRecord:
    """A step record whose times are seconds after T0."""
    return StepRecord(
        step=step,
        start=None if start is None else _at(start),
        end=None if end is None else _at(end),
        state=state,
        compute_seconds=compute,
        error=error,
        upstream=upstream,
    )


@pytest.fixture
def at() -> Callable[[float], datetime]:
    """T0 plus seconds."""
    return _at


@pytest.fixture
def rec() -> Callable[..., StepRecord]:
    """Factory of step records with times in seconds after T0."""
    return _rec


@pytest.fixture
def linear_steps() -> list[StepRecord]:
    """ingest -> preprocess -> tune -> train -> evaluate; compute 6+15+40+14+5 = 80 over 110 s of wall."""
    return [
        _rec("ingest", 0, 10, 6, upstream=()),
        _rec("preprocess", 12, 30, 15, upstream=("ingest",)),
        _rec("tune", 31, 80, 40, upstream=("preprocess",)),
        _rec("train", 82, 100, 14, upstream=("tune",)),
        _rec("evaluate", 101, 110, 5, upstream=("train",)),
    ]
