"""State of the local KFP API survives a restart; runs in flight when it died are FAILED and killed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from . import kfp_fixtures as fx

packages = fx.packages

pytestmark = pytest.mark.e2e


def test_restart_keeps_objects_and_fails_runs_that_were_in_flight(
    tmp_path: Path, packages: dict[str, Path]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    server = fx.KfpServer(state).start()
    pid_file = tmp_path / "pid"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            exp = http.post("/apis/v2beta1/experiments", json={"display_name": "survivor"}).json()
            body = {
                "display_name": "in-flight",
                "experiment_id": exp["experiment_id"],
                "pipeline_spec": yaml.safe_load(packages["slow"].read_text()),
                "runtime_config": {"parameters": {"pid_file": str(pid_file)}},
            }
            run_id = http.post("/apis/v2beta1/runs", json=body).json()["run_id"]
            fx.wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, what="the component to start")
        component_pid = int(pid_file.read_text())
        server.kill_hard()  # a crash: nothing cleans up
        assert fx.pid_alive(component_pid)

        server = fx.KfpServer(state).start()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert (
                http.get(f"/apis/v2beta1/experiments/{exp['experiment_id']}").json()["display_name"]
                == "survivor"
            )
            run = http.get(f"/apis/v2beta1/runs/{run_id}").json()
            assert run["state"] == "FAILED"
            assert "stopped while this run was in progress" in run["error"]["message"]
            assert run["finished_at"] != "1970-01-01T00:00:00Z"
            fx.wait_for(
                lambda: not fx.pid_alive(component_pid), 10, what="the orphaned component to be killed"
            )
            assert fx.tasks_by_name(run)["sleeper"]["state"] == "FAILED"
    finally:
        server.stop()
        if pid_file.exists() and fx.pid_alive(int(pid_file.read_text())):
            import os
            import signal

            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_queued_run_terminated_before_it_starts_never_runs(tmp_path: Path, packages: dict[str, Path]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    server = fx.KfpServer(state, "--max-parallel-runs", "1").start()
    spec = yaml.safe_load(packages["slow"].read_text())
    first_pid, second_pid = tmp_path / "first", tmp_path / "second"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:

            def start(name: str, pid_file: Path) -> str:
                body = {
                    "display_name": name,
                    "pipeline_spec": spec,
                    "runtime_config": {"parameters": {"pid_file": str(pid_file)}},
                }
                resp = http.post("/apis/v2beta1/runs", json=body)
                assert resp.status_code == 200, resp.text
                return str(resp.json()["run_id"])

            first = start("first", first_pid)
            fx.wait_for(
                lambda: first_pid.exists() and first_pid.read_text(), 60, what="the first run to start"
            )
            second = start("second", second_pid)
            assert http.get(f"/apis/v2beta1/runs/{second}").json()["state"] == "PENDING"  # waits for the slot
            assert http.post(f"/apis/v2beta1/runs/{second}:terminate").status_code == 200
            assert http.post(f"/apis/v2beta1/runs/{first}:terminate").status_code == 200
            fx.wait_for(lambda: not fx.pid_alive(int(first_pid.read_text())), 15, what="the first run to die")
            time.sleep(1.5)  # the slot is free now: a bug would start the second run here
            assert not second_pid.exists()
            run = http.get(f"/apis/v2beta1/runs/{second}").json()
            assert run["state"] == "CANCELING"
            assert [h["state"] for h in run["state_history"]] == ["PENDING", "CANCELING"]
            assert run["run_details"]["task_details"][1:] == []
    finally:
        server.stop()
