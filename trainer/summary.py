"""The ``TRAINER_SUMMARY {json}`` contract: the last stdout line of every step.

Fields: ``step``, ``status`` ("succeeded" | "failed"), ``started_at`` / ``finished_at`` (RFC 3339 UTC),
``compute_seconds`` (wall-clock seconds of the step's work), ``import_seconds`` (the process's start-up
before it: interpreter and library imports; absent when the step ran inside another program),
``outputs`` (name -> URI), ``metrics``
(name -> number), ``params`` (the step's arguments, secrets never included) and ``error`` on failure.
Orchestrators (Airflow operators, KFP components, the local runtime) parse it to get small outputs.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SUMMARY_PREFIX = "TRAINER_SUMMARY "


def utc_now() -> str:
    """The current time in RFC 3339 (UTC, seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StepSummary:
    """Collects a step's outputs and metrics and emits the summary line.

    Attributes:
        step: the step name (ingest, preprocess, train, evaluate, serve).
        outputs: output name -> URI.
        metrics: metric name -> number.
        params: arguments worth recording.
    """

    step: str
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=utc_now)
    import_seconds: float | None = None
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def as_dict(self, *, error: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "step": self.step,
            "status": "failed" if error else "succeeded",
            "started_at": self.started_at,
            "finished_at": utc_now(),
            "compute_seconds": round(time.perf_counter() - self._t0, 3),
            **({} if self.import_seconds is None else {"import_seconds": self.import_seconds}),
            "outputs": self.outputs,
            "metrics": self.metrics,
            "params": self.params,
        }
        if error:
            doc["error"] = error
        return doc

    def emit(self, summary_out: str | None = None, *, error: str | None = None) -> dict[str, Any]:
        """Print the summary line (flushing stdout first) and optionally write it to ``summary_out``."""
        doc = self.as_dict(error=error)
        if summary_out:
            from trainer.io import write_text

            write_text(summary_out, json.dumps(doc, indent=2, default=str), arg="--summary-out")
        sys.stdout.flush()
        print(SUMMARY_PREFIX + json.dumps(doc, separators=(",", ":"), default=str), flush=True)
        return doc


def parse_summary(stdout: str) -> dict[str, Any]:
    """Parse the ``TRAINER_SUMMARY`` line out of a step's stdout (the last such line wins)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(SUMMARY_PREFIX):
            parsed: dict[str, Any] = json.loads(line[len(SUMMARY_PREFIX) :])
            return parsed
    raise ValueError("no TRAINER_SUMMARY line in the output")
