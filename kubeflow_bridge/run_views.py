"""Pages of the Airflow UI: what a DAG run created on Kubeflow, and the orchestrator comparison.

``plugins/kubeflow_bridge_plugin.py`` mounts them beside the how-to under ``/kubeflow-bridge`` and adds
them to the UI as external views: a "Kubeflow" tab on each DAG run (``/runs/{dag_id}/{run_id}``: every
task's state, the Kubeflow pages its operators linked, its small outputs, and the evaluation report one
click away; ``?task=<id>``: one task's own tab, its evaluation report embedded) and "Orchestrator
comparison" in the navigation (``/comparison``: the latest
``reports/comparison.html``, whose history comes from MLflow).

They read Airflow's metadata database (the API server's own) and, for each object a task created (its
``kubeflow_resource`` or KFP ``run_id`` XCom), its state now through the ``kubeflow_default`` connection,
classified as the operators classify it; the links open the Kubeflow UIs (the local runtime's, or a
cluster's dashboard).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from kubeflow_bridge.docs_app import URL_PREFIX

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.2rem 2rem}table{border-collapse:collapse}"
    "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}"
    "th{background:#f5f5f5}code{font-size:12px}"
)


def run_rows(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Each task of the run: its state, the link URLs its operators recorded, its return value."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tasks = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        if not tasks:
            raise LookupError(f"no run {run_id!r} of DAG {dag_id!r}")
        xcoms = session.execute(
            select(XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id
            )
        ).all()
        rows: dict[str, dict[str, Any]] = {
            t.task_id: {
                "task_id": t.task_id,
                "state": str(getattr(t.state, "value", t.state) or "none"),
                "links": {},
                "output": None,
                "object": None,
                "start": t.start_date,
            }
            for t in tasks
        }
        for x in xcoms:
            value = XComModel.deserialize_value(x)
            if x.task_id not in rows:
                continue
            if x.key.startswith("_link_") and value:
                rows[x.task_id]["links"][x.key[len("_link_") :].removesuffix("Link")] = str(value)
            elif x.key == "return_value":
                rows[x.task_id]["output"] = value
            elif x.key == "kubeflow_resource" and isinstance(value, dict):
                rows[x.task_id]["object"] = {
                    k: str(value.get(k) or "") for k in ("kind", "name", "namespace")
                }
            elif x.key == "run_id" and value and rows[x.task_id]["object"] is None:
                rows[x.task_id]["object"] = {"kind": KFP_RUN, "name": str(value), "namespace": ""}
    return sorted(rows.values(), key=lambda r: (r["start"] is None, str(r["start"] or "")))


KFP_RUN = "KFP run"
#: How long the page waits for the objects' states (it shows the rest as not read).
STATE_WAIT_S = 8.0


def object_state(hook: Any, ref: dict[str, str]) -> str:
    """An object's state now: ``running``, ``<succeeded|failed|cancelled>: <reason>``, or ``not found``."""
    if ref["kind"] == KFP_RUN:
        from kubeflow_bridge.clients.kfp import run_state

        run = hook.get_kfp_client().get_run(ref["name"])
        message = str((run.get("error") or {}).get("message") or "")
        return run_state(run) + (f": {message}" if message else "")
    from kubeflow_bridge.clients.kube import kind_named
    from kubeflow_bridge.clients.kube.status import classify

    kind = kind_named(ref["kind"])
    obj = hook.get_object_client().get(kind, ref["name"], namespace=ref["namespace"])
    if obj is None:
        return "not found (deleted)"
    found = classify(kind, obj)
    return "running" if found is None else f"{found.state}: {found.reason}"


def add_object_states(rows: list[dict[str, Any]], conn_id: str = "kubeflow_default") -> None:
    """Set each row's ``object_state`` (the rows with an object), reading them side by side for at most
    ``STATE_WAIT_S``; a state not read says why."""
    from concurrent.futures import ThreadPoolExecutor, wait

    wanted = [r for r in rows if r.get("object")]
    if not wanted:
        return
    try:
        from kubeflow_bridge.hooks.kubeflow import KubeflowHook

        hook = KubeflowHook(kubeflow_conn_id=conn_id)
    except Exception as exc:  # no connection: the page still lists the tasks
        for row in wanted:
            row["object_state"] = f"not read: {type(exc).__name__}: {exc}"
        return
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kubeflow-states")
    futures = {pool.submit(object_state, hook, row["object"]): row for row in wanted}
    wait(futures, timeout=STATE_WAIT_S)
    for future, row in futures.items():
        if not future.done():
            row["object_state"] = f"not read in {STATE_WAIT_S:g} s"
        elif (error := future.exception()) is not None:
            row["object_state"] = f"not read: {type(error).__name__}: {str(error)[:200]}"
        else:
            row["object_state"] = future.result()
    pool.shutdown(wait=False, cancel_futures=True)


def report_link(output: Any, dashboard: str) -> str | None:
    """The evaluation report of an evaluate task's output, on the KFP UI's artifact endpoint behind the
    dashboard (``/pipeline/artifacts/get``; the local runtime serves the same path)."""
    report = ((output or {}).get("outputs") or {}).get("report") if isinstance(output, dict) else None
    if not report or not dashboard:
        return None
    parts = urlsplit(str(report))
    if parts.scheme != "s3":
        return None
    return f"{dashboard}/pipeline/artifacts/get?source=s3&bucket={parts.netloc}&key={parts.path.lstrip('/')}"


def render_run(
    dag_id: str, run_id: str, rows: list[dict[str, Any]], dashboard: str, task: str | None = None
) -> str:
    """The run's tasks; with ``task`` (a task's own tab), that task only, its evaluation report embedded."""
    esc = html.escape
    body = []
    shown = [r for r in rows if r["task_id"] == task] if task else rows
    reports = []
    for row in shown:
        links = " · ".join(f"<a href='{esc(url)}'>{esc(kind)}</a>" for kind, url in row["links"].items())
        report = report_link(row["output"], dashboard)
        if report:
            links += (" · " if links else "") + f"<a href='{esc(report)}'>evaluation report</a>"
            reports.append(report)
        output = json.dumps(row["output"], default=str)
        if len(output) > 400:
            output = output[:400] + "…"
        ref = row.get("object")
        made = (
            f"{esc(ref['kind'])} <code>{esc('/'.join(p for p in (ref['namespace'], ref['name']) if p))}</code>"
            f"<br><span class='object-state'>{esc(row.get('object_state') or '')}</span>"
            if ref
            else ""
        )
        body.append(
            f"<tr><th>{esc(row['task_id'])}</th><td>{esc(row['state'])}</td><td>{made}</td><td>{links}</td>"
            f"<td><code>{esc(output if row['output'] is not None else '')}</code></td></tr>"
        )
    title = f"{dag_id} / {run_id}" + (f" / {task}" if task else "")
    embedded = "".join(
        f"<iframe class='report' src='{esc(r)}' style='width:100%;height:640px;border:1px solid #ddd'></iframe>"
        for r in reports
        if task
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}: Kubeflow</title>"
        f"<style>{_STYLE}</style></head><body><h1>{esc(title)}</h1>"
        f"<p>What {'this task' if task else 'each task'} ran on Kubeflow. "
        + (f"<a href='{URL_PREFIX}/runs/{quote(dag_id)}/{quote(run_id)}'>All tasks</a> · " if task else "")
        + f"<a href='{URL_PREFIX}/comparison'>Orchestrator comparison</a></p>"
        "<table><tr><th>task</th><th>state</th><th>object, its state now</th><th>Kubeflow</th><th>output</th></tr>"
        + "".join(body)
        + "</table>"
        + embedded
        + "</body></html>"
    )


def dashboard_url() -> str:
    """The ``kubeflow_default`` connection's dashboard URL ("" when it is not defined)."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection("kubeflow_default")
    except Exception:  # no connection: the page still lists the tasks' links
        return ""
    extra = conn.extra_dejson or {}
    return str(extra.get("dashboard_url") or conn.host or "").rstrip("/")


def add_run_views(app: Any, reports_dir: Path) -> None:
    """``GET /runs/{dag_id}/{run_id}`` and ``GET /comparison`` on the plugin's FastAPI ``app``."""
    from fastapi.responses import HTMLResponse

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    def run_page(dag_id: str, run_id: str, task: str | None = None) -> HTMLResponse:
        try:
            rows = run_rows(dag_id, run_id)
        except LookupError as exc:
            return HTMLResponse(html.escape(str(exc)), status_code=404)
        if task and not any(r["task_id"] == task for r in rows):
            return HTMLResponse(html.escape(f"no task {task!r} in run {run_id!r}"), status_code=404)
        add_object_states([r for r in rows if not task or r["task_id"] == task])
        return HTMLResponse(render_run(dag_id, run_id, rows, dashboard_url(), task))

    @app.get("/comparison", response_class=HTMLResponse)
    def comparison() -> HTMLResponse:
        page = reports_dir / "comparison.html"
        if not page.is_file():
            return HTMLResponse(
                f"No comparison yet in {html.escape(str(reports_dir))}: run `make demo` or the "
                "compare_orchestrators DAG",
                status_code=404,
            )
        return HTMLResponse(page.read_text(encoding="utf-8"))
