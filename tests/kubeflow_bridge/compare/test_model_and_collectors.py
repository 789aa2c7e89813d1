"""Records, state/time normalization, and the two collectors' pure halves on synthetic API data."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kubeflow_bridge.compare.airflow_collector import airflow_run_from_rows
from kubeflow_bridge.compare.analysis import summarize_run
from kubeflow_bridge.compare.kfp_collector import kfp_run_from_details, spec_dependencies, spec_groups
from kubeflow_bridge.compare.model import OrchestratorRun, StepRecord, normalize_state, parse_time
from kubeflow_bridge.compare.outputs import compute_seconds_from_output, outcome_from_outputs


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("success", "succeeded"),
        ("SUCCEEDED", "succeeded"),
        ("upstream_failed", "upstream_failed"),
        ("CANCELING", "cancelled"),
        ("CANCELED", "cancelled"),
        ("SKIPPED", "skipped"),
        ("deferred", "running"),
        (None, "pending"),
        ("FAILED", "failed"),
    ],
)
def test_normalize_state(raw: str | None, expected: str) -> None:
    assert normalize_state(raw) == expected


def test_parse_time_forms() -> None:
    assert parse_time("2026-01-01T00:00:05Z") == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert parse_time(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
    # KFP writes the epoch for times that are not set.
    assert parse_time("1970-01-01T00:00:00Z") is None
    assert parse_time(None) is None
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday")


def test_step_record_rejects_impossible_values() -> None:
    with pytest.raises(ValueError, match="ends"):
        StepRecord("a", parse_time(10), parse_time(5), "succeeded")
    with pytest.raises(ValueError, match="compute_seconds"):
        StepRecord("a", None, None, "succeeded", compute_seconds=-1)
    with pytest.raises(ValueError, match="duplicate"):
        OrchestratorRun("x", "r", [StepRecord("a", None, None, "skipped")] * 2)


def test_run_round_trips_through_json(linear_steps: list[StepRecord]) -> None:
    run = OrchestratorRun("kfp", "k1", linear_steps, state="succeeded")
    again = OrchestratorRun.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again == run


def test_compute_seconds_from_outputs() -> None:
    assert compute_seconds_from_output({"compute_seconds": 3.5}) == 3.5
    assert compute_seconds_from_output({"summary": {"compute_seconds": "2"}}) == 2.0
    assert compute_seconds_from_output('{"compute_seconds": 1.25}') == 1.25
    assert compute_seconds_from_output({"uri": "s3://x"}) is None
    assert compute_seconds_from_output(None) is None


def test_outcome_prefers_summary_then_step_outputs() -> None:
    outputs = {"tune": {"best_params": '{"lr": 0.01}'}, "evaluate": {"f_score": "0.7"}}
    outcome = outcome_from_outputs(outputs, {"deploy": "skipped"})
    assert outcome.best_params == {"lr": 0.01}
    assert outcome.f_score == pytest.approx(0.7)
    assert outcome.deployed is False
    summary = {"summary": {"best_params": {"lr": 0.02}, "f_score": 0.9, "deployed": True}}
    outcome = outcome_from_outputs({**outputs, **summary}, {"deploy": "skipped"})
    assert (outcome.best_params, outcome.f_score, outcome.deployed) == ({"lr": 0.02}, 0.9, True)
    assert outcome.training_kind is None
    assert outcome_from_outputs({"train": {"kind": "TrainJob"}}, {}).training_kind == "TrainJob"
    assert outcome_from_outputs({}, {"deploy": "succeeded"}).deployed is True
    assert outcome_from_outputs({}, {}).deployed is None


def test_airflow_rows_become_steps() -> None:
    rows = [
        {
            "task_id": "ingest",
            "state": "success",
            "start_date": "2026-01-01T00:00:00Z",
            "end_date": "2026-01-01T00:00:10Z",
        },
        # Two mapped instances of one task: merged, worst state wins, span covers both.
        {
            "task_id": "train",
            "state": "success",
            "start_date": "2026-01-01T00:00:12Z",
            "end_date": "2026-01-01T00:00:20Z",
            "map_index": 0,
        },
        {
            "task_id": "train",
            "state": "failed",
            "start_date": "2026-01-01T00:00:12Z",
            "end_date": "2026-01-01T00:00:25Z",
            "map_index": 1,
        },
        {"task_id": "deploy", "state": "upstream_failed", "start_date": None, "end_date": None},
    ]
    run = airflow_run_from_rows(
        dag_id="d",
        run_id="manual__1",
        task_instances=rows,
        outputs={"ingest": {"uri": "s3://b/raw", "compute_seconds": 7.5}},
        upstream={"ingest": [], "train": ["ingest"], "deploy": ["train"]},
        run_start="2026-01-01T00:00:00Z",
        run_end="2026-01-01T00:00:26Z",
        run_state="failed",
    )
    assert [s.step for s in run.steps] == ["ingest", "train", "deploy"]
    train = run.step("train")
    assert train is not None and train.state == "failed"
    assert train.duration_seconds == pytest.approx(13.0)
    assert "d.train failed" in (train.error or "")
    assert run.step("ingest").compute_seconds == 7.5  # type: ignore[union-attr]
    assert run.step("deploy").upstream == ("train",)  # type: ignore[union-attr]
    assert run.outcome.deployed is False
    summary = summarize_run(run)
    assert summary["wall_seconds"] == pytest.approx(26.0)
    assert summary["critical_path"]["seconds"] == pytest.approx(7.5)
    assert summary["overhead_seconds"] == pytest.approx(18.5)


# The shape kfp 2.17's compiler writes: the gate's If is a sub-DAG component named condition-1.
_SPEC = {
    "pipelineInfo": {"name": "anomaly-pipeline"},
    "components": {
        "comp-condition-1": {
            "dag": {
                "tasks": {"deploy": {"componentRef": {"name": "comp-deploy"}, "taskInfo": {"name": "deploy"}}}
            }
        },
        "comp-deploy": {"executorLabel": "exec-deploy"},
    },
    "root": {
        "dag": {
            "tasks": {
                "ingest": {"componentRef": {"name": "comp-ingest"}},
                "train": {"componentRef": {"name": "comp-train"}, "dependentTasks": ["ingest"]},
                "evaluate": {"componentRef": {"name": "comp-evaluate"}, "dependentTasks": ["train"]},
                "condition-1": {
                    "componentRef": {"name": "comp-condition-1"},
                    "dependentTasks": ["evaluate"],
                    "taskInfo": {"name": "deploy-if-better"},
                },
                "report": {
                    "componentRef": {"name": "comp-report"},
                    "dependentTasks": ["condition-1", "train"],
                },
            }
        }
    },
}


def test_spec_groups_name_control_flow() -> None:
    assert spec_groups(_SPEC) == {"condition-1", "deploy-if-better", "anomaly-pipeline"}


def test_spec_dependencies_walk_condition_groups() -> None:
    deps = spec_dependencies(_SPEC)
    assert deps == {
        "ingest": [],
        "train": ["ingest"],
        "evaluate": ["train"],
        "deploy": ["evaluate"],
        "report": ["deploy", "train"],
    }


def _detail(name: str, start: str | None, end: str | None, state: str, **extra: object) -> dict[str, object]:
    return {"display_name": name, "start_time": start, "end_time": end, "state": state, **extra}


def test_kfp_run_details_become_steps() -> None:
    run = {
        "run_id": "abc",
        "state": "FAILED",
        "created_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:01:00Z",
        "pipeline_spec": _SPEC,
        "run_details": {
            "task_details": [
                _detail("root", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "FAILED"),
                _detail("anomaly-pipeline", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "FAILED"),
                _detail(
                    "ingest",
                    "2026-01-01T00:00:02Z",
                    "2026-01-01T00:00:12Z",
                    "SUCCEEDED",
                    output_parameters={"compute_seconds": 8.0, "data_uri": "s3://b/raw"},
                ),
                _detail(
                    "train",
                    "2026-01-01T00:00:13Z",
                    "2026-01-01T00:00:43Z",
                    "SUCCEEDED",
                    output_parameters={"compute_seconds": 25.0},
                ),
                _detail(
                    "evaluate",
                    "2026-01-01T00:00:44Z",
                    "2026-01-01T00:00:50Z",
                    "FAILED",
                    error={"code": 2, "message": "evaluate: test split is empty"},
                ),
                _detail("deploy-if-better", None, None, "SKIPPED"),
                _detail("deploy", "1970-01-01T00:00:00Z", None, "SKIPPED"),
            ]
        },
    }
    result = kfp_run_from_details(run)
    assert [s.step for s in result.steps] == ["ingest", "train", "evaluate", "deploy"]
    evaluate = result.step("evaluate")
    assert evaluate is not None and evaluate.state == "failed"
    assert evaluate.error == "evaluate: test split is empty"
    deploy = result.step("deploy")
    assert deploy is not None and deploy.start is None and deploy.upstream == ("evaluate",)
    assert result.outcome.deployed is False
    summary = summarize_run(result)
    assert summary["wall_seconds"] == pytest.approx(60.0)
    assert summary["critical_path"] == {
        "seconds": pytest.approx(33.0),
        "steps": ["ingest", "train", "evaluate"],
        "inferred": False,
    }
    assert summary["overhead_seconds"] == pytest.approx(27.0)
    assert summary["compute_unknown"] == ["evaluate"]
