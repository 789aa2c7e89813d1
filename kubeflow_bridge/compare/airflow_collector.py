"""Collect one Airflow DAG run as step records.

Source: Airflow's metadata database through airflow's own models (``TaskInstance``, ``DagRun``,
``XComModel``, ``SerializedDagModel``). Why: ``airflow dags test`` (what ``make demo`` and the comparison
DAG use) stores its runs in the SQLite database without any API server running. Point
``AIRFLOW_HOME``/``AIRFLOW_CONFIG`` at the deployment to read (the Makefile sets both); for a deployment
whose DB you cannot read, :mod:`kubeflow_bridge.compare.airflow_api` reads the same rows over the REST API.

Compute seconds come from each task's ``return_value`` XCom (the trainer summary's ``compute_seconds``);
dependencies from the serialized DAG, so the critical path follows the DAG's real edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kubeflow_bridge.compare.model import (
    FAILED,
    RUNNING,
    OrchestratorRun,
    StepRecord,
    normalize_state,
    parse_time,
)
from kubeflow_bridge.compare.outputs import compute_seconds_from_output, outcome_from_outputs

#: Worst first: when a mapped task has several instances, the step takes the worst state.
_STATE_RANK = [
    "failed",
    "upstream_failed",
    "cancelled",
    "running",
    "pending",
    "unknown",
    "skipped",
    "succeeded",
]


def _worst(states: Iterable[str]) -> str:
    ranked = sorted(states, key=lambda s: _STATE_RANK.index(s) if s in _STATE_RANK else len(_STATE_RANK))
    return ranked[0] if ranked else "pending"


def airflow_run_from_rows(
    *,
    dag_id: str,
    run_id: str,
    task_instances: Sequence[Mapping[str, Any]],
    outputs: Mapping[str, Any],
    upstream: Mapping[str, Iterable[str]] | None = None,
    run_start: datetime | str | None = None,
    run_end: datetime | str | None = None,
    run_state: str | None = None,
    step_names: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> OrchestratorRun:
    """Turn task-instance rows and XCom outputs into an :class:`OrchestratorRun` (pure).

    Args:
        dag_id: The DAG id (for messages).
        run_id: The DAG run id.
        task_instances: Rows with ``task_id``, ``state``, ``start_date``, ``end_date`` (and optionally
            ``map_index``); mapped instances of one task are merged into one step.
        outputs: ``{task_id: return value}``.
        upstream: ``{task_id: upstream task ids}`` from the DAG; None infers dependencies from times.
        run_start: The DAG run's start.
        run_end: The DAG run's end.
        run_state: The DAG run's state.
        step_names: Renames task ids to canonical step names (default: the task id is the step name).
        errors: ``{task_id: error message}`` for failed tasks where one is known.
        params: The DAG run's conf (its inputs).
    """
    rename = dict(step_names or {})
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in task_instances:
        grouped.setdefault(str(row["task_id"]), []).append(row)
    steps: list[StepRecord] = []
    states: dict[str, str] = {}
    step_outputs: dict[str, Any] = {}
    for task_id, rows in grouped.items():
        name = rename.get(task_id, task_id)
        starts = [t for t in (parse_time(r.get("start_date")) for r in rows) if t is not None]
        ends = [t for t in (parse_time(r.get("end_date")) for r in rows) if t is not None]
        state = _worst(normalize_state(r.get("state")) for r in rows)
        output = outputs.get(task_id)
        step_outputs[name] = output
        states[name] = state
        error = (errors or {}).get(task_id)
        if state == FAILED and not error:
            error = f"task {dag_id}.{task_id} failed; its task log has the traceback"
        ups = None if upstream is None else tuple(rename.get(u, u) for u in upstream.get(task_id, ()))
        steps.append(
            StepRecord(
                step=name,
                start=min(starts) if starts else None,
                end=max(ends) if ends and state != RUNNING else None,
                state=state,
                compute_seconds=compute_seconds_from_output(output),
                error=error,
                upstream=ups,
            )
        )
    steps.sort(key=lambda s: (s.start is None, s.start.timestamp() if s.start else 0.0))
    return OrchestratorRun(
        orchestrator="airflow",
        run_id=run_id,
        steps=steps,
        outcome=outcome_from_outputs(step_outputs, states),
        start=parse_time(run_start),
        end=parse_time(run_end),
        state=normalize_state(run_state),
        params=dict(params or {}),
    )


def collect_airflow_run(
    dag_id: str,
    run_id: str | None = None,
    *,
    step_names: Mapping[str, str] | None = None,
    from_cluster: bool = True,
) -> OrchestratorRun:
    """Read a DAG run (default: the latest) from Airflow's metadata database.

    With ``from_cluster`` and ``$KUBECONFIG`` set, the tune and train steps' compute seconds (which the
    Katib and PyTorchJob operators do not return) are read from the Kubeflow objects they created.

    Raises:
        LookupError: The DAG has no such run (run it first, e.g. ``airflow dags test DAG_ID``).
    """
    # Airflow is imported here, not at module level: the CLI and tests import this module cheaply.
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(DagRun).where(DagRun.dag_id == dag_id)
        if run_id is not None:
            query = query.where(DagRun.run_id == run_id)
        dag_run = session.scalars(query.order_by(DagRun.start_date.desc())).first()
        if dag_run is None:
            which = f"run {run_id!r} of DAG {dag_id!r}" if run_id else f"run of DAG {dag_id!r}"
            raise LookupError(
                f"Airflow has no {which} in its database "
                "(AIRFLOW_HOME/AIRFLOW_CONFIG point at it); run it first, e.g. `airflow dags test "
                f"{dag_id}`"
            )
        rows = [
            {
                "task_id": ti.task_id,
                "state": ti.state,
                "start_date": ti.start_date,
                "end_date": ti.end_date,
                "map_index": ti.map_index,
            }
            for ti in session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id
                )
            )
        ]
        outputs: dict[str, Any] = {}
        for row in session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            )
        ):
            outputs[row.task_id] = XComModel.deserialize_value(row)
        serialized = session.scalar(select(SerializedDagModel).where(SerializedDagModel.dag_id == dag_id))
        upstream = None
        if serialized is not None:
            upstream = {t.task_id: sorted(t.upstream_task_ids) for t in serialized.dag.tasks}
        run = airflow_run_from_rows(
            dag_id=dag_id,
            run_id=dag_run.run_id,
            task_instances=rows,
            outputs=outputs,
            upstream=upstream,
            run_start=dag_run.start_date,
            run_end=dag_run.end_date,
            run_state=dag_run.state,
            step_names=step_names,
            params=dag_run.conf or {},
        )
    if from_cluster:
        run = fill_from_cluster(run, {(step_names or {}).get(k, k): v for k, v in outputs.items()})
    return run


def fill_from_cluster(run: OrchestratorRun, outputs: dict[str, Any]) -> OrchestratorRun:
    """Fill the tune and train steps' compute seconds from the Kubeflow objects at ``$KUBECONFIG``
    (unchanged when it is unset or unreachable)."""
    import os

    if not os.environ.get("KUBECONFIG"):
        return run
    from kubeflow_bridge.clients.kube import KubeflowObjectClient
    from kubeflow_bridge.compare.cluster import fill_compute_from_cluster

    try:
        client = KubeflowObjectClient.from_kubeconfig()
    except Exception:  # no reachable cluster: the report shows those steps' compute as unknown
        return run
    with client:
        return fill_compute_from_cluster(run, outputs, client)
