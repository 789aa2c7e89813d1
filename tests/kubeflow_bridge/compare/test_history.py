"""The comparison's history across runs, from a real MLflow server (the local runtime's launcher)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from kubeflow_bridge.compare.cli import main
from kubeflow_bridge.compare.history import HISTORY_EXPERIMENT
from kubeflow_bridge.compare.model import OrchestratorRun, Outcome, StepRecord
from kubeflow_bridge.local.images import trainer_python
from kubeflow_bridge.local.s3 import free_port
from kubeflow_bridge.local.tracking import TrackingServer
from kubeflow_bridge.workflow.tracking import EXPERIMENT, MlflowRest


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = TrackingServer(
        state_dir=tmp_path_factory.mktemp("mlflow"), port=free_port(), python=trainer_python()
    )
    server.start()
    try:
        server.wait_ready()
        yield server.uri
    finally:
        server.stop()


def day_runs(steps: list[StepRecord], day: int, f_airflow: float, f_kfp: float) -> list[OrchestratorRun]:
    """A pair of runs ``day`` days after T0; the Airflow side's steps 5 s later each (more overhead)."""
    shift = timedelta(days=day)

    def moved(extra: float) -> list[StepRecord]:
        return [
            dataclasses.replace(s, start=s.start + shift, end=s.end + shift + timedelta(seconds=extra))
            for s in steps
        ]

    return [
        OrchestratorRun(
            "airflow", f"scheduled__{day}", moved(5), outcome=Outcome(f_score=f_airflow), state="succeeded"
        ),
        OrchestratorRun("kfp", f"run-{day}", moved(0), outcome=Outcome(f_score=f_kfp), state="succeeded"),
    ]


def compare(tmp_path: Path, runs: list[OrchestratorRun], uri: str, name: str) -> dict:  # type: ignore[type-arg]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps([r.to_dict() for r in runs]))
    assert main(["--input", str(path), "--out", str(tmp_path / name), "--mlflow-uri", uri]) == 0
    return json.loads((tmp_path / name / "comparison.json").read_text())  # type: ignore[no-any-return]


def test_two_days_of_history_and_each_sides_mlflow_run(
    tmp_path: Path, mlflow_uri: str, linear_steps: list[StepRecord]
) -> None:
    rest = MlflowRest(mlflow_uri)
    # The KFP side of day 1 logged its workflow run (as the trainer's train/evaluate does); Airflow's did not.
    rest.log_run(
        EXPERIMENT,
        name="train",
        tags={
            "kubeflow_bridge.run_id": "run-1",
            "kubeflow_bridge.orchestrator": "kfp",
            "kubeflow_bridge.step": "train",
        },
        metrics={"eval_composite_f1": 0.7},
        start_ms=0,
        end_ms=1,
    )
    first = compare(tmp_path, day_runs(linear_steps, 1, 0.6, 0.7), mlflow_uri, "day1")
    assert len(first["mlflow"]["history"]) == 1
    assert set(first["mlflow"]["links"]) == {"kfp"} and first["mlflow"]["links"]["kfp"].startswith(mlflow_uri)
    second = compare(tmp_path, day_runs(linear_steps, 2, 0.65, 0.75), mlflow_uri, "day2")
    newest, oldest = second["mlflow"]["history"]
    assert (newest["date"][:10], oldest["date"][:10]) == ("2026-01-03", "2026-01-02")
    assert (newest["airflow_f_score"], newest["kfp_f_score"], oldest["kfp_f_score"]) == (0.65, 0.75, 0.7)
    by_side = {r["orchestrator"]: r for r in second["runs"]}
    assert newest["airflow_overhead_seconds"] == pytest.approx(by_side["airflow"]["overhead_seconds"])
    assert newest["kfp_wall_seconds"] == pytest.approx(by_side["kfp"]["wall_seconds"])
    assert newest["airflow_overhead_seconds"] > newest["kfp_overhead_seconds"]
    html = (tmp_path / "day2" / "comparison.html").read_text()
    assert "History (MLflow" in html and "2026-01-03" in html and "2026-01-02" in html
    # The same pair compared again is not logged twice.
    again = compare(tmp_path, day_runs(linear_steps, 2, 0.65, 0.75), mlflow_uri, "again")
    assert len(again["mlflow"]["history"]) == 2
    assert len(rest.search_runs(HISTORY_EXPERIMENT)) == 2


def test_unreachable_mlflow_keeps_the_report(
    tmp_path: Path, linear_steps: list[StepRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    doc = compare(tmp_path, day_runs(linear_steps, 1, 0.6, 0.7), nowhere, "down")
    assert "unreachable" in doc["mlflow"]["error"]
    assert "not logged" in capsys.readouterr().err
    assert "Not logged to" in (tmp_path / "down" / "comparison.html").read_text()
