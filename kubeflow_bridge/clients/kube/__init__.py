"""Custom-object client for Kubeflow resources: the public facade.

``KubeflowObjectClient`` (sync, on ``kubernetes``) and ``AsyncKubeflowObjectClient`` (async, on
``kubernetes_asyncio``; its ``wait`` shares one watch per (API server, kind, namespace) across the
process) create-or-reattach, read, patch, delete, wait for terminal states, cancel and read job logs.
Neither Kubernetes client is imported until a client is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubeflow_bridge.clients._retry import RetryPolicy
from kubeflow_bridge.clients.kube._common import CreateResult, IfExists, WaitOutcome, created_object_outcome
from kubeflow_bridge.clients.kube._errors import AlreadyExistsError, IdentityMismatchError, KubeApiError
from kubeflow_bridge.clients.kube._kinds import (
    ALL_KINDS,
    CLUSTERTRAININGRUNTIME,
    EXPERIMENT,
    INFERENCESERVICE,
    JAXJOB,
    JOB,
    MPIJOB,
    POD,
    PYTORCHJOB,
    TFJOB,
    TRAININGRUNTIME,
    TRAINJOB,
    TRIAL,
    V1_JOB_KINDS,
    XGBOOSTJOB,
    ResourceKind,
    kind_named,
)
from kubeflow_bridge.resources.names import IDENTITY_LABEL

if TYPE_CHECKING:
    from kubeflow_bridge.clients.kube._async import AsyncKubeflowObjectClient
    from kubeflow_bridge.clients.kube._sync import KubeflowObjectClient

__all__ = [
    "ALL_KINDS",
    "CLUSTERTRAININGRUNTIME",
    "EXPERIMENT",
    "IDENTITY_LABEL",
    "INFERENCESERVICE",
    "JAXJOB",
    "JOB",
    "MPIJOB",
    "POD",
    "PYTORCHJOB",
    "TFJOB",
    "TRAININGRUNTIME",
    "TRAINJOB",
    "TRIAL",
    "V1_JOB_KINDS",
    "XGBOOSTJOB",
    "AlreadyExistsError",
    "AsyncKubeflowObjectClient",
    "CreateResult",
    "IdentityMismatchError",
    "IfExists",
    "KubeApiError",
    "KubeflowObjectClient",
    "ResourceKind",
    "RetryPolicy",
    "WaitOutcome",
    "created_object_outcome",
    "kind_named",
]


def __getattr__(name: str) -> Any:
    # The client classes import kubernetes / kubernetes_asyncio; load them only when asked for.
    if name == "KubeflowObjectClient":
        from kubeflow_bridge.clients.kube._sync import KubeflowObjectClient

        return KubeflowObjectClient
    if name == "AsyncKubeflowObjectClient":
        from kubeflow_bridge.clients.kube._async import AsyncKubeflowObjectClient

        return AsyncKubeflowObjectClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
