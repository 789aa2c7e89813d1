"""Custom-object client for Kubeflow resources (sync on ``kubernetes``, async on ``kubernetes_asyncio``)."""

from __future__ import annotations

from kubeflow_bridge.clients._kinds import (
    ALL_KINDS,
    EXPERIMENT,
    INFERENCESERVICE,
    JOB,
    POD,
    PYTORCHJOB,
    TRIAL,
    ResourceKind,
    kind_named,
)

__all__ = [
    "ALL_KINDS",
    "EXPERIMENT",
    "INFERENCESERVICE",
    "JOB",
    "POD",
    "PYTORCHJOB",
    "TRIAL",
    "ResourceKind",
    "kind_named",
]
