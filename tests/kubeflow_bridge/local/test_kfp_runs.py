"""The local KFP v2beta1 API against the official kfp.Client (kfp 2.17) and raw HTTP: real runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import kfp_fixtures as fx

kfp_server = fx.kfp_server
http = fx.http
kfp_client = fx.kfp_client
packages = fx.packages

pytestmark = pytest.mark.e2e


def test_kfp_client_runs_a_pipeline_with_outputs_artifacts_and_a_skipped_branch(
    kfp_client: Any, http: httpx.Client, packages: dict[str, Path]
) -> None:
    result = kfp_client.create_run_from_pipeline_package(
        str(packages["demo"]), arguments={"a": 3, "b": 4}, run_name="demo-ok", experiment_name="kfp-tests"
    )
    done = kfp_client.wait_for_run_completion(result.run_id, timeout=90, sleep_duration=0.5)
    assert done.state == "SUCCEEDED"
    assert done.experiment_id == kfp_client.get_experiment(experiment_name="kfp-tests").experiment_id
    experiments = kfp_client.list_experiments(page_size=50).experiments
    assert "kfp-tests" in [e.display_name for e in experiments]
    listed = kfp_client.list_runs(experiment_id=done.experiment_id, sort_by="created_at desc", page_size=5)
    assert result.run_id in [r.run_id for r in listed.runs] and listed.total_size >= 1

    run = http.get(f"/apis/v2beta1/runs/{result.run_id}").json()
    assert run["finished_at"] >= run["created_at"] and run["finished_at"] != "1970-01-01T00:00:00Z"
    assert [h["state"] for h in run["state_history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    tasks = fx.tasks_by_name(run)
    assert tasks["add"]["state"] == "SUCCEEDED"
    assert tasks["add"]["output_parameters"] == {"Output": 7}
    assert tasks["report"]["output_parameters"] == {"Output": "reported 7"}
    data_uri = tasks["report"]["output_artifacts"]["data"]
    assert Path(data_uri).read_text() == "7"
    assert "metrics" in tasks["report"]["output_artifacts"]
    assert tasks["explode"]["state"] == "SKIPPED"  # the dsl.If branch was false
    root = tasks["demo"]
    assert {c["task_id"] for c in root["child_tasks"]} == {
        tasks[n]["task_id"] for n in ("add", "report", "explode")
    }
    for name in ("add", "report"):
        task = tasks[name]
        assert task["parent_task_id"] == root["task_id"]
        assert task["start_time"] <= task["end_time"]
        assert [h["state"] for h in task["state_history"]] == ["RUNNING", "SUCCEEDED"]
        assert task["pod_name"] and task["execution_id"]


def test_failing_component_fails_the_run_with_the_task_error(
    kfp_client: Any, http: httpx.Client, packages: dict[str, Path]
) -> None:
    result = kfp_client.create_run_from_pipeline_package(
        str(packages["demo"]),
        arguments={"a": 1, "fail": True},
        run_name="demo-fail",
        experiment_name="kfp-tests",
    )
    done = kfp_client.wait_for_run_completion(result.run_id, timeout=90, sleep_duration=0.5)
    assert done.state == "FAILED"
    assert "task 'explode' failed: ValueError: boom 3" in done.error.message
    tasks = {t.display_name: t for t in done.run_details.task_details}
    assert tasks["explode"].state == "FAILED"
    assert tasks["explode"].error.message == "ValueError: boom 3"
    assert tasks["add"].state == "SUCCEEDED"

    # the task's own output, through the KFP UI's log endpoint
    def log_of(task: Any) -> httpx.Response:
        return http.get("/k8s/pod/logs", params={"podname": task.pod_name, "runid": result.run_id})

    assert (
        "Traceback" in log_of(tasks["explode"]).text and "ValueError: boom 3" in log_of(tasks["explode"]).text
    )
    assert log_of(tasks["add"]).status_code == 200 and "boom" not in log_of(tasks["add"]).text
    assert http.get("/k8s/pod/logs", params={"podname": "nope", "runid": result.run_id}).status_code == 404


def test_create_run_from_pipeline_func_with_default_experiment(kfp_client: Any, http: httpx.Client) -> None:
    result = kfp_client.create_run_from_pipeline_func(
        fx.demo_pipeline, arguments={"b": 40}, run_name="from-func"
    )
    done = kfp_client.wait_for_run_completion(result.run_id, timeout=90, sleep_duration=0.5)
    assert done.state == "SUCCEEDED"
    run = http.get(f"/apis/v2beta1/runs/{result.run_id}").json()
    assert fx.tasks_by_name(run)["add"]["output_parameters"] == {"Output": 41}
    default = http.get(f"/apis/v2beta1/experiments/{run['experiment_id']}").json()
    assert default["display_name"] == "Default"


def test_terminate_kills_the_process_group_and_the_run_stays_canceling(
    kfp_client: Any, http: httpx.Client, packages: dict[str, Path], tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    result = kfp_client.create_run_from_pipeline_package(
        str(packages["slow"]), arguments={"pid_file": str(pid_file)}, run_name="slow"
    )
    fx.wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, what="the component to start")
    pid = int(pid_file.read_text())
    assert fx.pid_alive(pid)
    running = http.get(f"/apis/v2beta1/runs/{result.run_id}").json()
    assert running["state"] == "RUNNING"
    assert fx.tasks_by_name(running)["sleeper"]["state"] == "RUNNING"

    kfp_client.terminate_run(result.run_id)
    assert kfp_client.get_run(result.run_id).state == "CANCELING"
    fx.wait_for(lambda: not fx.pid_alive(pid), 15, what="the component process to be killed")
    time.sleep(0.5)
    run = http.get(f"/apis/v2beta1/runs/{result.run_id}").json()
    assert run["state"] == "CANCELING"  # as on Argo-backed KFP: never CANCELED
    assert fx.tasks_by_name(run)["sleeper"]["state"] == "CANCELED"
    again = http.post(f"/apis/v2beta1/runs/{result.run_id}:terminate")
    assert again.status_code == 200

    # a canceled run can be retried: it executes again (a new process), and can be terminated again
    pid_file.unlink()
    assert http.post(f"/apis/v2beta1/runs/{result.run_id}:retry").status_code == 200
    fx.wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, what="the retried component to start")
    second_pid = int(pid_file.read_text())
    assert second_pid != pid and fx.pid_alive(second_pid)
    assert kfp_client.get_run(result.run_id).state == "RUNNING"
    kfp_client.terminate_run(result.run_id)
    fx.wait_for(lambda: not fx.pid_alive(second_pid), 15, what="the retried component to be killed")
    states = [h["state"] for h in http.get(f"/apis/v2beta1/runs/{result.run_id}").json()["state_history"]]
    assert states == ["PENDING", "RUNNING", "CANCELING", "PENDING", "RUNNING", "CANCELING"]


def test_recurring_run_respects_max_concurrency(
    http: httpx.Client, packages: dict[str, Path], tmp_path: Path
) -> None:
    import yaml

    body = {
        "display_name": "busy-every-second",
        "pipeline_spec": yaml.safe_load(packages["slow"].read_text()),
        "runtime_config": {"parameters": {"pid_file": str(tmp_path / "pid")}},
        "trigger": {"periodic_schedule": {"interval_second": "1"}},
        "max_concurrency": "1",
    }
    rec = http.post("/apis/v2beta1/recurringruns", json=body).json()
    rid = rec["recurring_run_id"]
    flt = json.dumps(
        {"predicates": [{"key": "recurring_run_id", "operation": "EQUALS", "string_value": rid}]}
    )
    try:
        fx.wait_for(lambda: (tmp_path / "pid").exists(), 60, what="the first scheduled run to start")
        time.sleep(2.5)  # two more intervals pass while the first run is still busy
        runs = http.get("/apis/v2beta1/runs", params={"filter": flt}).json()["runs"]
        assert len(runs) == 1 and runs[0]["state"] == "RUNNING"
    finally:
        assert http.post(f"/apis/v2beta1/recurringruns/{rid}:disable").status_code == 200
        for run in http.get("/apis/v2beta1/runs", params={"filter": flt}).json()["runs"]:
            http.post(f"/apis/v2beta1/runs/{run['run_id']}:terminate")


def test_retry_re_executes_a_failed_run(
    http: httpx.Client, packages: dict[str, Path], tmp_path: Path
) -> None:
    import yaml

    body = {
        "display_name": "flaky",
        "pipeline_spec": yaml.safe_load(packages["flaky"].read_text()),
        "runtime_config": {"parameters": {"marker": str(tmp_path / "marker")}},
    }
    run_id = http.post("/apis/v2beta1/runs", json=body).json()["run_id"]
    failed = fx.wait_run(http, run_id)
    assert failed["state"] == "FAILED"
    assert "first attempt fails on purpose" in failed["error"]["message"]

    assert http.post(f"/apis/v2beta1/runs/{run_id}:retry").status_code == 200
    retried = fx.wait_run(http, run_id)
    assert retried["state"] == "SUCCEEDED"
    assert retried["error"] is None
    states = [h["state"] for h in retried["state_history"]]
    assert states == ["PENDING", "RUNNING", "FAILED", "PENDING", "RUNNING", "SUCCEEDED"]
    assert fx.tasks_by_name(retried)["fail-once"]["state"] == "SUCCEEDED"

    refused = http.post(f"/apis/v2beta1/runs/{run_id}:retry")
    assert refused.status_code == 400
    assert "SUCCEEDED" in refused.json()["message"]


def test_upload_pipeline_and_version_then_run_from_the_version(
    kfp_client: Any, http: httpx.Client, packages: dict[str, Path]
) -> None:
    pipeline = kfp_client.upload_pipeline(
        str(packages["demo"]), pipeline_name="demo-uploaded", description="d"
    )
    assert pipeline.pipeline_id and pipeline.display_name == "demo-uploaded"
    version = kfp_client.upload_pipeline_version(
        str(packages["demo"]), pipeline_version_name="v2", pipeline_id=pipeline.pipeline_id
    )
    versions = kfp_client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    assert {v.display_name for v in versions} == {"demo-uploaded", "v2"}
    assert kfp_client.get_pipeline_id("demo-uploaded") == pipeline.pipeline_id

    experiment = kfp_client.create_experiment("versions")
    run = kfp_client.run_pipeline(
        experiment_id=experiment.experiment_id,
        job_name="from-version",
        pipeline_id=pipeline.pipeline_id,
        version_id=version.pipeline_version_id,
        params={"a": 5},
    )
    done = kfp_client.wait_for_run_completion(run.run_id, timeout=90, sleep_duration=0.5)
    assert done.state == "SUCCEEDED"
    assert done.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    raw = http.get(f"/apis/v2beta1/runs/{run.run_id}").json()
    assert fx.tasks_by_name(raw)["add"]["output_parameters"] == {"Output": 7}

    duplicate = http.post(
        "/apis/v2beta1/pipelines/upload",
        params={"name": "demo-uploaded"},
        files={"uploadfile": ("demo.yaml", packages["demo"].read_bytes())},
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == 6
    wrong_param = http.post(
        "/apis/v2beta1/runs",
        json={
            "display_name": "x",
            "pipeline_version_reference": {
                "pipeline_id": pipeline.pipeline_id,
                "pipeline_version_id": version.pipeline_version_id,
            },
            "runtime_config": {"parameters": {"nope": 1}},
        },
    )
    assert wrong_param.status_code == 400 and "nope" in wrong_param.json()["message"]


def test_recurring_run_fires_on_schedule_until_disabled(
    kfp_client: Any, http: httpx.Client, packages: dict[str, Path]
) -> None:
    experiment = kfp_client.create_experiment("recurring")
    rec = kfp_client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name="every-2s",
        interval_second=2,
        max_concurrency=2,
        pipeline_package_path=str(packages["demo"]),
        params={"a": 10},
    )
    assert rec.status == "ENABLED"
    flt = json.dumps(
        {
            "predicates": [
                {"key": "recurring_run_id", "operation": "EQUALS", "string_value": rec.recurring_run_id}
            ]
        }
    )

    def scheduled() -> list[dict[str, Any]]:
        runs = http.get("/apis/v2beta1/runs", params={"filter": flt}).json()["runs"]
        return runs if len(runs) >= 2 else []

    runs = fx.wait_for(scheduled, 30, what="two scheduled runs")
    kfp_client.disable_recurring_run(rec.recurring_run_id)
    assert kfp_client.get_recurring_run(rec.recurring_run_id).status == "DISABLED"
    assert all(r["experiment_id"] == experiment.experiment_id for r in runs)
    times = sorted(r["scheduled_at"] for r in runs)
    assert times[0] < times[1]
    count = len(http.get("/apis/v2beta1/runs", params={"filter": flt}).json()["runs"])
    time.sleep(2.5)
    assert len(http.get("/apis/v2beta1/runs", params={"filter": flt}).json()["runs"]) == count
    listed = kfp_client.list_recurring_runs(experiment_id=experiment.experiment_id).recurring_runs
    assert [r.recurring_run_id for r in listed] == [rec.recurring_run_id]
    kfp_client.delete_recurring_run(rec.recurring_run_id)
    assert http.get(f"/apis/v2beta1/recurringruns/{rec.recurring_run_id}").status_code == 404


def test_cron_recurring_run_with_seconds_fires_until_its_end_time(
    http: httpx.Client, packages: dict[str, Path]
) -> None:
    import datetime as dt

    import yaml

    end = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=5)
    body = {
        "display_name": "cron-every-2s",
        "pipeline_spec": yaml.safe_load(packages["demo"].read_text()),
        "trigger": {
            "cron_schedule": {"cron": "*/2 * * * * *", "end_time": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
        },
        "max_concurrency": "3",
        "no_catchup": True,
        "mode": "ENABLE",
    }
    created = http.post("/apis/v2beta1/recurringruns", json=body)
    assert created.status_code == 200, created.text
    rec = created.json()
    assert rec["status"] == "ENABLED" and rec["trigger"]["cron_schedule"]["cron"] == "*/2 * * * * *"
    flt = json.dumps(
        {
            "predicates": [
                {"key": "recurring_run_id", "operation": "EQUALS", "string_value": rec["recurring_run_id"]}
            ]
        }
    )
    fx.wait_for(lambda: dt.datetime.now(dt.UTC) > end + dt.timedelta(seconds=1.5), 15, what="the end time")
    runs = http.get("/apis/v2beta1/runs", params={"filter": flt}).json()["runs"]
    scheduled = sorted(dt.datetime.fromisoformat(r["scheduled_at"].replace("Z", "+00:00")) for r in runs)
    assert len(scheduled) >= 2
    assert all(t.second % 2 == 0 and t <= end for t in scheduled)
    assert http.delete(f"/apis/v2beta1/recurringruns/{rec['recurring_run_id']}").status_code == 200


def test_recurring_runs_catch_up_on_enable_unless_no_catchup(
    http: httpx.Client, packages: dict[str, Path]
) -> None:
    """As KFP's scheduler: times missed while disabled fire on enable; no_catchup skips them."""
    import yaml

    def create(no_catchup: bool) -> str:
        body = {
            "display_name": f"catchup-{no_catchup}",
            "pipeline_spec": yaml.safe_load(packages["demo"].read_text()),
            "trigger": {"periodic_schedule": {"interval_second": "2"}},
            "max_concurrency": "5",
            "no_catchup": no_catchup,
            "mode": "DISABLE",
        }
        rec = http.post("/apis/v2beta1/recurringruns", json=body).json()
        assert rec["status"] == "DISABLED"
        return str(rec["recurring_run_id"])

    def runs_of(rid: str) -> list[dict[str, Any]]:
        flt = json.dumps(
            {"predicates": [{"key": "recurring_run_id", "operation": "EQUALS", "string_value": rid}]}
        )
        runs: list[dict[str, Any]] = http.get("/apis/v2beta1/runs", params={"filter": flt}).json()["runs"]
        return runs

    catch_up, skip = create(False), create(True)
    time.sleep(4.3)  # two intervals pass while disabled
    assert runs_of(catch_up) == [] and runs_of(skip) == []
    for rid in (catch_up, skip):
        assert http.post(f"/apis/v2beta1/recurringruns/{rid}:enable").status_code == 200
    try:  # the next interval is ~1.7 s after the enable: count before it
        caught = fx.wait_for(lambda: runs_of(catch_up) if len(runs_of(catch_up)) >= 2 else [], 1.2, 0.1)
        skipped = runs_of(skip)
    finally:
        for rid in (catch_up, skip):
            http.post(f"/apis/v2beta1/recurringruns/{rid}:disable")
    assert len(caught) == 2 and skipped == []
    for run in caught:
        fx.wait_run(http, run["run_id"])
