"""The MLflow tracking server, from an ``mlflow`` connection (``mlflow_default``).

The connection's host is the tracking URI (``http://mlflow.mlflow:5000``, with a schema and port when the
host is bare); its password is a bearer token, or with a login, the basic-auth password. Only the URI
goes to pods; the credentials stay on the Airflow side (masked) and reach pods through the
``kubeflow-bridge-mlflow`` Secret (:data:`kubeflow_bridge.workflow.tracking.TRACKING_SECRET`).

``kubeflow-bridge local up`` defines ``mlflow_default`` for its own MLflow server in the env file.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from kubeflow_bridge.workflow.tracking import MlflowRest, auth_headers


class MlflowHook(BaseHook):
    """The tracking URI and a REST client for the registry calls the control plane makes.

    Args:
        mlflow_conn_id: The ``mlflow`` connection id.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["extra"],
            "relabeling": {"host": "Tracking URI", "password": "Token or password"},
            "placeholders": {"host": "http://mlflow.mlflow:5000", "login": "(basic auth only)"},
        }

    @classmethod
    def configured_uri(cls, mlflow_conn_id: str = default_conn_name) -> str:
        """The connection's tracking URI; "" when the connection is not defined (tracking off)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return cls(mlflow_conn_id).tracking_uri()
        except AirflowNotFoundException:
            return ""

    def tracking_uri(self) -> str:
        """``scheme://host[:port][/path]`` from the connection (its credentials are not part of it)."""
        conn = self.get_connection(self.mlflow_conn_id)
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(f"connection {self.mlflow_conn_id!r} has no host: set it to the tracking URI")
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}"
        if conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        return host

    def client(self, tracking_uri: str = "") -> MlflowRest:
        """A REST client on ``tracking_uri`` (default: the connection's) with the connection's credentials
        (a token, or login and password); none when the connection is not defined."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            if not tracking_uri:
                raise
            return MlflowRest(tracking_uri)
        env = (
            {"MLFLOW_TRACKING_USERNAME": conn.login, "MLFLOW_TRACKING_PASSWORD": conn.password}
            if conn.login
            else {"MLFLOW_TRACKING_TOKEN": conn.password or ""}
        )
        headers = auth_headers({k: v for k, v in env.items() if v})
        return MlflowRest(tracking_uri or self.tracking_uri(), headers)
