"""MLflow tracking and the model registry, as both orchestrators use them (standard library only).

The trainer logs (see ``trainer/tracking.py``) when its pod has ``MLFLOW_TRACKING_URI``;
:func:`tracking_env` is that env, one builder for the Airflow DAG and the KFP pipeline. Evaluate registers
each candidate as a version of the registered model (the ``registered_model`` param); after a deploy
promotes it, :func:`promote_champion` moves the ``champion`` alias to it and records the serving
InferenceService on the version. Evaluate re-scores the alias's version as the model to beat.

Credentials never travel as values: a pod gets ``MLFLOW_TRACKING_TOKEN`` (or a username and password) from
the :data:`TRACKING_SECRET` Secret, when it exists; the control plane reads them from its environment or
its Airflow connection (:class:`~kubeflow_bridge.hooks.mlflow.MlflowHook`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

#: The MLflow experiment both orchestrators' runs go to (so their history compares in one place).
EXPERIMENT = "anomaly-retraining"
#: The registry alias of the model that serves (the one a candidate must beat).
CHAMPION_ALIAS = "champion"
#: The env var carrying the trainer's tracking settings (JSON: required, tags, registered_model).
SETTINGS_ENV = "KUBEFLOW_BRIDGE_TRACKING"
#: The Secret, in the workflow's namespace, with the tracking server's credentials (optional).
TRACKING_SECRET = "kubeflow-bridge-mlflow"
#: Its keys, which pods get as env of the same names (MLflow's own variables).
TRACKING_KEYS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
#: A registered model name this workflow accepts (MLflow forbids '/' and ':'; we keep to URL-safe names).
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
#: Tags on every run and version (prefix), so runs of both orchestrators can be told apart and joined.
TAG_PREFIX = "kubeflow_bridge."


class TrackingError(RuntimeError):
    """The tracking server could not be reached or refused a request; the message says what to fix."""


def check_model_name(name: str) -> str:
    """``name`` when it is a registered model name the workflow accepts.

    Raises:
        ValueError: Says the rule.
    """
    if not MODEL_NAME.match(str(name)):
        raise ValueError(
            f"registered_model {name!r} is not allowed: use 1-255 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (MLflow forbids '/' and ':')"
        )
    return str(name)


def run_tags(*, orchestrator: str, workflow: str, run_id: str, window_end: str = "") -> dict[str, str]:
    """The tags that say which orchestrator's run, of which DAG or pipeline, on which data window."""
    tags = {"orchestrator": orchestrator, "workflow": workflow, "run_id": run_id}
    if window_end:
        tags["window_end"] = window_end
    return {f"{TAG_PREFIX}{k}": str(v) for k, v in tags.items()}


def tracking_env(
    tracking_uri: str,
    *,
    tags: Mapping[str, str],
    registered_model: str,
    required: bool = False,
    experiment: str = EXPERIMENT,
    trial: bool = False,
) -> list[dict[str, Any]]:
    """The env that makes a trainer pod log to MLflow ([] when ``tracking_uri`` is empty: no tracking).

    ``trial``: for a Katib trial template (its run nests under the tuning run, named after the trial).

    Raises:
        ValueError: ``registered_model`` is not allowed, or the URI has credentials in it.
    """
    if not tracking_uri:
        return []
    check_model_name(registered_model)
    if urllib.parse.urlsplit(tracking_uri).password:
        raise ValueError(
            "tracking_uri carries a password: give the URI without it, and the credentials in the "
            f"{TRACKING_SECRET} Secret (pods) or the mlflow_default connection (Airflow)"
        )
    settings: dict[str, Any] = {
        "required": bool(required),
        "registered_model": registered_model,
        "tags": dict(tags),
    }
    if trial:
        settings.update(step="tune", trial="${trialSpec.Name}")  # Katib substitutes the trial's name
    return [
        {"name": "MLFLOW_TRACKING_URI", "value": tracking_uri},
        {"name": "MLFLOW_EXPERIMENT_NAME", "value": experiment},
        {"name": SETTINGS_ENV, "value": json.dumps(settings, sort_keys=True)},
        *(
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": TRACKING_SECRET, "key": key, "optional": True}},
            }
            for key in TRACKING_KEYS
        ),
    ]


def workflow_env(
    params: Mapping[str, Any],
    tracking_uri: str,
    *,
    orchestrator: str,
    workflow: str,
    run_id: str,
    window_end: str = "",
    trial: bool = False,
) -> list[dict[str, Any]]:
    """:func:`tracking_env` from the workflow's params (``tracking_required``, ``registered_model``) for
    one run of the DAG or the pipeline; ``tracking_uri`` is the one the orchestrator resolved."""
    return tracking_env(
        tracking_uri,
        tags=run_tags(orchestrator=orchestrator, workflow=workflow, run_id=run_id, window_end=window_end),
        registered_model=str(params.get("registered_model") or "anomaly-detector"),
        required=bool(params.get("tracking_required", False)),
        trial=trial,
    )


def auth_headers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """MLflow's own credential variables as request headers (a token wins over a username/password)."""
    env = os.environ if env is None else env
    if token := env.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    if (user := env.get("MLFLOW_TRACKING_USERNAME")) and (password := env.get("MLFLOW_TRACKING_PASSWORD")):
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


class MlflowRest:
    """The few MLflow REST calls the control plane makes (the mlflow package lives in the trainer image).

    Args:
        uri: The tracking URI (``http(s)://host:port``).
        headers: Auth headers (see :func:`auth_headers`); never logged.
        timeout: Seconds per request.
    """

    def __init__(self, uri: str, headers: Mapping[str, str] | None = None, timeout: float = 15.0) -> None:
        if not uri.startswith(("http://", "https://")):
            raise ValueError(f"the MLflow tracking URI must be http(s)://host[:port], not {uri!r}")
        self.uri = uri.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request to ``/api/2.0/mlflow/<path>``; the JSON answer.

        Raises:
            TrackingError: Unreachable, or an error answer (with MLflow's message).
        """
        url = f"{self.uri}/api/2.0/mlflow/{path}"
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json", **self.headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                text = resp.read().decode() or "{}"
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise TrackingError(f"MLflow at {self.uri} answered {err.code} to {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as err:
            raise TrackingError(
                f"MLflow at {self.uri} is unreachable ({getattr(err, 'reason', err)}): start it (locally: "
                "`kubeflow-bridge local up` runs one) or fix the tracking URI"
            ) from None
        answer: dict[str, Any] = json.loads(text)
        return answer

    def version_by_alias(self, model: str, alias: str) -> dict[str, Any] | None:
        """The version ``alias`` points at (None: no such alias, or no such model)."""
        try:
            answer = self.call("GET", "registered-models/alias", {"name": model, "alias": alias})
        except TrackingError as err:
            if "RESOURCE_DOES_NOT_EXIST" in str(err) or "INVALID_PARAMETER_VALUE" in str(err):
                return None
            raise
        version: dict[str, Any] = answer.get("model_version") or {}
        return version or None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.call("POST", "registered-models/alias", {"name": model, "alias": alias, "version": str(version)})

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self.call(
            "POST",
            "model-versions/set-tag",
            {"name": model, "version": str(version), "key": key, "value": str(value)},
        )

    def experiment_id(self, name: str, *, create: bool = False) -> str | None:
        """The id of experiment ``name`` (None: it does not exist, and ``create`` is false)."""
        try:
            found = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
            return str(found["experiment"]["experiment_id"])
        except TrackingError as err:
            if "RESOURCE_DOES_NOT_EXIST" not in str(err):
                raise
        if not create:
            return None
        return str(self.call("POST", "experiments/create", {"name": name})["experiment_id"])

    def search_runs(
        self, experiment: str, filter_string: str = "", max_results: int = 500
    ) -> list[dict[str, Any]]:
        """Runs of ``experiment`` (by name; [] when it does not exist), newest first."""
        experiment_id = self.experiment_id(experiment)
        if experiment_id is None:
            return []
        body = {
            "experiment_ids": [experiment_id],
            "filter": filter_string,
            "max_results": max_results,
            "order_by": ["attributes.start_time DESC"],
        }
        runs: list[dict[str, Any]] = self.call("POST", "runs/search", body).get("runs") or []
        return runs

    def log_run(
        self,
        experiment: str,
        *,
        name: str,
        tags: Mapping[str, str],
        metrics: Mapping[str, float],
        start_ms: int,
        end_ms: int,
    ) -> str:
        """A finished run with ``metrics`` in ``experiment`` (created when missing); its run id."""
        run = self.call(
            "POST",
            "runs/create",
            {
                "experiment_id": self.experiment_id(experiment, create=True),
                "run_name": name,
                "start_time": start_ms,
                "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
            },
        )["run"]
        run_id = str(run["info"]["run_id"])
        batch = [{"key": k, "value": float(v), "timestamp": end_ms, "step": 0} for k, v in metrics.items()]
        self.call("POST", "runs/log-batch", {"run_id": run_id, "metrics": batch})
        self.call("POST", "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": end_ms})
        return run_id

    def run_url(self, run: Mapping[str, Any]) -> str:
        """The MLflow UI's page of ``run`` (a runs/search result)."""
        info = run["info"]
        return f"{self.uri}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}"


def promote_champion(
    client: MlflowRest,
    *,
    model: str,
    version: str,
    service: str,
    namespace: str,
    url: str = "",
) -> dict[str, Any]:
    """After a deploy promoted the candidate: point ``champion`` at its version and record what serves it.

    Returns:
        ``{"model", "version", "previous"}`` (``previous``: the version the alias left, or None).
    """
    previous = client.version_by_alias(model, CHAMPION_ALIAS)
    client.set_alias(model, CHAMPION_ALIAS, version)
    client.set_version_tag(model, version, f"{TAG_PREFIX}inferenceservice", f"{namespace}/{service}")
    if url:
        client.set_version_tag(model, version, f"{TAG_PREFIX}url", url)
    return {"model": model, "version": str(version), "previous": (previous or {}).get("version")}
