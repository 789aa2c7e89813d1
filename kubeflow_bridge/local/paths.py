"""The state folder layout and the files ``local up`` writes for clients (kubeconfig, env)."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "kubeflow-bridge-local"
KFP_NAMESPACE = "kubeflow-user"
REGION = "us-east-1"


def default_state_dir() -> Path:
    """``$KUBEFLOW_BRIDGE_HOME/.state/local`` or ``./.state/local``."""
    home = os.environ.get("KUBEFLOW_BRIDGE_HOME")
    return (Path(home) if home else Path.cwd()) / ".state" / "local"


def confined(root: Path, *parts: str) -> Path:
    """``root/part/...`` where every part is one plain path segment (no '/', '..', or empty part).

    Object and container names become file names; the API validates them, and this keeps a name
    that got past it from reaching outside the state folder.

    Raises:
        ValueError: A part could climb out of ``root`` or is empty.
    """
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\0" in part:
            raise ValueError(f"{part!r} cannot be used as a file name under {root}")
    return root.joinpath(*parts)


@dataclass(frozen=True)
class StatePaths:
    """Where everything of one runtime lives."""

    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "runtime.pid"

    @property
    def info_file(self) -> Path:
        return self.root / "runtime.json"

    @property
    def ports_file(self) -> Path:
        """The last run's ports (kept across ``local down``, see :mod:`kubeflow_bridge.local.ports`)."""
        return self.root / "ports.json"

    @property
    def log_file(self) -> Path:
        return self.root / "runtime.log"

    @property
    def db(self) -> Path:
        return self.root / "state.db"

    @property
    def token_file(self) -> Path:
        """The runtime's API token (0600), as Kubeflow mounts a pipelines ServiceAccount token."""
        return self.root / "token"

    def token(self) -> str:
        """The runtime's API token, created on first use and kept across restarts."""
        import secrets

        if not self.token_file.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            _write_private(self.token_file, secrets.token_urlsafe(32))
        return self.token_file.read_text().strip()

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def procs(self) -> Path:
        return self.root / "procs"

    @property
    def images(self) -> Path:
        return self.root / "images.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.root / "logs"


@dataclass(frozen=True)
class S3Info:
    endpoint: str
    access_key: str
    secret_key: str
    buckets: tuple[str, ...] = ()


def kubeconfig(api_url: str, token: str | None = None, ca_pem: bytes | None = None) -> dict[str, Any]:
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": api_url}
    if ca_pem:
        import base64

        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def env_vars(
    paths: StatePaths,
    api_url: str,
    s3: S3Info | None,
    kfp_url: str = "",
    gpus: int = 0,
    token: str | None = None,
    tracking_uri: str = "",
) -> dict[str, str]:
    """The variables the control plane (Airflow, kubectl, boto3) needs to reach this runtime.

    ``gpus`` is what pods may request here; the Kubeflow connection says whether there are any, so
    operators refuse GPU requests before creating anything. With ``token`` (auth on) the KFP clients
    read it from ``<state>/token`` as from a mounted pipelines ServiceAccount token
    (``KF_PIPELINES_SA_TOKEN_PATH``, which ``kfp.Client`` reads too); the kubeconfig carries it for the
    Kubernetes API.
    """
    kfp_url = kfp_url or api_url
    env = {
        "KUBECONFIG": str(paths.kubeconfig),
        "KUBEFLOW_BRIDGE_KFP_ENDPOINT": kfp_url,
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {"kube_config_path": str(paths.kubeconfig), "in_cluster": False},
            }
        ),
        "AIRFLOW_CONN_KUBEFLOW_DEFAULT": json.dumps(
            {
                "conn_type": "kubeflow",
                "host": kfp_url,
                "extra": {
                    **({"auth_mode": "sa_token_file", "token_path": str(paths.token_file)} if token else {}),
                    "kfp_endpoint": kfp_url,
                    "namespace": KFP_NAMESPACE,
                    "kubernetes_conn_id": "kubernetes_default",
                    "dashboard_url": kfp_url,
                    "gpus_available": gpus > 0,
                },
            }
        ),
    }
    if token:
        env["KF_PIPELINES_SA_TOKEN_PATH"] = str(paths.token_file)
    if tracking_uri:
        # MLflow's own variable (its clients, `mlflow ui` links) and the connection the DAG reads.
        env["MLFLOW_TRACKING_URI"] = tracking_uri
        env["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps({"conn_type": "mlflow", "host": tracking_uri})
    if s3 is not None:
        env.update(
            {
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                "AWS_ENDPOINT_URL": s3.endpoint,
                "AWS_ENDPOINT_URL_S3": s3.endpoint,
                "AWS_DEFAULT_REGION": REGION,
                "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                    {
                        "conn_type": "aws",
                        "login": s3.access_key,
                        "password": s3.secret_key,
                        "extra": {"endpoint_url": s3.endpoint, "region_name": REGION},
                    }
                ),
            }
        )
    return env


def write_client_files(
    paths: StatePaths,
    api_url: str,
    s3: S3Info | None,
    token: str | None = None,
    kfp_url: str = "",
    ca_pem: bytes | None = None,
    gpus: int = 0,
    tracking_uri: str = "",
) -> dict[str, str]:
    """Write ``<state>/kubeconfig`` and ``<state>/env`` (both 0600: they hold credentials)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    _write_private(paths.kubeconfig, yaml.safe_dump(kubeconfig(api_url, token, ca_pem), sort_keys=False))
    if token:
        _write_private(paths.token_file, token)  # the file the KFP clients read (it may be a faults token)
    env = env_vars(paths, api_url, s3, kfp_url, gpus, token, tracking_uri)
    _write_private(paths.env_file, "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    return env


def parse_env_file(text: str) -> dict[str, str]:
    """``export KEY=VALUE`` lines (values shell-quoted, as :func:`write_client_files` writes them) -> a dict.

    Raises:
        ValueError: A line is neither blank, a comment, nor ``export KEY=VALUE``.
    """
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        body = stripped[len("export ") :] if stripped.startswith("export ") else ""
        key, sep, value = body.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"env file line {number} is not `export KEY=VALUE`: {line!r}")
        words = shlex.split(value)
        if len(words) > 1:
            raise ValueError(f"env file line {number}: the value of {key} is not one shell word")
        env[key.strip()] = words[0] if words else ""
    return env


def read_env_file(path: Path) -> dict[str, str]:
    """The env file ``local up`` wrote, as a dict (see :func:`parse_env_file`)."""
    return parse_env_file(path.read_text())


def make_private(path: Path) -> None:
    """Create ``path`` if missing, readable by its owner only (0600; SQLite's -wal/-shm files follow)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
