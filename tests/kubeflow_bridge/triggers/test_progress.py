"""What waiting triggers write into the task log (a live run on the local runtime is in
tests/kubeflow_bridge/operators/test_local_runtime.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubeflow_bridge.clients.kube import PYTORCHJOB
from kubeflow_bridge.triggers.progress import ProgressReporter, RunProgress, kfp_run_line, progress_line

EXPERIMENT = {
    "metadata": {"name": "tune", "namespace": "ns"},
    "spec": {"maxTrialCount": 4, "objective": {"objectiveMetricName": "val_loss"}},
    "status": {
        "conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}],
        "trials": 3,
        "trialsRunning": 1,
        "trialsSucceeded": 1,
        "trialsEarlyStopped": 1,
        "currentOptimalTrial": {
            "parameterAssignments": [{"name": "lr", "value": "0.003"}],
            "observation": {"metrics": [{"name": "val_loss", "latest": "0.41", "min": "0.41"}]},
        },
    },
}


def test_lines_per_kind() -> None:
    assert progress_line("Experiment", EXPERIMENT) == (
        "Experiment ns/tune: Running; trials 3/4: 1 running, 1 succeeded, 1 early-stopped; "
        "best val_loss=0.41 (lr=0.003)"
    )
    job = {
        "metadata": {"name": "train", "namespace": "ns"},
        "status": {
            "conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}],
            "replicaStatuses": {"Master": {"active": 1}, "Worker": {"active": 1, "failed": 1}},
        },
    }
    assert (
        progress_line("PyTorchJob", job)
        == "PyTorchJob ns/train: Running; Master: 1 active; Worker: 1 active, 1 failed"
    )
    trainjob = {
        "metadata": {"name": "tj", "namespace": "ns"},
        "status": {
            "conditions": [{"type": "Suspended", "status": "False", "reason": "Resumed"}],
            "jobsStatus": [
                {"name": "dataset-initializer", "ready": 0, "succeeded": 1, "failed": 0, "active": 0},
                {"name": "node", "ready": 1, "succeeded": 0, "failed": 0, "active": 1, "suspended": 0},
            ],
        },
    }
    assert (
        progress_line("TrainJob", trainjob)
        == "TrainJob ns/tj: Created; dataset-initializer: 1 succeeded; node: 1 active"
    )
    isvc = {
        "metadata": {"name": "svc", "namespace": "ns"},
        "status": {
            "url": "http://127.0.0.1:9/",
            "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionMissing"}],
            "components": {"predictor": {"traffic": [
                {"revisionName": "svc-2", "percent": 20, "latestRevision": True},
                {"revisionName": "svc-1", "percent": 80},
            ]}},
        },
    }  # fmt: skip
    assert progress_line("InferenceService", isvc) == (
        "InferenceService ns/svc: Ready=False (RevisionMissing); url http://127.0.0.1:9/; "
        "traffic svc-2 20% (latest), svc-1 80%"
    )
    run = {"run_id": "r1", "state": "RUNNING", "run_details": {"task_details": [
        {"display_name": "root", "state": "RUNNING"},
        {"display_name": "ingest", "state": "SUCCEEDED"},
        {"display_name": "train", "state": "RUNNING"},
        {"display_name": "deploy", "state": "SKIPPED"},
    ]}}  # fmt: skip
    assert kfp_run_line(run) == "KFP run r1: RUNNING; tasks: ingest SUCCEEDED, train RUNNING, deploy SKIPPED"


def test_run_progress_logs_only_changes(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.progress")
    progress = RunProgress(log)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for state in ("PENDING", "RUNNING", "RUNNING", "SUCCEEDED"):
            progress({"run_id": "r", "state": state})
    assert [r.getMessage() for r in caplog.records] == [
        "KFP run r: PENDING",
        "KFP run r: RUNNING",
        "KFP run r: SUCCEEDED",
    ]


class FakeClient:
    """The async object client's reads: a job whose status changes, and a master pod's log stream."""

    def __init__(self, states: list[dict[str, Any]], lines: list[str]) -> None:
        self.states, self.lines, self.gets = states, lines, 0

    async def get(self, kind: Any, name: str, *, namespace: str) -> dict[str, Any]:
        self.gets += 1
        status = self.states[min(self.gets - 1, len(self.states) - 1)]
        return {"metadata": {"name": name, "namespace": namespace}, "status": status}

    def watched(self, kind: Any, name: str, *, namespace: str) -> None:
        return None  # no shared watch here: the reporter reads with get()

    async def job_pods(self, kind: Any, name: str, *, namespace: str, role: str) -> list[dict[str, Any]]:
        return [
            {"metadata": {"name": f"{name}-master-0", "namespace": namespace}, "status": {"phase": "Running"}}
        ]

    async def follow_log(self, kind: Any, pod: dict[str, Any], *, tail_lines: int) -> AsyncIterator[str]:
        for line in self.lines:
            await asyncio.sleep(0.01)
            yield line


async def test_reporter_logs_changes_at_its_pace_and_streams_the_masters_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = {
        "conditions": [{"type": "Running", "status": "True"}],
        "replicaStatuses": {"Master": {"active": 1}},
    }
    done = {
        "conditions": [{"type": "Succeeded", "status": "True"}],
        "replicaStatuses": {"Master": {"succeeded": 1}},
    }
    client = FakeClient([running, running, running, done], ["epoch=1 val_loss=0.5", "epoch=2 val_loss=0.4"])
    log = logging.getLogger("test.reporter")
    reporter = ProgressReporter(client, PYTORCHJOB, "train", "ns", log, interval=0.05)
    with caplog.at_level(logging.INFO, logger="test.reporter"):
        task = asyncio.ensure_future(reporter.run())
        await asyncio.sleep(0.25)
        await reporter.finish(task)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("PyTorchJob ns/train: Running; Master: 1 active") == 1  # unchanged: logged once
    assert "PyTorchJob ns/train: Succeeded; Master: 1 succeeded" in messages
    assert (
        "[train-master-0] epoch=1 val_loss=0.5" in messages
        and "[train-master-0] epoch=2 val_loss=0.4" in messages
    )
    assert reporter.streamed == 2
