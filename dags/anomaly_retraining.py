"""Scheduled retraining of the telemetry anomaly detector on Kubeflow, orchestrated by Airflow.

ingest (pod) -> preprocess (pod) -> tune (Katib Experiment) -> train (TrainJob, or PyTorchJob with
``training_api=pytorchjob``; best params)
-> evaluate (pod) -> gate (threshold + serving model) -> deploy (KServe: canary, smoke test, promote)
-> champion (moves the MLflow registry's ``champion`` alias to the deployed version, when tracking is on)
-> summary (always) and check_run (fails the run when a step failed). A gate that says "no" skips
deploy and leaves the serving model untouched; the run still succeeds.

Every step runs the same trainer image as the KFP pipeline (``kubeflow_bridge.pipelines``) with the
same arguments (``kubeflow_bridge.workflow``). Data and models live in object storage under
``<artifact_root>/<run_id>``; only small values travel through XCom. The daily data interval selects
the training window: it ends at the interval's end (or at the ``window_end`` param); your own dataset
(``source`` = its URI) is read over the ``lookback`` before that end, synthetic data is ``rows`` points.
With an MLflow tracking URI (the ``tracking_uri`` param, else the ``mlflow_default`` connection) the
trials, train and evaluate log their runs there and evaluate registers the model.

Top-level imports stay light (Airflow SDK, our operators, the stdlib-only workflow module): the
Kubernetes client and the cncf pod operator load only when a pod task runs.
"""

from __future__ import annotations

import logging
from datetime import UTC, timedelta
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, task

from kubeflow_bridge import workflow
from kubeflow_bridge.hooks.mlflow import MlflowHook
from kubeflow_bridge.operators.gate import ModelGateBranchOperator
from kubeflow_bridge.operators.katib import KatibExperimentOperator
from kubeflow_bridge.operators.kserve import KServeDeployOperator, serving_model_uri
from kubeflow_bridge.operators.pod import TrainerPodOperator
from kubeflow_bridge.operators.training import TrainingJobOperator

log = logging.getLogger(__name__)
DAG_ID = "anomaly_retraining"
#: The trigger form's fields: the workflow's defaults with their JSON schemas.
PARAMS = {
    name: Param(default, **workflow.form_schema(name)) for name, default in workflow.FORM_DEFAULTS.items()
}


# --- template macros: the workflow's arguments from the rendered params -------------------------------
def _window_end(params: dict[str, Any], data_interval_end: Any) -> str:
    if params.get("window_end"):
        return str(params["window_end"])
    if data_interval_end is None:
        return ""
    return data_interval_end.astimezone(UTC).isoformat()


def _prefix(params: dict[str, Any], run_id: str) -> str:
    return workflow.run_prefix(params["artifact_root"], run_id)


def _ingest_args(params: dict[str, Any], run_id: str, data_interval_end: Any) -> list[str]:
    workflow.check_params(params)  # fail before anything is created
    return workflow.ingest_args(
        _prefix(params, run_id),
        source=params["source"],
        rows=params["rows"],
        seed=params["seed"],
        window_end=_window_end(params, data_interval_end),
        time_column=params["time_column"],
        feature_columns=params["feature_columns"],
        label_column=params["label_column"],
        lookback=params["lookback"],
    )


def _tracking_uri(params: dict[str, Any]) -> str:
    return str(params.get("tracking_uri") or MlflowHook.configured_uri())


def _tracking_env(
    params: dict[str, Any], run_id: str, data_interval_end: Any, trial: bool = False
) -> list[dict[str, Any]]:
    from kubeflow_bridge.workflow.tracking import workflow_env

    return workflow_env(
        params,
        _tracking_uri(params),
        orchestrator="airflow",
        workflow=DAG_ID,
        run_id=run_id,
        window_end=_window_end(params, data_interval_end),
        trial=trial,
    )


MACROS = {
    "prefix": _prefix,
    "ingest_args": _ingest_args,
    "preprocess_args": lambda params, run_id: workflow.preprocess_args(_prefix(params, run_id)),
    "search_space": workflow.search_space,
    "trial_args": lambda params, run_id: workflow.trial_args(
        _prefix(params, run_id), epochs=params["tune_epochs"], seed=params["seed"]
    ),
    # A TrainJob or a PyTorchJob by the training_api param; the operator names it.
    "train_job": lambda params, run_id, best, env: workflow.training_job(
        _prefix(params, run_id), params, best, env=env
    ),
    # MLflow: the URI, experiment and run tags for trials, train and evaluate ([] when tracking is off).
    "tracking_env": _tracking_env,
    # Reads the live InferenceService when the task renders: evaluate re-scores the model it serves.
    "evaluate_args": lambda params, run_id: workflow.evaluate_args(
        _prefix(params, run_id),
        contamination=params["contamination"],
        seed=params["seed"],
        champion_model=serving_model_uri(params["service_name"], params["namespace"]),
    ),
    "evaluated_model_uri": lambda params, run_id: workflow.evaluated_model_uri(_prefix(params, run_id)),
    "smoke_payload": lambda params, evaluated: workflow.smoke_payload(
        params["source"], channels=evaluated["metrics"].get("channels")
    ),
}


with DAG(
    dag_id=DAG_ID,
    description="Retrain the telemetry anomaly detector (Katib, TrainJob, KServe) on a daily window",
    # Daily at 03:00, each run covering the day before it. Unpausing the DAG starts no run of its own for
    # the last 03:00: run_immediately=timedelta(0), a zero grace period. (False is not enough: Airflow
    # treats it like None and still runs the last 03:00 when unpaused within 2.4 hours of it.)
    schedule=CronTriggerTimetable(
        "0 3 * * *", timezone="UTC", interval=timedelta(days=1), run_immediately=timedelta(0)
    ),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    user_defined_macros=MACROS,
    render_template_as_native_obj=True,
    default_args={"retries": 0},
    tags=["kubeflow-bridge", "anomaly"],
    doc_md=__doc__,
) as dag:
    ns = "{{ params.namespace }}"
    ingest = TrainerPodOperator(
        task_id="ingest",
        arguments="{{ ingest_args(params, run_id, data_interval_end | default(None)) }}",
        namespace=ns,
    )
    preprocess = TrainerPodOperator(
        task_id="preprocess", arguments="{{ preprocess_args(params, run_id) }}", namespace=ns
    )
    tune = KatibExperimentOperator(
        task_id="tune",
        namespace=ns,
        image=workflow.TRAINER_IMAGE,
        search_space="{{ search_space(params) }}",
        objective_metric=workflow.OBJECTIVE_METRIC,
        objective_type="minimize",
        algorithm="random",
        algorithm_settings={"random_state": "{{ params.seed }}"},
        trial_args="{{ trial_args(params, run_id) }}",
        parallel_trial_count="{{ params.parallel_trials }}",
        max_trial_count="{{ params.max_trials }}",
        max_failed_trial_count=1,
        trial_env_from=workflow.storage_env_from(),
        trial_env="{{ tracking_env(params, run_id, data_interval_end | default(None), True) }}",
    )
    train = TrainingJobOperator(
        task_id="train",
        namespace=ns,
        job="{{ train_job(params, run_id, ti.xcom_pull(task_ids='tune')['best_parameters'], "
        "tracking_env(params, run_id, data_interval_end | default(None))) }}",
    )
    evaluate = TrainerPodOperator(
        task_id="evaluate",
        arguments="{{ evaluate_args(params, run_id) }}",
        namespace=ns,
        env_vars="{{ tracking_env(params, run_id, data_interval_end | default(None)) }}",
    )
    gate = ModelGateBranchOperator(
        task_id="gate",
        metric_value="{{ ti.xcom_pull(task_ids='evaluate')['f_score'] }}",
        threshold="{{ params.f_score_threshold }}",
        baseline_value="{{ ti.xcom_pull(task_ids='evaluate')['metrics'].get('baseline_composite_f1') }}",
        baseline_margin="{{ params.baseline_margin }}",
        serving_value="{{ ti.xcom_pull(task_ids='evaluate')['metrics'].get('champion_composite_f1') }}",
        evaluable="{{ ti.xcom_pull(task_ids='evaluate')['metrics'].get('evaluable', True) }}",
        no_labels_policy="{{ params.no_labels_policy }}",
        metric_name=workflow.F_SCORE_METRIC,
        service_name="{{ params.service_name }}",
        namespace=ns,
        deploy_task_ids="deploy",
    )
    deploy = KServeDeployOperator(
        task_id="deploy",
        name="{{ params.service_name }}",
        namespace=ns,
        image=workflow.TRAINER_IMAGE,
        model_uri="{{ evaluated_model_uri(params, run_id) }}",
        env_from=workflow.storage_env_from(),
        canary_traffic_percent="{{ params.canary_percent }}",
        smoke_payload="{{ smoke_payload(params, ti.xcom_pull(task_ids='evaluate')) }}",
        metrics={workflow.F_SCORE_METRIC: "{{ ti.xcom_pull(task_ids='evaluate')['f_score'] }}"},
    )

    @task
    def champion(**context: Any) -> dict[str, Any] | None:
        """Point the registry's ``champion`` alias at the version just deployed (None: not registered)."""
        from kubeflow_bridge.workflow.tracking import TrackingError, promote_champion

        params, ti = context["params"], context["ti"]
        outputs = (ti.xcom_pull(task_ids="evaluate") or {}).get("outputs") or {}
        if not outputs.get("registered_version"):
            return None  # tracking off, or it failed and was optional
        try:
            return promote_champion(
                MlflowHook().client(_tracking_uri(params)),
                model=outputs["registered_model"],
                version=outputs["registered_version"],
                service=params["service_name"],
                namespace=params["namespace"],
                url=(ti.xcom_pull(task_ids="deploy") or {}).get("url", ""),
            )
        except TrackingError:
            if params["tracking_required"]:
                raise
            log.warning("champion: the registry could not be updated; tracking is optional", exc_info=True)
            return None

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """Record what the run produced (runs whatever happened upstream; None where a step did not)."""
        ti = context["ti"]
        tuned = ti.xcom_pull(task_ids="tune") or {}
        evaluated = ti.xcom_pull(task_ids="evaluate") or {}
        deployed = ti.xcom_pull(task_ids="deploy")
        return {
            "run_id": context["run_id"],
            "window_end": _window_end(context["params"], context.get("data_interval_end")),
            "best_params": tuned.get("best_parameters"),
            "objective_value": tuned.get("objective_value"),
            "f_score": evaluated.get("f_score"),
            "baseline_f_score": (evaluated.get("metrics") or {}).get("baseline_composite_f1"),
            "gate": ti.xcom_pull(task_ids="gate", key="gate"),
            "report": (evaluated.get("outputs") or {}).get("report"),
            "deployed": deployed is not None,
            "url": (deployed or {}).get("url"),
            "registered_version": (evaluated.get("outputs") or {}).get("registered_version"),
            "champion": ti.xcom_pull(task_ids="champion"),
        }

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def check_run() -> None:
        """Fail the run when a step failed (``summary`` always succeeds, so it cannot carry that)."""
        raise RuntimeError("a step of the retraining failed; see the failed task's log")

    promoted = champion()
    ingest >> preprocess >> tune >> train >> evaluate >> gate >> deploy >> promoted
    # Not downstream of the gate itself: a branch operator skips every direct downstream task it does
    # not choose. A failed gate still reaches them as deploy's upstream_failed.
    steps = [ingest, preprocess, tune, train, evaluate, deploy, promoted]
    steps >> summary()
    steps >> check_run()
