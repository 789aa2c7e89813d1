# mypy: disable-error-code="valid-type"
"""The retraining workflow as a KFP v2 pipeline: ``anomaly_pipeline``.

ingest -> preprocess -> tune (Katib Experiment) -> train (TrainJob or PyTorchJob) -> evaluate (Metrics + HTML)
-> gate -> ``dsl.If(decision == "deploy")`` -> deploy (KServe InferenceService, canary, smoke, promote).

Lightweight components on the trainer image (``install_kfp_package=False``: the image has kfp), each
a thin call into :mod:`kubeflow_bridge.pipelines.steps`. Every step outputs ``compute_seconds`` (the
trainer's own timing) so the comparison can split wall time into compute and orchestration.

No ``from __future__ import annotations`` here: kfp reads the component signatures' real types; the
return annotations are ``NamedTuple(...)`` calls written inline because kfp ships each component's
source alone (mypy's valid-type check is off for that reason).
"""

from typing import NamedTuple

from kfp import dsl

from kubeflow_bridge.workflow import DEFAULTS, TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def ingest(
    artifact_root: str,
    run_id: str,
    source: str,
    rows: int,
    seed: int,
    window_end: str,
    time_column: str,
    feature_columns: str,
    label_column: str,
    lookback: str,
) -> NamedTuple("IngestOutputs", [("prefix", str), ("dataset", str), ("compute_seconds", float)]):
    """Read your dataset's window (or generate / load the telemetry) into the run's folder."""
    from collections import namedtuple

    from kubeflow_bridge import workflow
    from kubeflow_bridge.pipelines import steps

    prefix = workflow.run_prefix(artifact_root, run_id)
    summary = steps.run_trainer(
        workflow.ingest_args(
            prefix,
            source=source,
            rows=rows,
            seed=seed,
            window_end=window_end,
            time_column=time_column,
            feature_columns=feature_columns,
            label_column=label_column,
            lookback=lookback,
        )
    )
    IngestOutputs = namedtuple("IngestOutputs", ["prefix", "dataset", "compute_seconds"])
    return IngestOutputs(prefix, summary["outputs"]["dataset"], float(summary["compute_seconds"]))


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def preprocess(prefix: str, dataset: str, dask_workers: int) -> NamedTuple(
    "PreprocessOutputs", [("features", str), ("compute_seconds", float)]
):
    """Dask: resample, window features, split by time, fit the scaler on train."""
    from collections import namedtuple

    from kubeflow_bridge import workflow
    from kubeflow_bridge.pipelines import steps

    summary = steps.run_trainer(workflow.preprocess_args(prefix, workers=dask_workers))
    PreprocessOutputs = namedtuple("PreprocessOutputs", ["features", "compute_seconds"])
    return PreprocessOutputs(summary["outputs"]["features"], float(summary["compute_seconds"]))


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def tune(
    prefix: str,
    features: str,
    run_id: str,
    namespace: str,
    max_trials: int,
    parallel_trials: int,
    lr_min: float,
    lr_max: float,
    latent_dim_min: int,
    latent_dim_max: int,
    tune_epochs: int,
    seed: int,
    tracking_uri: str,
    tracking_required: bool,
    registered_model: str,
) -> NamedTuple(
    "TuneOutputs",
    [("best_params", str), ("objective_value", float), ("experiment", str), ("compute_seconds", float)],
):
    """Katib Experiment over lr and latent_dim; returns the best trial's parameters as JSON."""
    from collections import namedtuple

    from kubeflow_bridge.pipelines import steps

    params = {
        "max_trials": max_trials,
        "parallel_trials": parallel_trials,
        "lr_min": lr_min,
        "lr_max": lr_max,
        "latent_dim_min": latent_dim_min,
        "latent_dim_max": latent_dim_max,
        "tune_epochs": tune_epochs,
        "seed": seed,
        "tracking_uri": tracking_uri,
        "tracking_required": tracking_required,
        "registered_model": registered_model,
    }
    result = steps.tune(prefix, params, run_id=run_id, namespace=namespace)
    TuneOutputs = namedtuple(
        "TuneOutputs", ["best_params", "objective_value", "experiment", "compute_seconds"]
    )
    value = result["objective_value"]
    return TuneOutputs(
        steps.as_json(result["best_params"]),
        float("nan") if value is None else float(value),
        result["experiment"],
        float(result["compute_seconds"] or 0.0),
    )


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def train(
    prefix: str,
    best_params: str,
    run_id: str,
    namespace: str,
    epochs: int,
    score_mix: float,
    seed: int,
    training_api: str,
    worker_replicas: int,
    gpus_per_replica: int,
    tracking_uri: str,
    tracking_required: bool,
    registered_model: str,
) -> NamedTuple("TrainOutputs", [("model", str), ("job", str), ("kind", str), ("compute_seconds", float)]):
    """The training job with the tuned parameters: a TrainJob (torchrun on each node) or a PyTorchJob
    (Master + Workers), by ``training_api``; DDP either way."""
    import json
    from collections import namedtuple

    from kubeflow_bridge.pipelines import steps

    params = {
        "epochs": epochs,
        "score_mix": score_mix,
        "seed": seed,
        "training_api": training_api,
        "worker_replicas": worker_replicas,
        "gpus_per_replica": gpus_per_replica,
        "tracking_uri": tracking_uri,
        "tracking_required": tracking_required,
        "registered_model": registered_model,
    }
    result = steps.train(prefix, params, json.loads(best_params), run_id=run_id, namespace=namespace)
    TrainOutputs = namedtuple("TrainOutputs", ["model", "job", "kind", "compute_seconds"])
    return TrainOutputs(
        result["model"], result["job"], result["kind"], float(result["compute_seconds"] or 0.0)
    )


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def evaluate(
    prefix: str,
    model: str,
    contamination: float,
    seed: int,
    service_name: str,
    namespace: str,
    run_id: str,
    tracking_uri: str,
    tracking_required: bool,
    registered_model: str,
    metrics: dsl.Output[dsl.Metrics],
    report: dsl.Output[dsl.HTML],
) -> NamedTuple(
    "EvaluateOutputs",
    [
        ("f_score", str),
        ("baseline_f_score", str),
        ("serving_f_score", str),
        ("evaluable", bool),
        ("channels", int),
        ("model", str),
        ("report_uri", str),
        ("compute_seconds", float),
        ("registered_version", str),
    ],
):
    """The model, the baselines and the serving model at validation-chosen thresholds on the test split."""
    from collections import namedtuple

    from kubeflow_bridge import workflow
    from kubeflow_bridge.pipelines import steps
    from trainer import io

    champion = steps.serving_model_uri(service_name, namespace)  # re-scored on this run's splits
    tracking = {
        "tracking_uri": tracking_uri,
        "tracking_required": tracking_required,
        "registered_model": registered_model,
    }
    summary = steps.run_trainer(
        workflow.evaluate_args(prefix, contamination=contamination, seed=seed, champion_model=champion),
        env=steps.tracking_env(tracking, run_id),
    )
    values = summary.get("metrics", {})
    for name, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics.log_metric(name, float(value))
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(io.read_text(summary["outputs"]["report"]))
    EvaluateOutputs = namedtuple(
        "EvaluateOutputs",
        [
            "f_score",
            "baseline_f_score",
            "serving_f_score",
            "evaluable",
            "channels",
            "model",
            "report_uri",
            "compute_seconds",
            "registered_version",
        ],
    )
    # Scores are text, "" for none: KFP parameters cannot carry NaN (protobuf's number_value refuses it).
    f_score, baseline, serving = (
        "" if values.get(k) is None else repr(float(values[k]))
        for k in (workflow.F_SCORE_METRIC, "baseline_composite_f1", "champion_composite_f1")
    )
    return EvaluateOutputs(
        f_score,
        baseline,
        serving,
        bool(values.get("evaluable", True)),
        int(values["channels"]),
        summary["outputs"]["model"],
        summary["outputs"]["report"],
        float(summary["compute_seconds"]),
        str(summary["outputs"].get("registered_version") or ""),
    )


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def gate(
    f_score: str,
    f_score_threshold: float,
    baseline_f_score: str,
    baseline_margin: float,
    serving_f_score: str,
    evaluable: bool,
    no_labels_policy: str,
    service_name: str,
    namespace: str,
) -> str:
    """``deploy`` when the workflow's gate says so, else ``skip``.

    One output on purpose: kfp.local (2.17) does not evaluate a ``dsl.If`` on one field of a
    NamedTuple output; the reason goes to the log.
    """
    from kubeflow_bridge.pipelines import steps

    decision = steps.gate(
        f_score,
        f_score_threshold,
        service_name=service_name,
        namespace=namespace,
        baseline=baseline_f_score,
        baseline_margin=baseline_margin,
        serving_rescored=serving_f_score,
        evaluable=evaluable,
        no_labels_policy=no_labels_policy,
    )
    print(f"gate: {decision.reason} (decided by: {decision.decided_by})")
    return "deploy" if decision.deploy else "skip"


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def deploy(
    prefix: str,
    f_score: str,
    canary_percent: int,
    service_name: str,
    namespace: str,
    run_id: str,
    source: str,
    channels: int,
    registered_version: str,
    tracking_uri: str,
    tracking_required: bool,
    registered_model: str,
) -> NamedTuple("DeployOutputs", [("deployed", bool), ("url", str), ("compute_seconds", float)]):
    """KServe InferenceService: create, or canary + smoke test + promote (roll back on failure)."""
    from collections import namedtuple

    from kubeflow_bridge.pipelines import steps

    result = steps.deploy(
        prefix,
        f_score=f_score,
        canary_percent=canary_percent,
        service_name=service_name,
        namespace=namespace,
        run_id=run_id,
        source=source,
        channels=channels,
    )
    if registered_version:  # tracking on: the deployed version becomes the registry's champion
        tracking = {
            "tracking_uri": tracking_uri,
            "tracking_required": tracking_required,
            "registered_model": registered_model,
        }
        steps.promote_champion(tracking, registered_version, service_name, namespace, result["url"] or "")
    DeployOutputs = namedtuple("DeployOutputs", ["deployed", "url", "compute_seconds"])
    return DeployOutputs(bool(result["deployed"]), result["url"] or "", 0.0)


@dsl.pipeline(
    name="anomaly-pipeline",
    description="Retrain the telemetry anomaly detector on your dataset: ingest, preprocess, Katib tune, "
    "train (TrainJob or PyTorchJob), evaluate beside baselines, and deploy on KServe when the gate passes.",
)
def anomaly_pipeline(
    source: str = DEFAULTS["source"],
    time_column: str = DEFAULTS["time_column"],
    feature_columns: str = DEFAULTS["feature_columns"],
    label_column: str = DEFAULTS["label_column"],
    lookback: str = DEFAULTS["lookback"],
    rows: int = DEFAULTS["rows"],
    window_end: str = DEFAULTS["window_end"],
    seed: int = DEFAULTS["seed"],
    max_trials: int = DEFAULTS["max_trials"],
    parallel_trials: int = DEFAULTS["parallel_trials"],
    lr_min: float = DEFAULTS["lr_min"],
    lr_max: float = DEFAULTS["lr_max"],
    latent_dim_min: int = DEFAULTS["latent_dim_min"],
    latent_dim_max: int = DEFAULTS["latent_dim_max"],
    tune_epochs: int = DEFAULTS["tune_epochs"],
    epochs: int = DEFAULTS["epochs"],
    score_mix: float = DEFAULTS["score_mix"],
    training_api: str = DEFAULTS["training_api"],
    worker_replicas: int = DEFAULTS["worker_replicas"],
    gpus_per_replica: int = DEFAULTS["gpus_per_replica"],
    f_score_threshold: float = DEFAULTS["f_score_threshold"],
    baseline_margin: float = DEFAULTS["baseline_margin"],
    contamination: float = DEFAULTS["contamination"],
    no_labels_policy: str = DEFAULTS["no_labels_policy"],
    canary_percent: int = DEFAULTS["canary_percent"],
    namespace: str = DEFAULTS["namespace"],
    artifact_root: str = DEFAULTS["artifact_root"],
    service_name: str = DEFAULTS["service_name"],
    tracking_uri: str = DEFAULTS["tracking_uri"],
    tracking_required: bool = DEFAULTS["tracking_required"],
    registered_model: str = DEFAULTS["registered_model"],
) -> None:
    """The pipeline; its inputs mirror the Airflow DAG's params (see workflow.DEFAULTS)."""
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    ingest_task = ingest(
        artifact_root=artifact_root,
        run_id=run_id,
        source=source,
        rows=rows,
        seed=seed,
        window_end=window_end,
        time_column=time_column,
        feature_columns=feature_columns,
        label_column=label_column,
        lookback=lookback,
    )
    prefix = ingest_task.outputs["prefix"]
    preprocess_task = preprocess(prefix=prefix, dataset=ingest_task.outputs["dataset"], dask_workers=1)
    tune_task = tune(
        prefix=prefix,
        features=preprocess_task.outputs["features"],
        run_id=run_id,
        namespace=namespace,
        max_trials=max_trials,
        parallel_trials=parallel_trials,
        lr_min=lr_min,
        lr_max=lr_max,
        latent_dim_min=latent_dim_min,
        latent_dim_max=latent_dim_max,
        tune_epochs=tune_epochs,
        seed=seed,
        tracking_uri=tracking_uri,
        tracking_required=tracking_required,
        registered_model=registered_model,
    )
    train_task = train(
        prefix=prefix,
        best_params=tune_task.outputs["best_params"],
        run_id=run_id,
        namespace=namespace,
        epochs=epochs,
        score_mix=score_mix,
        seed=seed,
        training_api=training_api,
        worker_replicas=worker_replicas,
        gpus_per_replica=gpus_per_replica,
        tracking_uri=tracking_uri,
        tracking_required=tracking_required,
        registered_model=registered_model,
    )
    evaluate_task = evaluate(
        prefix=prefix,
        model=train_task.outputs["model"],
        contamination=contamination,
        seed=seed,
        service_name=service_name,
        namespace=namespace,
        run_id=run_id,
        tracking_uri=tracking_uri,
        tracking_required=tracking_required,
        registered_model=registered_model,
    )
    gate_task = gate(
        f_score=evaluate_task.outputs["f_score"],
        f_score_threshold=f_score_threshold,
        baseline_f_score=evaluate_task.outputs["baseline_f_score"],
        baseline_margin=baseline_margin,
        serving_f_score=evaluate_task.outputs["serving_f_score"],
        evaluable=evaluate_task.outputs["evaluable"],
        no_labels_policy=no_labels_policy,
        service_name=service_name,
        namespace=namespace,
    )
    with dsl.If(gate_task.output == "deploy", name="deploy-if-better"):
        deploy_task = deploy(
            prefix=prefix,
            f_score=evaluate_task.outputs["f_score"],
            canary_percent=canary_percent,
            service_name=service_name,
            namespace=namespace,
            run_id=run_id,
            source=source,
            channels=evaluate_task.outputs["channels"],
            registered_version=evaluate_task.outputs["registered_version"],
            tracking_uri=tracking_uri,
            tracking_required=tracking_required,
            registered_model=registered_model,
        )
    # A retraining run reads a moving window and the live serving model, and deploys: none of its steps
    # may be served from KFP's cache (on by default; a cached deploy would deploy nothing).
    for task in (ingest_task, preprocess_task, tune_task, train_task, evaluate_task, gate_task, deploy_task):
        task.set_caching_options(False)
