from __future__ import annotations

import pytest

from kubeflow_bridge.clients.kube.results import (
    NoBestTrialError,
    best_trial,
    isvc_endpoint,
    job_outcome,
    typed_value,
)

EXPERIMENT = {
    "kind": "Experiment",
    "metadata": {"name": "tune"},
    "spec": {
        "objective": {
            "type": "minimize",
            "objectiveMetricName": "val_loss",
            "additionalMetricNames": ["train_loss"],
        },
        "parameters": [
            {"name": "lr", "parameterType": "double"},
            {"name": "hidden", "parameterType": "int"},
            {"name": "opt", "parameterType": "categorical"},
            {"name": "batch", "parameterType": "discrete"},
        ],
    },
    "status": {
        "trials": 4,
        "trialsSucceeded": 3,
        "trialMetricsUnavailable": 1,
        "currentOptimalTrial": {
            "bestTrialName": "tune-abc",
            "parameterAssignments": [
                {"name": "lr", "value": "0.0031"},
                {"name": "hidden", "value": "64"},
                {"name": "opt", "value": "adam"},
                {"name": "batch", "value": "32"},
            ],
            "observation": {
                "metrics": [
                    {"name": "val_loss", "min": "0.21", "max": "0.9", "latest": "0.25"},
                    {"name": "train_loss", "min": "unavailable", "max": "unavailable", "latest": "0.3"},
                ]
            },
        },
    },
}


def test_best_trial_types_values_from_strings() -> None:
    best = best_trial(EXPERIMENT)
    assert best.name == "tune-abc"
    assert best.parameters == {"lr": 0.0031, "hidden": 64, "opt": "adam", "batch": 32}
    assert isinstance(best.parameters["hidden"], int) and isinstance(best.parameters["lr"], float)
    assert best.objective_metric == "val_loss" and best.objective_value == 0.21  # min strategy
    assert best.metrics["train_loss"] == 0.3  # "unavailable" min falls back to latest
    assert (
        best.counts["trials"] == 4
        and best.counts["trialMetricsUnavailable"] == 1
        and best.counts["trialsFailed"] == 0
    )


def test_best_trial_overrides_types_and_reports_missing() -> None:
    assert best_trial(EXPERIMENT, {"hidden": "categorical"}).parameters["hidden"] == "64"
    empty = {"metadata": {"name": "e"}, "status": {"currentOptimalTrial": {"bestTrialName": ""}}}
    with pytest.raises(NoBestTrialError, match="prints 'metric=value'"):
        best_trial(empty)
    assert typed_value("0.5", "discrete") == 0.5 and typed_value("3", "int") == 3


PYTORCHJOB = {
    "kind": "PyTorchJob",
    "metadata": {"name": "train"},
    "status": {
        "conditions": [
            {"type": "Created", "status": "True"},
            {"type": "Running", "status": "False"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "PyTorchJobFailed",
                "message": "PyTorchJob train is failed",
            },
        ],
        "replicaStatuses": {"Master": {"active": 0, "failed": 0}, "Worker": {"failed": 1}},
    },
}


def test_job_outcome_picks_failing_replica_log_tail() -> None:
    logs = {
        "train-master-0": "fine\n",
        "train-worker-0": "\n".join(f"line {i}" for i in range(100)) + "\nRuntimeError: NaN loss\n",
    }
    out = job_outcome(PYTORCHJOB, logs)
    assert out.state == "failed" and out.reason == "PyTorchJobFailed" and out.failed_replica == "Worker"
    assert out.log_tail.endswith("RuntimeError: NaN loss") and "line 50" not in out.log_tail
    assert len(out.log_tail.splitlines()) == 30


def test_job_outcome_running_and_batch_job() -> None:
    running = job_outcome({"kind": "PyTorchJob", "metadata": {"name": "t"}, "status": {}})
    assert running.state == "running" and running.failed_replica is None and running.log_tail == ""
    batch = {
        "kind": "Job",
        "metadata": {"name": "j"},
        "status": {
            "failed": 2,
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
        },
    }
    out = job_outcome(batch, {"j-x7k2p": "Traceback\nValueError: bad\n"})
    assert (
        out.failed_replica == "Job" and out.reason == "BackoffLimitExceeded" and "ValueError" in out.log_tail
    )


def test_isvc_endpoint_traffic_split() -> None:
    isvc = {
        "metadata": {"name": "m"},
        "status": {
            "url": "http://m.ns.example.com",
            "address": {"url": "http://m.ns.svc.cluster.local"},
            "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {
                "predictor": {
                    "latestReadyRevision": "m-predictor-00002",
                    "previousRolledoutRevision": "m-predictor-00001",
                    "traffic": [
                        {"latestRevision": True, "percent": 10, "revisionName": "m-predictor-00002"},
                        {
                            "latestRevision": False,
                            "percent": 90,
                            "revisionName": "m-predictor-00001",
                            "tag": "prev",
                        },
                    ],
                }
            },
        },
    }
    ep = isvc_endpoint(isvc)
    assert ep.url == "http://m.ns.example.com" and ep.ready and ep.observed_generation == 2
    assert ep.percent(latest=True) == 10 and ep.percent(latest=False) == 90
    assert ep.previous_rolledout_revision == "m-predictor-00001"
    assert not isvc_endpoint({"metadata": {"name": "n"}, "status": {}}).ready


def test_job_outcome_names_the_failed_replica_from_the_operators_message() -> None:
    # Restarted up to the backoff limit, pods cleaned up: no failed count, but the conditions say who.
    job = {
        "kind": "PyTorchJob",
        "metadata": {"name": "t"},
        "status": {
            "replicaStatuses": {"Master": {}, "Worker": {}},
            "conditions": [
                {"type": "Created", "status": "True"},
                {"type": "Restarting", "status": "False", "message": "PyTorchJob t is restarting because 1 Worker replica(s) failed."},
                {"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "PyTorchJob t has failed because it has reached the specified backoff limit"},
            ],
        },
    }  # fmt: skip
    assert job_outcome(job).failed_replica == "Worker"
    job["status"]["conditions"][1]["message"] = "no replica named"
    assert job_outcome(job).failed_replica is None
