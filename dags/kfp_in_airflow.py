"""The KFP pipeline of the retraining workflow as one task between Airflow tasks.

prepare (Airflow: params -> pipeline parameters) -> run_pipeline (KubeflowPipelineRunOperator runs
``anomaly_pipeline`` on KFP and waits) -> report (Airflow: reads the run's output parameters).

Use it when a team keeps its training in KFP but schedules and chains it with Airflow: the params of
the trigger form flow into the run, and the run's outputs flow on to downstream tasks via XCom.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

import kubeflow_bridge.pipelines as pipelines_package
from kubeflow_bridge import workflow
from kubeflow_bridge.hooks.mlflow import MlflowHook
from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator

DAG_ID = "kfp_in_airflow"
#: The compiled pipeline checked in next to the pipeline code (`python -m kubeflow_bridge.pipelines.compile`).
PIPELINE_PACKAGE = os.path.join(os.path.dirname(pipelines_package.__file__), "anomaly_pipeline.yaml")

PARAMS = {
    name: Param(default, **workflow.form_schema(name)) for name, default in workflow.FORM_DEFAULTS.items()
}
PARAMS["experiment"] = Param("anomaly-retraining", type="string", minLength=1, description="KFP experiment")


def pipeline_parameters(params: dict[str, Any], data_interval_end: Any = None) -> dict[str, Any]:
    """The pipeline's inputs from the DAG params (cross-checked; window end from the data interval; the
    MLflow URI from the mlflow_default connection when the param is empty: KFP components have no
    Airflow connection to read it from)."""
    workflow.check_params(params, extra=("experiment",))  # an unknown name in the conf is an error
    values = workflow.pipeline_inputs(params)
    if not values["window_end"] and data_interval_end is not None:
        values["window_end"] = data_interval_end.isoformat()
    values["tracking_uri"] = values["tracking_uri"] or MlflowHook.configured_uri()
    return values


def run_outcome(result: dict[str, Any]) -> dict[str, Any]:
    """What the pipeline run produced, from the operator's return value (small, typed)."""
    import json

    outputs = result.get("output_parameters") or {}
    tune = outputs.get("tune") or {}
    best = tune.get("best_params")
    deploy = outputs.get("deploy") or {}
    f_score = (outputs.get("evaluate") or {}).get("f_score")
    return {
        "run_id": result.get("run_id"),
        "state": result.get("state"),
        "best_params": json.loads(best) if isinstance(best, str) else best,
        # "" (no score: the run could not be evaluated against labels) is None here.
        "f_score": float(f_score) if f_score not in (None, "") else None,
        "gate": (outputs.get("gate") or {}).get("Output"),
        "deployed": bool(deploy.get("deployed", False)),
        "url": deploy.get("url") or None,
    }


with DAG(
    dag_id=DAG_ID,
    description="Run the anomaly KFP pipeline from Airflow, params in and outputs out",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
    render_template_as_native_obj=True,
    tags=["kubeflow-bridge", "kfp"],
    doc_md=__doc__,
) as dag:

    @task
    def prepare(**context: Any) -> dict[str, Any]:
        """Validate the params and turn them into pipeline parameters."""
        return pipeline_parameters(dict(context["params"]), context.get("data_interval_end"))

    run_pipeline = KubeflowPipelineRunOperator(
        task_id="run_pipeline",
        pipeline_package_path=PIPELINE_PACKAGE,
        parameters="{{ ti.xcom_pull(task_ids='prepare') }}",
        experiment_name="{{ params.experiment }}",
    )

    @task
    def report(result: dict[str, Any]) -> dict[str, Any]:
        """The run's outcome for downstream tasks (and the run's summary)."""
        outcome = run_outcome(result)
        print(
            f"KFP run {outcome['run_id']}: {outcome['state']}, F-score {outcome['f_score']}, "
            f"deployed {outcome['deployed']}"
        )
        return outcome

    prepare() >> run_pipeline
    report(run_pipeline.output)
