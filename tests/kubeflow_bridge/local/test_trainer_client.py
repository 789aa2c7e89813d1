"""The official ``kubeflow`` SDK's TrainerClient (Kubernetes backend) against the local runtime.

What a Kubeflow Trainer v2 user runs from a notebook: list the runtimes, train a function on 2 nodes and
a container trainer, read the job, its steps and its logs (following them while it runs), wait for a
status, and delete it. Nothing here is mocked: the SDK talks to the runtime's API over HTTP.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import RuntimeHandle, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def trainer_client(runtime: RuntimeHandle, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from kubeflow.common.types import KubernetesBackendConfig
    from kubeflow.trainer import TrainerClient

    # As the README says: the env file's $KUBECONFIG is all the client needs (and the namespace to use).
    # The kubernetes package reads $KUBECONFIG once, at import (earlier in this session): set both.
    monkeypatch.setenv("KUBECONFIG", str(runtime.kubeconfig))
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(runtime.kubeconfig))
    return TrainerClient(KubernetesBackendConfig(namespace=namespace))


def ddp_hello() -> None:
    """Runs on every node under torchrun: a gloo all-reduce of the ranks."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    total = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(total)
    print(f"rank {dist.get_rank()} of {dist.get_world_size()}: sum {total.item()}", flush=True)
    dist.destroy_process_group()


def test_trainer_client_lists_runtimes_trains_a_function_on_two_nodes_and_deletes_it(
    trainer_client: Any, runtime: RuntimeHandle, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    from kubeflow.trainer import CustomTrainer

    runtimes = {r.name: r for r in trainer_client.list_runtimes()}
    torch_runtime = runtimes["torch-distributed"]
    assert torch_runtime.trainer.framework == "torch" and torch_runtime.kind.value == "ClusterTrainingRuntime"
    assert trainer_client.get_runtime("torch-distributed").name == "torch-distributed"
    # The control plane's public ConfigMap is there: the SDK has nothing to warn about.
    assert "control-plane version info is not available" not in caplog.text

    name = trainer_client.train(trainer=CustomTrainer(func=ddp_hello, num_nodes=2))
    job = trainer_client.wait_for_job_status(name, timeout=180, polling_interval=1)
    assert job.status == "Complete" and job.num_nodes == 2
    assert sorted((s.name, s.status) for s in job.steps) == [("node-0", "Succeeded"), ("node-1", "Succeeded")]
    assert [j.name for j in trainer_client.list_jobs()] == [name]
    assert list(trainer_client.get_job_logs(name)) == ["rank 0 of 2: sum 3.0"]  # node 0's log
    assert "rank 1 of 2" in "\n".join(trainer_client.get_job_logs(name, step="node-1"))

    trainer_client.delete_job(name)
    with runtime.http() as c:
        gone = wait_for(
            lambda: (
                c.get(f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs").json()["items"]
                == []
                and c.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"] == []
            ),
            timeout=30,
            what="the TrainJob and its pods to be deleted",
        )
    assert gone
    with pytest.raises(RuntimeError, match=f"Failed to get TrainJob: {namespace}/{name}"):
        trainer_client.get_job(name)


def test_trainer_client_runs_a_container_trainer_and_follows_a_failing_nodes_log(
    trainer_client: Any, runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    from kubeflow.trainer import CustomTrainer, CustomTrainerContainer
    from kubeflow.trainer.options import TrainerArgs

    # The trainer image's own entrypoint (python -m trainer) with the step's arguments.
    out = tmp_path / "raw"
    name = trainer_client.train(
        trainer=CustomTrainerContainer(image="kubeflow-bridge/trainer:latest", num_nodes=1),
        options=[TrainerArgs(["ingest", "--out", str(out), "--rows", "1000", "--end", "2026-01-01"])],
    )
    job = trainer_client.wait_for_job_status(name, timeout=180, polling_interval=1)
    assert job.status == "Complete"
    assert any(line.startswith("TRAINER_SUMMARY") for line in trainer_client.get_job_logs(name))
    assert any(out.rglob("*.parquet"))

    # A runtime of the team's own in the namespace (the SDK prefers it to a cluster one of the same
    # framework): no retries, so the node's failure fails the job at once.
    no_retry = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainingRuntime",
        "metadata": {"name": "torch-once", "labels": {"trainer.kubeflow.org/framework": "torch"}},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {}},
            "template": {"spec": {"replicatedJobs": [{"name": "node", "template": {
                "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                "spec": {
                "backoffLimit": 0,
                "template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "node", "image": "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"}
                ]}},
            }}}]}},
        },
    }  # fmt: skip
    with runtime.http() as c:
        c.post(
            f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainingruntimes", json=no_retry
        ).raise_for_status()
    assert trainer_client.get_runtime("torch-once").kind.value == "TrainingRuntime"

    def counting() -> None:
        import time

        for i in range(4):
            print(f"step {i}", flush=True)
            time.sleep(1)
        raise SystemExit(3)

    name = trainer_client.train(runtime="torch-once", trainer=CustomTrainer(func=counting))
    trainer_client.wait_for_job_status(name, status={"Running"}, timeout=120, polling_interval=1)
    followed: list[tuple[float, str]] = []

    def follow() -> None:
        for line in trainer_client.get_job_logs(name, follow=True):
            followed.append((time.monotonic(), line))

    reader = threading.Thread(target=follow)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "following the log did not end when the node did"
    steps = [(t, line.strip()) for t, line in followed if line.startswith("step")]
    assert [line for _, line in steps] == [f"step {i}" for i in range(4)]
    assert steps[-1][0] - steps[0][0] > 1.5  # streamed as written, not read at the end
    with pytest.raises(RuntimeError, match=f"TrainJob {name} is Failed"):
        trainer_client.wait_for_job_status(name, timeout=60, polling_interval=1)
    assert trainer_client.get_job(name).status == "Failed"


def test_trainer_client_runtime_patches_reach_the_nodes(
    trainer_client: Any, runtime: RuntimeHandle, namespace: str
) -> None:
    # The SDK's RuntimePatch option (spec.runtimePatches, keyed by manager): a label on the node pods
    # and an env var from a Secret in the node container, as a platform's admission webhook would add.
    from kubeflow.trainer import CustomTrainer
    from kubeflow.trainer.options import (
        ContainerPatch,
        JobSetSpecPatch,
        JobSetTemplatePatch,
        JobSpecPatch,
        JobTemplatePatch,
        PodSpecPatch,
        PodTemplatePatch,
        ReplicatedJobPatch,
        RuntimePatch,
        TrainingRuntimeSpecPatch,
    )

    with runtime.http() as c:
        secret = {"metadata": {"name": "team"}, "stringData": {"token": "s3cr3t-value"}}
        c.post(f"/api/v1/namespaces/{namespace}/secrets", json=secret).raise_for_status()
    env = [{"name": "TEAM_TOKEN", "valueFrom": {"secretKeyRef": {"name": "team", "key": "token"}}}]
    pod = PodTemplatePatch(
        metadata={"labels": {"team": "anomaly"}},
        spec=PodSpecPatch(containers=[ContainerPatch(name="node", env=env)]),
    )
    patch = RuntimePatch(
        training_runtime_spec=TrainingRuntimeSpecPatch(
            template=JobSetTemplatePatch(
                spec=JobSetSpecPatch(
                    replicated_jobs=[
                        ReplicatedJobPatch(
                            name="node", template=JobTemplatePatch(spec=JobSpecPatch(template=pod))
                        )
                    ]
                )
            )
        )
    )

    def show_token() -> None:
        import os

        print("token length", len(os.environ.get("TEAM_TOKEN", "")), flush=True)

    name = trainer_client.train(trainer=CustomTrainer(func=show_token, num_nodes=1), options=[patch])
    assert trainer_client.wait_for_job_status(name, timeout=120, polling_interval=1).status == "Complete"
    assert list(trainer_client.get_job_logs(name)) == [f"token length {len('s3cr3t-value')}"]
    with runtime.http() as c:
        job = c.get(f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{name}").json()
        pods = c.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": "team=anomaly"}).json()
    assert job["spec"]["runtimePatches"][0]["manager"] == "trainer.kubeflow.org/kubeflow-sdk"
    assert [p["metadata"]["name"] for p in pods["items"]] == [f"{name}-node-0-0"]
