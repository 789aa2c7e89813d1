"""The retraining workflow's spec: defaults, param schemas, object-store layout, trainer arguments, image.

Both orchestrators use it, so the Airflow DAG (``dags/anomaly_retraining.py``, control plane) and the
KFP pipeline (``kubeflow_bridge.pipelines``, trainer image) run exactly the same trainer commands with
the same parameters. Standard library only, so DAG files can import it at parse time.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from kubeflow_bridge.workflow.gate import NO_LABELS_POLICIES

#: The trainer image every step runs (the local runtime maps it to ``.venv-trainer``).
TRAINER_IMAGE = "kubeflow-bridge/trainer:latest"
#: The metric the trainer prints each epoch in Katib's StdOut format and the tuner minimizes.
OBJECTIVE_METRIC = "val_loss"
#: The evaluate step's composite F-score (event-wise recall with point-wise precision).
F_SCORE_METRIC = "composite_f1"
#: Restarts of a failing training replica before the PyTorchJob fails. With restartPolicy OnFailure and
#: no backoffLimit a replica that always fails restarts forever (as with the real training operator).
TRAIN_BACKOFF_LIMIT = 2
#: The final training's Kubeflow API: Trainer v2's TrainJob, or the Training Operator v1's PyTorchJob.
TRAINING_APIS = ("trainjob", "pytorchjob")
#: Steps in workflow order (Airflow task ids and KFP task names use these names).
STEPS = ("ingest", "preprocess", "tune", "train", "evaluate", "gate", "deploy")

#: Defaults of the workflow's parameters (DAG Params and pipeline inputs), small enough for a laptop.
DEFAULTS: dict[str, Any] = {
    "source": "synthetic",
    "time_column": "timestamp",
    "feature_columns": "",
    "label_column": "",
    "lookback": "",
    "rows": 20000,
    "window_end": "",
    "seed": 0,
    "max_trials": 4,
    "parallel_trials": 2,
    "lr_min": 0.0005,
    "lr_max": 0.01,
    "latent_dim_min": 4,
    "latent_dim_max": 16,
    "tune_epochs": 3,
    "epochs": 6,
    "score_mix": 0.0,
    "training_api": "trainjob",
    "worker_replicas": 1,
    "gpus_per_replica": 0,
    "f_score_threshold": 0.3,
    "baseline_margin": 0.0,
    "contamination": 0.01,
    "no_labels_policy": "if_nothing_serves",
    "canary_percent": 20,
    "namespace": "kubeflow-user",
    "artifact_root": "s3://kubeflow-bridge/runs",
    "service_name": "anomaly-vae",
    "tracking_uri": "",
    "tracking_required": False,
    "registered_model": "anomaly-detector",
}

#: The built-in sources; anything else is the URI of the team's own dataset.
BUILTIN_SOURCES = ("synthetic", "nab")
_DNS1123 = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SOURCE = r"^(synthetic|nab|s3://[^\s/]+/?\S*|file:///\S+|/\S+)$"
# pandas durations as people write them: 30D, 12h, 90min, 45s, "7 days"; or empty (a KFP run sends "").
_DURATION = r"^([0-9]+(\.[0-9]+)? ?(D|d|days?|h|hours?|min|minutes?|s|seconds?))?$"
_COLUMNS = r"^([^,\s]+( *, *[^,\s]+)*)?$"
_DNS1035 = "^[a-z]([-a-z0-9]*[a-z0-9])?$"

#: JSON schema of each parameter, with the trigger form's title, description and section (the DAGs build
#: Airflow ``Param``s from these, so the form validates them; the KFP pipeline takes the same names).
PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "source": {
        "type": "string", "pattern": _SOURCE, "title": "Data source", "section": "Data",
        "description": "your dataset: a CSV or Parquet file, or a folder or S3 prefix of them (s3://bucket/"
        "prefix, file:///path or /path); or synthetic (generated ISS-like telemetry with labelled "
        "anomalies) or nab (NAB's machine_temperature series)",
    },
    "time_column": {
        "type": "string", "minLength": 1, "title": "Time column", "section": "Data",
        "description": "your dataset's timestamp column (ISO 8601 in CSV, a timestamp in Parquet)",
    },
    "feature_columns": {
        "type": ["null", "string"], "pattern": _COLUMNS, "title": "Feature columns", "section": "Data",
        "description": "your dataset's columns to model, comma-separated; empty: every numeric column "
        "but time and label",
    },
    "label_column": {
        "type": ["null", "string"], "title": "Label column", "section": "Data",
        "description": "your dataset's 0/1 anomaly label column; empty: unlabelled (the gate's no-labels "
        "policy decides)",
    },
    "lookback": {
        "type": ["null", "string"], "pattern": _DURATION, "title": "Lookback", "section": "Data",
        "description": "how much of your dataset's history before the window end a run trains on (e.g. "
        "30D, 12h); empty: all of it",
    },
    "rows": {
        "type": "integer", "minimum": 1000, "maximum": 100_000_000, "title": "Rows", "section": "Data",
        "description": "rows of synthetic telemetry, one a minute, ending at the window's end (1,000 to 100M)",
    },
    "window_end": {
        # Nullable: Airflow's trigger form treats a non-null type as required; empty means the run's own.
        "type": ["null", "string"], "format": "date-time", "title": "Window end", "section": "Data",
        "description": "end of the training window (ISO 8601 date-time, e.g. 2026-11-01T00:00:00+00:00); "
        "empty: the end of the run's data interval",
    },
    "seed": {
        "type": "integer", "minimum": 0, "title": "Seed", "section": "Data",
        "description": "seeds the data, the search and the training: the same seed gives the same run",
    },
    "max_trials": {
        "type": "integer", "minimum": 1, "maximum": 100, "title": "Trials", "section": "Tuning",
        "description": "Katib trials in all (1 to 100)",
    },
    "parallel_trials": {
        "type": "integer", "minimum": 1, "maximum": 16, "title": "Parallel trials", "section": "Tuning",
        "description": "Katib trials at once (1 to 16, at most Trials)",
    },
    "lr_min": {
        "type": "number", "exclusiveMinimum": 0, "maximum": 1, "title": "Learning rate from", "section": "Tuning",
        "description": "lower end of the log-uniform learning-rate search (above 0, below Learning rate to)",
    },
    "lr_max": {
        "type": "number", "exclusiveMinimum": 0, "maximum": 1, "title": "Learning rate to", "section": "Tuning",
        "description": "upper end of the learning-rate search (at most 1)",
    },
    "latent_dim_min": {
        "type": "integer", "minimum": 1, "maximum": 512, "title": "Latent size from", "section": "Tuning",
        "description": "smallest VAE latent size tried (1 to 512, below Latent size to)",
    },
    "latent_dim_max": {
        "type": "integer", "minimum": 2, "maximum": 512, "title": "Latent size to", "section": "Tuning",
        "description": "largest VAE latent size tried (2 to 512)",
    },
    "tune_epochs": {
        "type": "integer", "minimum": 1, "maximum": 1000, "title": "Epochs per trial", "section": "Tuning",
        "description": "training epochs of each Katib trial (1 to 1,000)",
    },
    "epochs": {
        "type": "integer", "minimum": 1, "maximum": 1000, "title": "Epochs", "section": "Training",
        "description": "epochs of the final training with the best parameters (1 to 1,000)",
    },
    "score_mix": {
        "type": "number", "minimum": 0, "maximum": 1, "title": "Likelihood mix", "section": "Training",
        "description": "weight of the latent likelihood (KL) against the reconstruction error in the anomaly "
        "score (0: reconstruction error only, 1: likelihood only)",
    },
    "training_api": {
        "type": "string", "enum": list(TRAINING_APIS), "title": "Training API", "section": "Training",
        "description": "how the final training runs: trainjob (Kubeflow Trainer v2, a TrainJob on the "
        "torch-distributed runtime) or pytorchjob (a Training Operator v1 PyTorchJob, for clusters still on v1)",
    },
    "worker_replicas": {
        "type": "integer", "minimum": 0, "maximum": 64, "title": "Workers", "section": "Training",
        "description": "training processes beside the first (0 to 64): PyTorchJob Workers beside the Master, "
        "or TrainJob nodes beyond one; any count trains the same model",
    },
    "gpus_per_replica": {
        "type": "integer", "minimum": 0, "maximum": 8, "title": "GPUs per replica", "section": "Training",
        "description": "GPUs each training replica (TrainJob node) asks for (0 to 8; 0 on a cluster without GPUs)",
    },
    "f_score_threshold": {
        "type": "number", "minimum": 0, "maximum": 1, "title": "F-score threshold", "section": "Gate",
        "description": "deploy only a model whose composite F-score (at the threshold chosen on "
        "validation) is at least this (0 to 1), beats the best baseline and the serving model's",
    },
    "baseline_margin": {
        "type": "number", "minimum": 0, "maximum": 1, "title": "Margin over baselines", "section": "Gate",
        "description": "how much the model's composite F-score must exceed the best baseline's (rolling "
        "z-score, IsolationForest) to deploy (0 to 1)",
    },
    "contamination": {
        "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "title": "Contamination", "section": "Gate",
        "description": "share of rows flagged when validation has no labelled anomaly (above 0, at most 0.5)",
    },
    "no_labels_policy": {
        "type": "string", "enum": list(NO_LABELS_POLICIES), "title": "Without labels",
        "section": "Gate",
        "description": "when the test window has no labelled anomaly (unlabelled data): never deploy, "
        "deploy only if nothing serves yet, or always replace the serving model",
    },
    "canary_percent": {
        "type": "integer", "minimum": 0, "maximum": 100, "title": "Canary traffic (%)", "section": "Deploy",
        "description": "traffic the new model gets while it is smoke-tested, before promotion (0 to 100)",
    },
    "namespace": {
        "type": "string", "pattern": _DNS1123, "maxLength": 63, "title": "Namespace", "section": "Deploy",
        "description": "Kubernetes namespace of every object the run creates (lower-case DNS label)",
    },
    "artifact_root": {
        "type": "string", "pattern": "^(s3://|file://|/).+", "title": "Artifact root", "section": "Data",
        "description": "object-store prefix of the run's data and models (s3://..., file://... or /path)",
    },
    "service_name": {
        "type": "string", "pattern": _DNS1035, "maxLength": 45, "title": "Service name", "section": "Deploy",
        "description": "the InferenceService that serves the model (lower-case, starts with a letter)",
    },
    "tracking_uri": {
        "type": ["null", "string"], "pattern": r"^((https?|file|databricks)://\S*|databricks)?$",
        "title": "MLflow tracking URI", "section": "Tracking",
        "description": "where every step logs its runs and evaluate registers the model (http(s)://host:port, "
        "no credentials in it); empty: the mlflow_default connection in Airflow, MLFLOW_TRACKING_URI in a "
        "KFP component, else no tracking",
    },
    "tracking_required": {
        "type": "boolean", "title": "Tracking required", "section": "Tracking",
        "description": "fail a step whose tracking fails (off: warn and go on without tracking)",
    },
    "registered_model": {
        "type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$", "title": "Registered model",
        "section": "Tracking",
        "description": "the MLflow registered model evaluate adds each candidate to; its champion alias "
        "is the model to beat",
    },
}  # fmt: skip


def form_schema(name: str) -> dict[str, Any]:
    """Param ``name``'s JSON schema as the DAGs give it to Airflow's ``Param``: the same rules, with a
    number's bounds under ``allOf``.

    Airflow's trigger form hands ``minimum``/``maximum`` to its number field, which clamps a value outside
    them on blur without a word (5 rows became 1000). Under ``allOf`` the bounds still refuse the value at
    submit, naming the field, but the field no longer rewrites it.
    """
    schema = dict(PARAM_SCHEMAS[name])
    bounds = {k: schema.pop(k) for k in ("minimum", "maximum") if k in schema}
    return {**schema, "allOf": [bounds]} if bounds else schema


#: The trigger form's defaults: an empty date-time is null there (the KFP pipeline takes "" for it).
FORM_DEFAULTS: dict[str, Any] = {
    **DEFAULTS,
    **{name: None for name, v in DEFAULTS.items() if "null" in PARAM_SCHEMAS[name]["type"]},
}


def pipeline_inputs(params: dict[str, Any]) -> dict[str, Any]:
    """The workflow's params as the KFP pipeline's inputs: its names only, "" for an empty field.

    The trigger form sends null for an empty optional field; a KFP run takes "" (it drops null inputs).
    """
    return {name: "" if params[name] is None else params[name] for name in DEFAULTS}


def unknown_params(params: dict[str, Any], extra: tuple[str, ...] = ()) -> list[str]:
    """The names in ``params`` that are neither the workflow's nor in ``extra`` (a DAG's own params)."""
    return sorted(set(params) - set(DEFAULTS) - set(extra))


#: Where each step writes under the run's prefix.
LAYOUT = {
    "dataset": "raw",
    "features": "features",
    "model": "model/model.pt",
    "train_metrics": "model/metrics.json",
    "evaluation": "evaluation",
    "trials": "trials",
}


def run_prefix(artifact_root: str, run_key: str) -> str:
    """The run's folder in the object store: ``<artifact_root>/<run_key>`` (run_key made path-safe).

    Raises:
        ValueError: ``artifact_root`` or ``run_key`` is empty.
    """
    if not artifact_root:
        raise ValueError(
            "artifact_root is empty: give an object-store prefix, e.g. s3://kubeflow-bridge/runs"
        )
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_key).strip("-")
    if not safe:
        raise ValueError(f"run key {run_key!r} has no usable characters for a path")
    return f"{artifact_root.rstrip('/')}/{safe}"


def uri(prefix: str, what: str) -> str:
    """The URI of output ``what`` (a :data:`LAYOUT` key) under a run prefix."""
    return f"{prefix.rstrip('/')}/{LAYOUT[what]}"


def summary_uri(prefix: str, step: str) -> str:
    """Where step ``step`` writes its TRAINER_SUMMARY JSON (``--summary-out``)."""
    return f"{prefix.rstrip('/')}/summaries/{step}.json"


def ingest_args(
    prefix: str,
    *,
    source: str,
    rows: int,
    seed: int,
    window_end: str | None = "",
    time_column: str = "timestamp",
    feature_columns: str | None = "",
    label_column: str | None = "",
    lookback: str | None = "",
) -> list[str]:
    """Arguments of ``python -m trainer ingest`` for this run.

    Synthetic data is ``rows`` points ending at ``window_end`` (the DAG passes its data interval's end);
    the NAB series is used whole; a dataset URI is read over ``[window_end - lookback, window_end)``
    (no end: up to its last row; no lookback: all history).
    """
    args = ["ingest", "--out", uri(prefix, "dataset"), "--source", source, "--seed", str(int(seed))]
    if source == "synthetic":
        args += ["--rows", str(int(rows))]
        if window_end:
            args += ["--end", window_end]
    elif source != "nab":
        args += ["--time-column", time_column]
        if feature_columns:
            args += ["--feature-columns", feature_columns]
        if label_column:
            args += ["--label-column", label_column]
        if window_end:
            args += ["--end", window_end]
        if lookback:
            args += ["--lookback", lookback]
    return [*args, "--summary-out", summary_uri(prefix, "ingest")]


def preprocess_args(prefix: str, *, workers: int = 1) -> list[str]:
    """Arguments of ``python -m trainer preprocess`` (Dask LocalCluster with ``workers`` workers)."""
    return [
        "preprocess",
        "--data",
        uri(prefix, "dataset"),
        "--out",
        uri(prefix, "features"),
        "--workers",
        str(int(workers)),
        "--summary-out",
        summary_uri(prefix, "preprocess"),
    ]


def search_space(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The Katib search space from the workflow params (``lr`` log-uniform, ``latent_dim`` int).

    Raises:
        ValueError: A lower bound is not below its upper bound.
    """
    lr_min, lr_max = float(params["lr_min"]), float(params["lr_max"])
    ld_min, ld_max = int(params["latent_dim_min"]), int(params["latent_dim_max"])
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max; got lr_min={lr_min}, lr_max={lr_max}")
    if not 1 <= ld_min < ld_max:
        raise ValueError(f"need 1 <= latent_dim_min < latent_dim_max; got {ld_min}, {ld_max}")
    return [
        {"name": "lr", "type": "double", "min": lr_min, "max": lr_max, "distribution": "logUniform"},
        {"name": "latent_dim", "type": "int", "min": ld_min, "max": ld_max},
    ]


def trial_args(prefix: str, *, epochs: int, seed: int) -> list[str]:
    """Fixed arguments of each Katib trial (after ``python -m trainer train``); hyperparameters follow.

    Each trial writes its own model under ``trials/${trialSpec.Name}`` (Katib substitutes the name).
    """
    return [
        "--data",
        uri(prefix, "features"),
        "--model-out",
        f"{uri(prefix, 'trials')}/${{trialSpec.Name}}/model.pt",
        "--epochs",
        str(int(epochs)),
        "--seed",
        str(int(seed)),
    ]


def hyperparameter_flags(best_params: dict[str, Any]) -> list[str]:
    """``--lr=0.001 --latent-dim=8`` from the tuner's best parameters (as Katib's trials got them)."""
    flags = []
    for name, value in sorted(best_params.items()):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"best parameter {name}={value} is not a finite number")
        flags.append(f"--{name.replace('_', '-')}={value}")
    return flags


def train_args(
    prefix: str,
    *,
    epochs: int,
    seed: int,
    best_params: dict[str, Any],
    score_mix: float = DEFAULTS["score_mix"],
) -> list[str]:
    """Arguments of ``python -m trainer train`` for the final PyTorchJob (every replica runs them)."""
    return [
        "train",
        "--data",
        uri(prefix, "features"),
        "--model-out",
        uri(prefix, "model"),
        "--metrics-out",
        uri(prefix, "train_metrics"),
        "--epochs",
        str(int(epochs)),
        "--seed",
        str(int(seed)),
        "--score-mix",
        str(float(score_mix)),
        *hyperparameter_flags(best_params),
        "--summary-out",
        summary_uri(prefix, "train"),
    ]


def evaluate_args(
    prefix: str, *, contamination: float = DEFAULTS["contamination"], seed: int = 0, champion_model: str = ""
) -> list[str]:
    """Arguments of ``python -m trainer evaluate`` (metrics, KFP metrics, report.html and the model).

    ``champion_model``: the model serving now (see ``gate.serving_model_uri``), re-scored on the same
    splits so that the gate compares the two on one window; empty when nothing serves.
    """
    args = [
        "evaluate",
        "--contamination",
        str(float(contamination)),
        "--seed",
        str(int(seed)),
        "--data",
        uri(prefix, "features"),
        "--model",
        uri(prefix, "model"),
        "--out",
        uri(prefix, "evaluation"),
        "--summary-out",
        summary_uri(prefix, "evaluate"),
    ]
    return [*args, "--champion-model", champion_model] if champion_model else args


def evaluated_model_uri(prefix: str) -> str:
    """The model evaluate writes with its best threshold recorded (the one to deploy)."""
    return f"{uri(prefix, 'evaluation')}/model.pt"


def parse_trainer_summary(stdout: str) -> dict[str, Any]:
    """The ``TRAINER_SUMMARY {json}`` of a step's stdout (the last one wins).

    Raises:
        ValueError: There is no summary line (the step crashed before printing it).
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith("TRAINER_SUMMARY "):
            parsed = json.loads(line[len("TRAINER_SUMMARY ") :])
            if not isinstance(parsed, dict):
                raise ValueError("TRAINER_SUMMARY is not a JSON object")
            return parsed
    raise ValueError("no TRAINER_SUMMARY line in the step's output: the step did not finish")


def trial_span_seconds(trials: list[dict[str, Any]]) -> float | None:
    """Compute time of a tuning step: first trial start to last trial completion (None if none ran).

    Katib's own work before the first trial and after the last counts as orchestration overhead.
    """
    from datetime import datetime

    starts, ends = [], []
    for trial in trials:
        status = trial.get("status") or {}
        if status.get("startTime") and status.get("completionTime"):
            starts.append(datetime.fromisoformat(str(status["startTime"]).replace("Z", "+00:00")))
            ends.append(datetime.fromisoformat(str(status["completionTime"]).replace("Z", "+00:00")))
    if not starts:
        return None
    return (max(ends) - min(starts)).total_seconds()


#: Raw channels per source (the trainer's ingest: 10 synthetic ISS-like sensors; NAB: one temperature).
CHANNELS_PER_SOURCE = {"synthetic": 10, "nab": 1}


def smoke_payload(source: str, rows: int = 24, *, channels: int | None = None) -> dict[str, Any]:
    """A V1 predict request of ``rows`` raw-channel rows for the deployed model's smoke test.

    ``channels`` is the model's raw channel count (evaluate reports it); without it the built-in source's.
    Flat zeros are within every channel's scaler range, so a healthy model answers with scores.
    """
    if channels is None:
        if source not in CHANNELS_PER_SOURCE:
            raise ValueError(
                f"a dataset source needs the model's channel count for the smoke test: {source!r}"
            )
        channels = CHANNELS_PER_SOURCE[source]
    return {"instances": [[0.0] * int(channels) for _ in range(rows)]}


#: The Secret, in the workflow's namespace, whose keys (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
#: ``AWS_ENDPOINT_URL``...) every pod of the workflow gets as env: the object store's credentials stay in
#: the Secret. The local runtime keeps one in every namespace; on a cluster, create it (optional: without
#: it, pods use what the cluster gives them, e.g. workload identity).
STORAGE_SECRET = "kubeflow-bridge-storage"


def storage_env_from() -> list[dict[str, Any]]:
    """The ``envFrom`` that hands a workflow pod the object store's credentials (see :data:`STORAGE_SECRET`)."""
    return [{"secretRef": {"name": STORAGE_SECRET, "optional": True}}]


#: The keys of :data:`STORAGE_SECRET` that :func:`storage_env` hands over one by one.
STORAGE_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def storage_env() -> list[dict[str, Any]]:
    """The same credentials key by key, as ``valueFrom`` sources (a TrainJob's trainer has no ``envFrom``)."""
    return [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": STORAGE_SECRET, "key": key, "optional": True}}}
        for key in STORAGE_KEYS
    ]


def check_param_values(params: dict[str, Any]) -> None:
    """Each known param against its :data:`PARAM_SCHEMAS` rule (type, range, pattern), as the trigger
    form checks them; for callers without the form (the pipeline submit CLI, KFP runs).

    Raises:
        ValueError: Names every param that breaks its rule, with the rule.
    """
    import jsonschema

    problems = []
    for name, value in params.items():
        schema = PARAM_SCHEMAS.get(name)
        if schema is None:
            continue
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
        if error is not None:
            problems.append(f"{name}: {error.message}")
    if problems:
        raise ValueError("; ".join(problems))


def check_params(params: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """Checks JSON schema cannot express (per-field ranges are in the DAG's Params): no unknown names,
    and the fields that depend on each other.

    Raises:
        ValueError: Says which params conflict and how to fix them.
    """
    if unknown := unknown_params(params, extra):
        import difflib

        hints = [
            f"{name!r} (did you mean {close[0]!r}?)"
            if (close := difflib.get_close_matches(name, DEFAULTS, 1))
            else repr(name)
            for name in unknown
        ]
        raise ValueError(
            f"unknown param(s) {', '.join(hints)}: the params are {', '.join(sorted([*DEFAULTS, *extra]))}"
        )
    if end := params.get("window_end"):
        from datetime import datetime

        try:
            datetime.fromisoformat(str(end).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"window_end {end!r} is not an ISO 8601 date-time: give e.g. 2026-11-01T00:00:00+00:00, "
                "or leave it empty for the run's data interval end"
            ) from None
    if (lookback := params.get("lookback")) and not re.match(_DURATION, str(lookback)):
        raise ValueError(
            f"lookback {lookback!r} is not a duration: give e.g. 30D, 12h or 90min, or leave it empty"
        )
    if params.get("source") in BUILTIN_SOURCES:
        mine = [n for n in ("feature_columns", "label_column", "lookback") if params.get(n)]
        if mine:
            raise ValueError(
                f"{', '.join(mine)} apply to your own dataset, not to source {params['source']!r}: set source to "
                "your dataset's URI, or clear them"
            )
    elif not re.match(_SOURCE, str(params.get("source", ""))):
        raise ValueError(
            f"source {params.get('source')!r} is neither synthetic, nab nor a dataset URI (s3://bucket/prefix, "
            "file:///path or /path)"
        )
    policy = params.get("no_labels_policy", DEFAULTS["no_labels_policy"])
    if policy not in NO_LABELS_POLICIES:
        raise ValueError(f"no_labels_policy {policy!r} is unknown: choose {', '.join(NO_LABELS_POLICIES)}")
    search_space(params)
    if int(params["parallel_trials"]) > int(params["max_trials"]):
        raise ValueError(
            f"parallel_trials ({params['parallel_trials']}) exceeds max_trials ({params['max_trials']}); "
            "lower parallel_trials"
        )
