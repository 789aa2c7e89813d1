"""The written report (JSON + self-contained HTML) and the `compare` command line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kubeflow_bridge.compare.cli import main
from kubeflow_bridge.compare.model import OrchestratorRun, Outcome, StepRecord
from kubeflow_bridge.compare.report import write_report


@pytest.fixture
def two_runs(linear_steps: list[StepRecord], rec: Callable[..., StepRecord]) -> list[OrchestratorRun]:
    airflow = OrchestratorRun(
        "airflow",
        "manual__1",
        [
            *linear_steps[:3],
            rec(
                "train",
                82,
                90,
                None,
                state="failed",
                upstream=("tune",),
                error="replica <worker-1> exited 137",
            ),
            rec("evaluate", None, None, None, state="upstream_failed", upstream=("train",)),
        ],
        outcome=Outcome(best_params={"lr": 0.01}, f_score=None, deployed=False, training_kind="PyTorchJob"),
        state="failed",
    )
    kfp = OrchestratorRun(
        "kfp",
        "run-7",
        linear_steps,
        outcome=Outcome(best_params={"lr": 0.01}, f_score=0.8, deployed=True, training_kind="TrainJob"),
        state="succeeded",
    )
    return [airflow, kfp]


def test_report_files(tmp_path: Path, two_runs: list[OrchestratorRun]) -> None:
    paths, _doc = write_report(two_runs, tmp_path / "reports")
    data = json.loads(paths.json_path.read_text())
    assert data["schema"] == "kubeflow-bridge/comparison/v1"
    assert [r["orchestrator"] for r in data["runs"]] == ["airflow", "kfp"]
    assert data["runs"][1]["overhead_seconds"] == pytest.approx(30.0)
    assert data["outcome_equality"]["equal"] is False
    assert data["outcome_equality"]["fields"]["best_params"]["equal"] is True
    # The inputs are kept, so the report can be re-rendered later.
    assert [OrchestratorRun.from_dict(r) for r in data["inputs"]] == two_runs

    html = paths.html_path.read_text()
    assert html.count("<svg") == 2
    # Self-contained: nothing fetched from elsewhere (the SVG namespace is an identifier, not a fetch).
    assert not re.search(r"<script|<link|src=|https://|url\(", html)
    # The failure is shown, escaped, and the other steps are still there.
    assert "replica &lt;worker-1&gt; exited 137" in html
    for step in ("ingest", "preprocess", "tune", "train", "evaluate"):
        assert f"<th>{step}</th>" in html
    assert "outcomes differ" in html
    # Which training API each side used (reported, not part of the outcome's equality).
    row = re.search(r"<tr><th>training API</th>(.*?)</tr>", html)
    assert row and re.findall(r"<td[^>]*>(.*?)</td>", row.group(1)) == [
        "PyTorchJob (Training Operator v1)",
        "TrainJob (Kubeflow Trainer v2)",
    ]
    assert "training_kind" not in data["outcome_equality"]["fields"]
    assert not list((tmp_path / "reports").glob(".*"))  # no temp files left behind


def test_cli_renders_recorded_runs(
    tmp_path: Path, two_runs: list[OrchestratorRun], capsys: pytest.CaptureFixture[str]
) -> None:
    runs_file = tmp_path / "runs.json"
    runs_file.write_text(json.dumps([r.to_dict() for r in two_runs]))
    assert main(["--input", str(runs_file), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "kfp: run run-7 succeeded, wall 110.0s, overhead 30.0s" in out
    assert "outcomes differ" in out
    # A previous comparison.json is accepted as input too.
    again = tmp_path / "again"
    assert main(["--input", str(tmp_path / "out" / "comparison.json"), "--out", str(again)]) == 0
    first = json.loads((tmp_path / "out" / "comparison.json").read_text())
    second = json.loads((again / "comparison.json").read_text())
    assert first["runs"] == second["runs"]


def test_cli_errors_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 2
    assert "give --airflow-dag-id, --kfp-run-id and/or --input" in capsys.readouterr().err
    assert main(["--kfp-run-id", "x", "--kfp-host", "", "--out", str(tmp_path)]) == 2
    assert "--kfp-host" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["--input", str(bad), "--out", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "comparison.json").exists()


def test_cli_failures_are_messages_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "report.html"
    a_file.write_text("")
    runs_file = tmp_path / "runs.json"
    runs_file.write_text("{}")
    assert main(["--input", str(runs_file), "--out", str(a_file)]) == 2
    assert "is a file: give a folder" in capsys.readouterr().err
    # Nothing listens on port 1.
    assert (
        main(["--kfp-run-id", "abc", "--kfp-host", "http://127.0.0.1:1", "--out", str(tmp_path / "o")]) == 1
    )
    err = capsys.readouterr().err
    assert "cannot reach the KFP API at http://127.0.0.1:1" in err and "Traceback" not in err
    # A fresh AIRFLOW_HOME whose metadata DB was never migrated.
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'empty.db'}")
    assert main(["--airflow-dag-id", "anomaly_retraining", "--out", str(tmp_path / "o")]) == 1
    assert "run `airflow db migrate`" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_one_run_report_says_so(tmp_path: Path, two_runs: list[OrchestratorRun]) -> None:
    paths, doc = write_report(two_runs[1:], tmp_path)
    assert doc["outcome_equality"]["equal"] is None
    assert "one run only" in paths.html_path.read_text()


def test_the_report_links_each_runs_page(
    tmp_path: Path, two_runs: list[OrchestratorRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubeflow_bridge.compare.cli import build_parser, run_links

    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    args = build_parser().parse_args(
        ["--airflow-dag-id", "anomaly_retraining", "--kfp-host", "http://kfp:8888"]
    )
    links = run_links(args, two_runs)
    # The Airflow UI as airflow.cfg serves it, the KFP run page on the dashboard (the local runtime's UI).
    assert links == {
        "airflow": "http://127.0.0.1:8080/dags/anomaly_retraining/runs/manual__1",
        "kfp": "http://kfp:8888/_/pipeline/#/runs/details/run-7",
    }
    ui = build_parser().parse_args(
        ["--airflow-dag-id", "d", "--airflow-ui-url", "https://af/", "--kfp-ui-url", "https://kf"]
    )
    assert run_links(ui, two_runs) == {
        "airflow": "https://af/dags/d/runs/manual__1",
        "kfp": "https://kf/_/pipeline/#/runs/details/run-7",
    }
    paths, doc = write_report(two_runs, tmp_path, links=links)
    assert doc["links"] == links
    assert (
        "<a href='http://kfp:8888/_/pipeline/#/runs/details/run-7'>run-7</a>" in paths.html_path.read_text()
    )


def test_the_report_shows_each_runs_inputs_side_by_side(
    tmp_path: Path, two_runs: list[OrchestratorRun]
) -> None:
    import dataclasses

    airflow, kfp = two_runs
    runs = [
        dataclasses.replace(airflow, params={"rows": 5000, "seed": 0, "service_name": "svc-airflow"}),
        dataclasses.replace(kfp, params={"rows": 5000, "seed": 1, "service_name": "svc-kfp", "epochs": 6}),
    ]
    paths, doc = write_report(runs, tmp_path)
    assert [r["params"]["seed"] for r in doc["runs"]] == [0, 1]
    assert [OrchestratorRun.from_dict(r).params for r in doc["inputs"]] == [r.params for r in runs]
    html = paths.html_path.read_text()
    rows = dict(re.findall(r"<tr><th>(\w+)</th>((?:<td>[^<]*</td>)+)</tr>", html.split("<h2>Inputs</h2>")[1]))
    assert rows["rows"] == "<td>5000</td><td>5000</td><td></td>"
    assert rows["seed"] == "<td>0</td><td>1</td><td>differs</td>"
    assert rows["epochs"] == "<td>\u2013</td><td>6</td><td></td>"  # a default on one side is no difference
