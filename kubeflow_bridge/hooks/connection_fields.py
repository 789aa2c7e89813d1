"""The ``kubeflow`` connection's form fields (pure data: provider info reads it without importing Airflow)."""

from __future__ import annotations

from typing import Any

AUTH_MODES = ("none", "token", "sa_token_file", "dex")
DEFAULT_NAMESPACE = "kubeflow-user"
DEFAULT_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"

#: Connection form fields (``conn-fields`` in provider info; stored in the connection's extra).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "dashboard_url": {
        "label": "Kubeflow dashboard URL",
        "description": "Central dashboard base URL, used for operator links (e.g. https://kubeflow.example.com).",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "namespace": {
        "label": "Namespace",
        "description": "Kubeflow profile namespace where objects and runs are created.",
        "schema": {"type": ["string", "null"], "default": DEFAULT_NAMESPACE},
    },
    "auth_mode": {
        "label": "KFP auth mode",
        "description": "none, token (bearer token in Password), sa_token_file (ServiceAccount token file), "
        "dex (Login/Password through oauth2-proxy).",
        "schema": {"type": "string", "enum": list(AUTH_MODES), "default": "none"},
    },
    "token_path": {
        "label": "ServiceAccount token file",
        "description": "Path of the projected token for auth mode sa_token_file (re-read when it rotates).",
        "schema": {"type": ["string", "null"]},
    },
    "kubernetes_conn_id": {
        "label": "Kubernetes connection id",
        "description": "The cncf 'kubernetes' connection for the Kubernetes API (Katib, PyTorchJob, KServe).",
        "schema": {"type": ["string", "null"], "default": "kubernetes_default"},
    },
    "gpus_available": {
        "label": "GPUs available",
        "description": "Uncheck for clusters without GPUs (the local runtime): GPU requests then fail early.",
        "schema": {"type": ["boolean", "null"]},
    },
    "verify_tls": {
        "label": "Verify TLS",
        "description": "Verify the KFP endpoint's TLS certificate.",
        "schema": {"type": "boolean", "default": True},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"host": "KFP endpoint", "login": "Username (dex)", "password": "Password or token"},
    "placeholders": {
        "host": "http://ml-pipeline-ui.kubeflow:80",
        "login": "user@example.com",
        "extra__kubeflow__namespace": DEFAULT_NAMESPACE,
        "extra__kubeflow__kubernetes_conn_id": "kubernetes_default",
    },
}
