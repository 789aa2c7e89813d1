"""Compute seconds read from the Kubeflow objects for the steps whose Airflow operators return none.

The client is the seam: a stand-in holding objects shaped as the local runtime / Katib write them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeflow_bridge.compare.cluster import fill_compute_from_cluster
from kubeflow_bridge.compare.model import OrchestratorRun, StepRecord


class _Objects:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]], logs: dict[str, str]) -> None:
        self.objects = objects
        self.logs = logs
        self.log_reads: list[tuple[str, str]] = []

    def get(self, kind: Any, name: str, *, namespace: str) -> dict[str, Any] | None:
        return self.objects.get((kind.kind, name))

    def job_logs(self, kind: Any, name: str, *, namespace: str, role: str = "master") -> dict[str, str]:
        self.log_reads.append((kind.kind, role))
        return {f"{name}-master-0": self.logs[name]}


def test_fills_tune_and_train_compute(rec: Callable[..., StepRecord]) -> None:
    client = _Objects(
        {
            ("Experiment", "exp"): {
                "status": {"succeededTrialList": ["t1", "t2"], "failedTrialList": ["t3"]}
            },
            ("Trial", "t1"): {
                "status": {"startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:20Z"}
            },
            ("Trial", "t2"): {
                "status": {"startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:00:25Z"}
            },
            ("Trial", "t3"): {
                "status": {"startTime": "2026-01-01T00:00:21Z", "completionTime": "2026-01-01T00:00:30Z"}
            },
        },
        {"job": 'epoch=1 val_loss=0.3\nTRAINER_SUMMARY {"step": "train", "compute_seconds": 12.5}\n'},
    )
    run = OrchestratorRun(
        "airflow",
        "r",
        [
            rec("ingest", 0, 5, 1.0),
            rec("tune", 5, 40, None),
            rec("train", 40, 60, None),
            rec("evaluate", 60, 70, None),
        ],
    )
    outputs = {
        "tune": {"name": "exp", "namespace": "ns", "best_parameters": {"lr": 0.1}},
        "train": {"name": "job", "namespace": "ns", "state": "succeeded", "kind": "TrainJob"},
        "evaluate": {"f_score": 0.5},
    }
    filled = fill_compute_from_cluster(run, outputs, client)
    compute = {s.step: s.compute_seconds for s in filled.steps}
    assert compute == {"ingest": 1.0, "tune": 30.0, "train": 12.5, "evaluate": None}
    assert client.log_reads == [("TrainJob", "master")]  # node 0 of the kind the train step created
    # An output without a kind (an older run): a PyTorchJob's master.
    fill_compute_from_cluster(run, {**outputs, "train": {"name": "job", "namespace": "ns"}}, client)
    assert client.log_reads[-1] == ("PyTorchJob", "master")


def test_missing_objects_leave_compute_unknown(rec: Callable[..., StepRecord]) -> None:
    class _Broken(_Objects):
        def job_logs(self, *args: Any, **kwargs: Any) -> dict[str, str]:
            raise ConnectionError("runtime down")

    run = OrchestratorRun("airflow", "r", [rec("tune", 0, 5, None), rec("train", 5, 9, None)])
    outputs = {"tune": {"name": "gone", "namespace": "ns"}, "train": {"name": "job", "namespace": "ns"}}
    filled = fill_compute_from_cluster(run, outputs, _Broken({}, {}))
    assert [s.compute_seconds for s in filled.steps] == [None, None]
