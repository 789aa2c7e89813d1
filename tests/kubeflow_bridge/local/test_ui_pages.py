"""The local UI's page pieces on the real compiled pipeline (the pages themselves: tests/dags, in Chromium)."""

from __future__ import annotations

import re

import yaml

from kubeflow_bridge import workflow
from kubeflow_bridge.local.ui import pages
from kubeflow_bridge.pipelines.compile import COMPILED_PATH


def test_the_pipeline_graph_has_every_step_and_its_dependencies() -> None:
    spec = yaml.safe_load(COMPILED_PATH.read_text())
    order, deps = pages._dag(spec)
    assert sorted(order) == sorted(workflow.STEPS)
    assert deps["ingest"] == [] and "tune" in deps["train"]  # and ingest: its prefix output
    assert "gate" in deps["deploy"]  # inside dsl.If: it follows what the condition follows
    svg = pages.graph_svg(order, deps, {"ingest": "SUCCEEDED", "tune": "CACHED", "deploy": "SKIPPED"})
    states = dict(re.findall(r"data-task='([^']+)' data-state='([^']*)'", svg))
    assert states["ingest"] == "SUCCEEDED" and states["tune"] == "CACHED" and states["deploy"] == "SKIPPED"
    assert states["evaluate"] == "PENDING"  # not started yet
    assert svg.count("<line") == sum(len(v) for v in deps.values())


def test_the_objective_plot_has_a_point_per_reporting_trial_and_escapes_names() -> None:
    svg = pages.objective_plot([("t<1>", 0.5), ("t2", None), ("t3", 0.25)], "val_loss")
    assert svg.count("class='point'") == 2 and "t&lt;1&gt;" in svg
    assert "No trial" in pages.objective_plot([("t1", None)], "val_loss")


def test_the_kfp_ui_hash_routes_are_forwarded() -> None:
    script = pages.hash_router()
    assert "/_/pipeline/runs/details/" in script and "experiment_id=" in script
    assert "/_/pipeline/compare?" in script
    assert "cloneFromRun=" in script and "/_/pipeline/runs/clone/" in script


def test_run_comparison_shows_params_and_task_metrics_and_marks_differences() -> None:
    def run(run_id: str, seed: int, f_score: str) -> dict:  # type: ignore[type-arg]
        return {
            "run_id": run_id,
            "display_name": run_id,
            "runtime_config": {"parameters": {"seed": seed, "rows": 5000}},
            "run_details": {
                "task_details": [
                    {"display_name": "evaluate", "output_parameters": {"f_score": f_score, "model": "s3://m"}}
                ]
            },
        }

    page = pages.compare_page([run("a", 0, "0.5"), run("b", 1, "0.5")])
    rows = dict(re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", page))
    assert rows["<b>seed</b>"] == "<td>0</td><td>1</td>"  # differs: bold
    assert rows["rows"] == "<td>5000</td><td>5000</td>"
    assert rows["evaluate.f_score"] == "<td>0.5</td><td>0.5</td>"
    assert "evaluate.model" not in rows  # not a number
