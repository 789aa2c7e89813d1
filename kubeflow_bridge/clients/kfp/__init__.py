"""KFP v2beta1 REST client, sync (``KfpClient``) and async (``AsyncKfpClient``), on httpx; no kfp SDK.

Covers health, experiments, runs (create, get, list with filter and page token, terminate, retry, wait),
recurring runs and pipeline upload/versions, with the auth modes of :class:`KfpAuth`. Run states map to
``pending/running/succeeded/failed/cancelled/skipped``; CANCELING counts as cancelled because KFP never
reports CANCELED for an Argo-backed run.
"""

from __future__ import annotations

from kubeflow_bridge.clients.kfp._async import AsyncKfpClient
from kubeflow_bridge.clients.kfp._auth import KfpAuth, KfpAuthError
from kubeflow_bridge.clients.kfp._base import (
    API,
    TERMINAL_RUN_STATES,
    KfpApiError,
    RunOutcome,
    equals_filter,
    run_outcome,
    run_output_artifacts,
    run_output_parameters,
    run_state,
    run_task_details,
)
from kubeflow_bridge.clients.kfp._sync import KfpClient

__all__ = [
    "API",
    "TERMINAL_RUN_STATES",
    "AsyncKfpClient",
    "KfpApiError",
    "KfpAuth",
    "KfpAuthError",
    "KfpClient",
    "RunOutcome",
    "equals_filter",
    "run_outcome",
    "run_output_artifacts",
    "run_output_parameters",
    "run_state",
    "run_task_details",
]
