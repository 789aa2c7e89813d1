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


def test_the_workflows_trainjob_trains_the_single_process_model(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    # The retraining workflow's train step with training_api=trainjob (the default): the TrainJob that
    # both orchestrators create, 2 torchrun nodes on the torch-distributed runtime. Its model must be the
    # one a single process trains from the same arguments.
    from kubeflow_bridge import workflow

    prefix = str(tmp_path / "run")
    _trainer("ingest", "--out", workflow.uri(prefix, "dataset"), "--rows", "4000", "--seed", "5", "--end",
             "2026-03-01T00:00:00Z")  # fmt: skip
    _trainer("preprocess", "--data", workflow.uri(prefix, "dataset"), "--out", workflow.uri(prefix, "features"),
             "--scheduler", "threads")  # fmt: skip
    params = {**workflow.DEFAULTS, "epochs": 2, "seed": 3, "worker_replicas": 1}
    best = {"lr": 0.004, "latent_dim": 4}
    job = workflow.training_job(prefix, params, best, name="wf-train", namespace=namespace)
    assert job["kind"] == "TrainJob" and job["spec"]["trainer"]["numNodes"] == 2
    args = job["spec"]["trainer"]["args"]
    single_args = list(args)
    for flag, value in (("--model-out", "single.pt"), ("--metrics-out", "single.json"),
                        ("--summary-out", "single-summary.json")):  # fmt: skip
        single_args[single_args.index(flag) + 1] = str(tmp_path / value)
    url = f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs"
    with runtime.http() as c:
        c.post(url, json=job).raise_for_status()
        _trainer(*single_args)  # meanwhile, the same arguments in one process

        def done() -> dict[str, Any] | None:
            obj = c.get(f"{url}/wf-train").json()
            conds = {x["type"]: x["status"] for x in obj.get("status", {}).get("conditions", [])}
            return obj if "True" in (conds.get("Complete"), conds.get("Failed")) else None

        obj = wait_for(done, timeout=300, interval=0.5, what="the workflow's TrainJob to finish")
        node0 = c.get(f"/api/v1/namespaces/{namespace}/pods/wf-train-node-0-0/log").text
    assert obj["status"]["conditions"][-1]["type"] == "Complete", (obj["status"], node0[-3000:])
    assert node0.count("TRAINER_SUMMARY") == 1  # rank 0 reports, once
    model_uri = args[args.index("--model-out") + 1]
    metrics_uri = args[args.index("--metrics-out") + 1]
    dist = json.loads(Path(metrics_uri).read_text())
    one = json.loads((tmp_path / "single.json").read_text())
    assert (dist["world_size"], one["world_size"]) == (2, 1)
    for a, b in zip(one["history"], dist["history"], strict=True):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    import torch

    from trainer.model import load_artifact

    _m1, a1 = load_artifact(str(tmp_path / "single.pt"))
    _m2, a2 = load_artifact(model_uri)
    for k, v in a1["state_dict"].items():
        torch.testing.assert_close(a2["state_dict"][k], v, rtol=1e-3, atol=1e-4)
