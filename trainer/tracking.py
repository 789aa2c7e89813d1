"""MLflow tracking from the trainer: on when the pod has ``MLFLOW_TRACKING_URI``, a no-op otherwise.

The workflow (``kubeflow_bridge.workflow.tracking.tracking_env``) hands each step the URI, the experiment
and ``KUBEFLOW_BRIDGE_TRACKING`` (JSON: ``required``, ``registered_model``, the run's ``tags``, and for Katib
trials ``step: tune`` with the trial's name). What each step logs:

- a Katib trial: a run nested under the tuning run of its workflow run (found or created once for all
  trials), with its hyperparameters and per-epoch losses;
- train (rank 0 only): the hyperparameters, per-epoch losses and the model's location;
- evaluate: into the same run as train, the evaluation metrics, the report and plot, and the model as a
  pyfunc (:mod:`trainer.pyfunc`); then registers it as a new version of the registered model. Evaluate also
  reads the registry's ``champion`` alias: that version's model is the one the candidate must beat.

Tracking is optional unless ``required``: an unreachable server or a refused call is then a warning, and
the step goes on without tracking. Required, it is an error that fails the step.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

SETTINGS_ENV = "KUBEFLOW_BRIDGE_TRACKING"
TAG_PREFIX = "kubeflow_bridge."
CHAMPION_ALIAS = "champion"
#: The version tag holding the model file a deploy serves (what evaluate re-scores as the champion).
MODEL_URI_TAG = f"{TAG_PREFIX}model_uri"
T = TypeVar("T")


class TrackingError(RuntimeError):
    """Required tracking failed: the message says what to fix."""


@dataclass(frozen=True)
class Settings:
    """Where and how this step tracks (from the environment; see :func:`settings`)."""

    uri: str
    experiment: str
    required: bool = False
    registered_model: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    step: str = ""
    trial: str = ""


def settings(env: Mapping[str, str] | None = None) -> Settings | None:
    """The step's tracking settings (None: no ``MLFLOW_TRACKING_URI``, so no tracking).

    Raises:
        ValueError: ``KUBEFLOW_BRIDGE_TRACKING`` is not a JSON object.
    """
    env = os.environ if env is None else env
    uri = env.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        return None
    raw = env.get(SETTINGS_ENV, "").strip() or "{}"
    try:
        extra = json.loads(raw)
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        raise ValueError(f"{SETTINGS_ENV} must be a JSON object, not {raw[:80]!r}")
    return Settings(
        uri=uri,
        experiment=env.get("MLFLOW_EXPERIMENT_NAME", "").strip() or "Default",
        required=bool(extra.get("required", False)),
        registered_model=str(extra.get("registered_model") or ""),
        tags={str(k): str(v) for k, v in (extra.get("tags") or {}).items()},
        step=str(extra.get("step") or ""),
        trial=str(extra.get("trial") or ""),
    )


def _mlflow(s: Settings) -> Any:
    # Fail within seconds when the server is down (MLflow's defaults retry for minutes).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import mlflow

    mlflow.set_tracking_uri(s.uri)
    return mlflow


class Run:
    """One MLflow run of this step. Each call is guarded: optional tracking warns once and goes quiet;
    required tracking raises :class:`TrackingError`."""

    def __init__(self, s: Settings, run_id: str | None) -> None:
        self.settings = s
        self.run_id = run_id

    @classmethod
    def off(cls) -> Run:
        """A run that logs nothing (tracking off, or not this rank's job)."""
        return cls(Settings(uri="", experiment=""), None)

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def guard(self, what: str, call: Callable[[], T]) -> T | None:
        if not self.active:
            return None
        try:
            return call()
        except Exception as exc:
            _failed(self.settings, what, exc, self)
            return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.active:
            return
        client = _mlflow(self.settings).MlflowClient()
        from mlflow.entities import Param

        batch = [Param(k, str(v)) for k, v in params.items() if v is not None]
        self.guard("log params", lambda: client.log_batch(self.run_id, params=batch))

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None:
        if not self.active:
            return
        import time

        from mlflow.entities import Metric

        client = _mlflow(self.settings).MlflowClient()
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if _number(v)]
        self.guard("log metrics", lambda: client.log_batch(self.run_id, metrics=batch))

    def log_history(self, history: list[dict[str, Any]]) -> None:
        """Per-epoch losses, each at its epoch as the step."""
        if not self.active:
            return
        import time

        from mlflow.entities import Metric

        client = _mlflow(self.settings).MlflowClient()
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, int(row["epoch"]))
            for row in history
            for k, v in row.items()
            if k != "epoch" and _number(v)
        ]
        self.guard("log per-epoch metrics", lambda: client.log_batch(self.run_id, metrics=batch))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if not self.active:
            return
        from mlflow.entities import RunTag

        client = _mlflow(self.settings).MlflowClient()
        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self.guard("set tags", lambda: client.log_batch(self.run_id, tags=batch))

    def log_artifacts(self, local_dir: str, artifact_path: str) -> None:
        if not self.active:
            return
        client = _mlflow(self.settings).MlflowClient()
        self.guard("log artifacts", lambda: client.log_artifacts(self.run_id, local_dir, artifact_path))

    def finish(self, status: str = "FINISHED") -> None:
        if not self.active:
            return
        client = _mlflow(self.settings).MlflowClient()
        self.guard("end run", lambda: client.set_terminated(self.run_id, status))


def _number(value: Any) -> bool:
    import math

    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _failed(s: Settings, what: str, exc: Exception, run: Run | None = None) -> None:
    """Raise when tracking is required; else warn and switch ``run`` off."""
    message = f"MLflow tracking at {s.uri} failed to {what}: {exc}"
    if s.required:
        raise TrackingError(
            f"{message}. Tracking is required (tracking_required): start or fix the tracking server, or "
            "set tracking_required to false to run without it"
        ) from None
    log.warning("%s; going on without tracking (tracking_required is false)", message)
    if run is not None:
        run.run_id = None


def _experiment_id(mlflow: Any, name: str) -> str:
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:  # another step created it first
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)


def _filter(tags: Mapping[str, str]) -> str:
    return " and ".join(f"tags.`{k}` = '{str(v).replace(chr(39), '')}'" for k, v in sorted(tags.items()))


def _tuning_parent(mlflow: Any, experiment_id: str, tags: dict[str, str]) -> str:
    """The tuning run of this workflow run: found, else created. Trials start at once and may race to
    create it: each then keeps the oldest and deletes its own extra one, so all nest under one."""
    client = mlflow.MlflowClient()
    wanted = {**tags, f"{TAG_PREFIX}step": "tune"}

    def oldest() -> Any:
        runs = client.search_runs([experiment_id], _filter(wanted), order_by=["attributes.start_time ASC"])
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))[0] if runs else None

    first = oldest()
    if first is not None:
        return str(first.info.run_id)
    mine = client.create_run(experiment_id, tags=wanted, run_name="tune")
    client.set_terminated(mine.info.run_id)  # a group, not a process: FINISHED, not a stale RUNNING
    first = oldest()
    if first.info.run_id != mine.info.run_id:
        client.delete_run(mine.info.run_id)
    return str(first.info.run_id)


def start(step: str, run_name: str = "") -> Run:
    """A run for ``step`` (``train`` or a Katib trial); an inactive one when tracking is off or failed."""
    s = settings()
    if s is None:
        return Run.off()
    try:
        mlflow = _mlflow(s)
        experiment_id = _experiment_id(mlflow, s.experiment)
        client = mlflow.MlflowClient()
        tags = {**s.tags, f"{TAG_PREFIX}step": step}
        if s.step == "tune":
            tags[f"{TAG_PREFIX}step"] = "trial"
            tags["mlflow.parentRunId"] = _tuning_parent(mlflow, experiment_id, s.tags)
            run_name = s.trial or run_name
        created = client.create_run(experiment_id, tags=tags, run_name=run_name or step)
        log.info("tracking: MLflow run %s (%s) at %s", created.info.run_id, run_name or step, s.uri)
        return Run(s, str(created.info.run_id))
    except TrackingError:
        raise
    except Exception as exc:
        _failed(s, f"start a run for {step}", exc)
        return Run(s, None)


def resume_train_run() -> Run:
    """Evaluate's run: the train run of this workflow run (same tags), else a new ``evaluate`` run."""
    s = settings()
    if s is None:
        return Run.off()
    if s.tags:
        try:
            mlflow = _mlflow(s)
            experiment_id = _experiment_id(mlflow, s.experiment)
            runs = mlflow.MlflowClient().search_runs(
                [experiment_id],
                _filter({**s.tags, f"{TAG_PREFIX}step": "train"}),
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if runs:
                return Run(s, str(runs[0].info.run_id))
        except Exception as exc:
            _failed(s, "find the train run", exc)
            return Run(s, None)
    return start("evaluate")


def champion_model_uri() -> tuple[str | None, str]:
    """(the model file of the registry's champion, or None; what was found) for evaluate."""
    s = settings()
    if s is None or not s.registered_model:
        return None, "no registry (tracking off, or no registered_model)"
    try:
        client = _mlflow(s).MlflowClient()
        try:
            version = client.get_model_version_by_alias(s.registered_model, CHAMPION_ALIAS)
        except Exception as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "INVALID_PARAMETER_VALUE" in str(exc):
                return None, f"{s.registered_model} has no {CHAMPION_ALIAS!r} version yet"
            raise
    except Exception as exc:
        _failed(s, "read the champion from the registry", exc)
        return None, "the registry could not be read"
    uri = (version.tags or {}).get(MODEL_URI_TAG)
    if not uri:
        return None, (
            f"{s.registered_model} v{version.version} ({CHAMPION_ALIAS}) records no {MODEL_URI_TAG}: "
            "re-register it with that tag, or move the alias"
        )
    return str(uri), f"{s.registered_model} v{version.version} ({CHAMPION_ALIAS})"


def register(run: Run, detector_path: str, model_uri: str, metrics: Mapping[str, Any]) -> str | None:
    """Log the evaluated detector as a pyfunc model in ``run`` and register it (None: not registered)."""
    s = run.settings
    if not run.active or not s.registered_model:
        return None

    def go() -> str:
        mlflow = _mlflow(s)
        import trainer
        from trainer.pyfunc import AnomalyDetectorModel

        with mlflow.start_run(run_id=run.run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=AnomalyDetectorModel(),
                artifacts={"detector": detector_path},
                code_paths=[os.path.dirname(trainer.__file__)],
                pip_requirements=["torch", "numpy", "pandas"],
            )
        version = mlflow.register_model(info.model_uri, s.registered_model, await_registration_for=60)
        client = mlflow.MlflowClient()
        version_tags = {
            MODEL_URI_TAG: model_uri,
            **s.tags,
            **{f"metric.{k}": str(v) for k, v in metrics.items() if _number(v)},
        }
        for key, value in version_tags.items():
            client.set_model_version_tag(s.registered_model, version.version, key, value)
        log.info("tracking: registered %s v%s", s.registered_model, version.version)
        return str(version.version)

    return run.guard("register the model", go)


@contextmanager
def finishing(run: Run) -> Iterator[Run]:
    """End ``run`` FINISHED, or FAILED when the step raises."""
    try:
        yield run
    except BaseException:
        run.finish("FAILED")
        raise
    run.finish()
