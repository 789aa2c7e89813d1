"""The plugin's DAG-run page and comparison page, as pure renders (the API server: tests/dags)."""

from __future__ import annotations

from pathlib import Path

from kubeflow_bridge.run_views import add_run_views, render_run, report_link


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
    assert report_link({"outputs": {"report": "/local/report.html"}}, "http://d") is None
    assert report_link({"outputs": {"report": "s3://b/k.html"}}, "") is None  # no dashboard known


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
