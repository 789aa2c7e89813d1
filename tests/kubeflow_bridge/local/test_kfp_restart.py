"""State of the local KFP API survives a restart; runs in flight when it died are FAILED and killed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml


def _load_fixtures() -> Any:
    name = "kfp_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("kfp_fixtures.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fx = _load_fixtures()
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
