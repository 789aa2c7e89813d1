"""Run the retraining workflow through Airflow and through KFP on the same inputs, then compare.

prepare (fixes the inputs: one training window, one seed) -> run_airflow (triggers
``anomaly_retraining`` and waits) -> run_kfp (``anomaly_pipeline`` on KFP) -> compare (always:
``kubeflow-bridge compare`` writes reports/comparison.{json,html}, failed steps included).

The two runs go one after the other so they do not compete for the same machine, and each deploys to
its own InferenceService (``<service_name>-airflow`` / ``-kfp``) so each gate judges against its own
serving history. Needs a running scheduler (``airflow standalone``): ``run_airflow`` waits for a DAG
run the scheduler executes. Without one, run ``airflow dags test anomaly_retraining``, the KFP run,
and ``kubeflow-bridge compare`` by hand (as ``make demo`` does).

``compare`` reads the Airflow run's task timings from the metadata database (the Task SDK gives a task
no access to another run's task instances). Airflow's task supervisor blanks
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` in task processes to keep DAG code off the database, so the
collector runs as its own process without that variable and takes the connection from
``airflow.cfg``: the worker must have the deployment's airflow.cfg and reach its database (true for
``airflow standalone`` and LocalExecutor deployments).
"""

from __future__ import annotations

import os
import shlex
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator, Param, TriggerRule, task

import kubeflow_bridge.pipelines as pipelines_package
from kubeflow_bridge import workflow
from kubeflow_bridge.hooks.mlflow import MlflowHook
from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator

DAG_ID = "compare_orchestrators"
RETRAINING_DAG_ID = "anomaly_retraining"
PIPELINE_PACKAGE = os.path.join(os.path.dirname(pipelines_package.__file__), "anomaly_pipeline.yaml")

PARAMS = {
    name: Param(default, **workflow.form_schema(name)) for name, default in workflow.FORM_DEFAULTS.items()
}
PARAMS["report_dir"] = Param("reports", type="string", minLength=1, description="where the report goes")


class TriggerAndWaitOperator(BaseOperator):
    """Trigger a DAG run and wait for it to end in one of ``allowed_states``.

    What ``TriggerDagRunOperator(wait_for_completion=True)`` does on Airflow 3 (it raises
    ``DagRunTriggerException``; the task runner creates the run, pushes ``trigger_run_id`` and polls
    its state), without importing that operator here: its module loads Airflow's ORM models, 0.4 s of
    every parse of this file.
    """

    template_fields = ("trigger_run_id", "conf")

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        trigger_run_id: str,
        conf: Any,
        allowed_states: list[str],
        poke_interval: int = 15,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = conf
        self.allowed_states = allowed_states
        self.wait_for_completion = True
        self.poke_interval = poke_interval

    def execute(self, context: Any) -> None:
        import json

        from airflow.sdk import timezone
        from airflow.sdk.exceptions import DagRunTriggerException

        conf = json.loads(self.conf) if isinstance(self.conf, str) else self.conf
        raise DagRunTriggerException(
            trigger_dag_id=self.trigger_dag_id,
            dag_run_id=str(self.trigger_run_id),
            conf=conf,
            logical_date=timezone.utcnow(),  # as TriggerDagRunOperator without a logical_date
            reset_dag_run=False,
            skip_when_already_exists=False,
            wait_for_completion=True,
            allowed_states=self.allowed_states,
            failed_states=[],
            poke_interval=self.poke_interval,
            deferrable=False,
        )


def shared_inputs(params: dict[str, Any], data_interval_end: Any) -> dict[str, Any]:
    """The same inputs for both orchestrators: a fixed window end, one tracking URI, and per-side service
    and registered model names (each side's gate judges its own serving model and champion)."""
    workflow.check_params(params, extra=("report_dir",))  # an unknown name in the conf is an error
    values = workflow.pipeline_inputs(params)
    if not values["window_end"]:
        if data_interval_end is None:
            raise ValueError("set the window_end param: this run has no data interval to take it from")
        values["window_end"] = data_interval_end.isoformat()
    # One MLflow server for both (the KFP components have no Airflow connection to read it from).
    values["tracking_uri"] = values["tracking_uri"] or MlflowHook.configured_uri()
    base = values["service_name"][: 45 - len("-airflow")]
    model = values["registered_model"]
    return {
        "airflow_conf": {**values, "service_name": f"{base}-airflow", "registered_model": f"{model}-airflow"},
        "kfp_params": {**values, "service_name": f"{base}-kfp", "registered_model": f"{model}-kfp"},
    }


def compare_command(airflow_run_id: str, kfp_run_id: str | None, out: str, mlflow_uri: str = "") -> str:
    """The ``kubeflow-bridge compare`` command line (the KFP side only when its run started; logged to
    the runs' MLflow server, with its history in the report, when they had one).

    It drops the blanked database variables (see the module docstring) so airflow.cfg's connection
    applies.
    """
    args = ["env", "-u", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "-u", "AIRFLOW__CORE__SQL_ALCHEMY_CONN",
            "python", "-m", "kubeflow_bridge.compare.cli", "--airflow-dag-id", RETRAINING_DAG_ID,
            "--airflow-run-id", airflow_run_id, "--out", out]  # fmt: skip
    if kfp_run_id:
        args += ["--kfp-run-id", kfp_run_id]
    if mlflow_uri:
        args += ["--mlflow-uri", mlflow_uri]
    return shlex.join(args)


with DAG(
    dag_id=DAG_ID,
    description="Same workflow, two orchestrators: run both and write the comparison report",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
    render_template_as_native_obj=True,
    tags=["kubeflow-bridge", "comparison"],
    doc_md=__doc__,
) as dag:

    @task
    def prepare(**context: Any) -> dict[str, Any]:
        """Fix the inputs both runs share."""
        return shared_inputs(dict(context["params"]), context.get("data_interval_end"))

    run_airflow = TriggerAndWaitOperator(
        task_id="run_airflow",
        trigger_dag_id=RETRAINING_DAG_ID,
        trigger_run_id="compare__{{ run_id }}",
        conf="{{ ti.xcom_pull(task_ids='prepare')['airflow_conf'] }}",
        poke_interval=15,
        allowed_states=["success", "failed"],
    )
    run_kfp = KubeflowPipelineRunOperator(
        task_id="run_kfp",
        pipeline_package_path=PIPELINE_PACKAGE,
        parameters="{{ ti.xcom_pull(task_ids='prepare')['kfp_params'] }}",
        experiment_name="orchestrator-comparison",
        trigger_rule=TriggerRule.ALL_DONE,
    )

    @task.bash(trigger_rule=TriggerRule.ALL_DONE)
    def compare(**context: Any) -> str:
        """Collect both runs (Airflow's DB in a subprocess; KFP's API) and write the report."""
        ti = context["ti"]
        kfp_run_id = ti.xcom_pull(task_ids="run_kfp", key="run_id")
        mlflow_uri = ((ti.xcom_pull(task_ids="prepare") or {}).get("airflow_conf") or {}).get("tracking_uri")
        return compare_command(
            f"compare__{context['run_id']}", kfp_run_id, context["params"]["report_dir"], mlflow_uri or ""
        )

    inputs = prepare()
    inputs >> run_airflow >> run_kfp >> compare()
