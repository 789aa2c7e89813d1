"""End to end: the trainer's `train` step as a 2-replica PyTorchJob running DDP over gloo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import RuntimeHandle, wait_for

pytestmark = pytest.mark.e2e


def _trainer(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", *args], capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_replica_ddp_train_succeeds(runtime: RuntimeHandle, namespace: str, tmp_path: Path) -> None:
    raw, prep = tmp_path / "raw", tmp_path / "prep"
    _trainer("ingest", "--out", str(raw), "--rows", "4000", "--seed", "5", "--end", "2026-03-01T00:00:00Z")
    _trainer("preprocess", "--data", str(raw), "--out", str(prep), "--scheduler", "threads")
    model, metrics = tmp_path / "model.pt", tmp_path / "metrics.json"
    command = [
        "python", "-m", "trainer", "train", "--data", str(prep), "--model-out", str(model),
        "--metrics-out", str(metrics), "--epochs", "2", "--batch-size", "128", "--hidden-dims", "16,8",
        "--latent-dim", "4", "--patience", "0", "--seed", "3", "--device", "cpu",
    ]  # fmt: skip

    def replica() -> dict[str, Any]:
        return {
            "replicas": 1,
            "restartPolicy": "OnFailure",
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": "kubeflow-bridge/trainer:latest",
                            "command": command,
                            "env": [
                                {"name": "GLOO_SOCKET_IFNAME", "value": "lo"},
                                {"name": "OMP_NUM_THREADS", "value": "1"},
                            ],
                        }
                    ]
                }
            },
        }

    body = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "ddp"},
        "spec": {
            "runPolicy": {"backoffLimit": 0},
            "pytorchReplicaSpecs": {"Master": replica(), "Worker": replica()},
        },
    }
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    with runtime.http() as c:
        c.post(url, json=body).raise_for_status()

        def done() -> dict[str, Any] | None:
            obj = c.get(f"{url}/ddp").json()
            conds = {x["type"]: x["status"] for x in obj.get("status", {}).get("conditions", [])}
            return obj if "True" in (conds.get("Succeeded"), conds.get("Failed")) else None

        obj = wait_for(done, timeout=240, interval=0.5, what="DDP job to finish")
        master_log = c.get(f"/api/v1/namespaces/{namespace}/pods/ddp-master-0/log").text
        assert obj["status"]["conditions"][-1]["type"] == "Succeeded", (obj["status"], master_log[-3000:])
        summary = json.loads(master_log.strip().splitlines()[-1].split(" ", 1)[1])
        assert master_log.strip().splitlines()[-1].startswith("TRAINER_SUMMARY")
        assert summary["step"] == "train"
        assert "epoch=2 " in master_log
        assert json.loads(metrics.read_text())["world_size"] == 2
        assert model.exists()
