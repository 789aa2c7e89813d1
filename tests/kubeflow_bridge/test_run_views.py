"""The plugin's DAG-run page and comparison page, as pure renders (the API server: tests/dags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeflow_bridge.run_views import add_object_states, add_run_views, render_run, report_link


def test_the_run_page_lists_each_tasks_kubeflow_pages_and_the_report() -> None:
    rows = [
        {"task_id": "tune", "state": "success", "links": {"KatibExperiment": "http://d/_/katib/experiment/ns/x"},
         "output": {"best_parameters": {"lr": 0.01}}, "start": None},
        {"task_id": "evaluate", "state": "success", "links": {},
         "output": {"outputs": {"report": "s3://b/runs/r1/evaluation/report.html"}, "f_score": 0.5}, "start": None},
        {"task_id": "<x>", "state": "failed", "links": {}, "output": None, "start": None},
    ]  # fmt: skip
    page = render_run("dag", "run 1", rows, "http://d")
    assert "<a href='http://d/_/katib/experiment/ns/x'>KatibExperiment</a>" in page
    assert (
        "http://d/pipeline/artifacts/get?source=s3&amp;bucket=b&amp;key=runs/r1/evaluation/report.html"
        in page
    )
    assert "&lt;x&gt;" in page and "<x>" not in page  # escaped
    # a task's own tab: that task only, its report embedded
    evaluate = render_run("dag", "run 1", rows, "http://d", task="evaluate")
    assert evaluate.count("<tr><th>") == 2 and "<iframe class='report' src='http://d/pipeline/" in evaluate
    assert "<iframe" not in page and "/kubeflow-bridge/runs/dag/run%201'>All tasks" in evaluate
    assert report_link({"outputs": {"report": "/local/report.html"}}, "http://d") is None
    assert report_link({"outputs": {"report": "s3://b/k.html"}}, "") is None  # no dashboard known


def test_an_object_state_that_cannot_be_read_says_why_and_the_page_still_renders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Seam: the connection. Here the page's connection names a runtime that is not there (nothing listens
    # on port 9 of 127.0.0.1); the real runtime's states are read in tests/dags/test_e2e_compare.py.
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBEFLOW_DEFAULT",
        '{"conn_type": "kubeflow", "extra": {"kfp_endpoint": "http://127.0.0.1:9", "namespace": "ns"}}',
    )
    monkeypatch.setattr("kubeflow_bridge.run_views.STATE_WAIT_S", 20.0)
    rows = [
        {"task_id": "run", "state": "success", "links": {}, "output": None, "start": None,
         "object": {"kind": "KFP run", "name": "r-1", "namespace": ""}},
        {"task_id": "ingest", "state": "success", "links": {}, "output": None, "start": None, "object": None},
    ]  # fmt: skip
    add_object_states(rows)
    assert rows[0]["object_state"].startswith("not read: ") and "object_state" not in rows[1]
    page = render_run("dag", "r", rows, "")
    assert "KFP run <code>r-1</code><br><span class='object-state'>not read: " in page


def test_the_comparison_page_serves_the_latest_report_or_says_how_to_make_one(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    add_run_views(app, tmp_path)
    client = TestClient(app)
    missing = client.get("/comparison")
    assert missing.status_code == 404 and "make demo" in missing.text
    (tmp_path / "comparison.html").write_text("<h1>Same workflow, two orchestrators</h1>")
    assert "Same workflow" in client.get("/comparison").text
