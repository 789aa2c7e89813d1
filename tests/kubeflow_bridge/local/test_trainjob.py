"""Kubeflow Trainer v2 TrainJob on the local runtime, driven with kubectl as its docs do (apply, wait
--for=condition=Complete, logs -l jobset.sigs.k8s.io/jobset-name=...)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import RuntimeHandle
from .test_kubectl import kubectl

pytestmark = pytest.mark.e2e

# torchrun on every node: a 2-node gloo all-reduce of the ranks, as Trainer's multi-node example does
TRAINJOB = """
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainJob
metadata:
  name: NAME
spec:
  runtimeRef:
    name: torch-distributed
  trainer:
    numNodes: 2
    command:
      - torchrun
      - --no-python
      - python3
      - -c
      - |
        import os
        import torch
        import torch.distributed as dist
        dist.init_process_group(backend="gloo")
        total = torch.tensor([float(dist.get_rank())])
        dist.all_reduce(total)
        print(f"rank {dist.get_rank()} of {dist.get_world_size()} node {os.environ['PET_NODE_RANK']} sum {total.item()}")
        dist.destroy_process_group()
"""


def _trainjob(rt: RuntimeHandle, ns: str, name: str) -> dict:
    return json.loads(kubectl(rt, ns, "get", "trainjob", name, "-o", "json").stdout)


def _apply(rt: RuntimeHandle, ns: str, tmp_path: Path, text: str) -> None:
    manifest = tmp_path / f"manifest-{len(list(tmp_path.glob('manifest-*')))}.yaml"
    manifest.write_text(text)
    kubectl(rt, ns, "apply", "-f", str(manifest))


def _no_retry_runtime(name: str, num_nodes: int, script: str) -> str:
    """A TrainingRuntime whose nodes run ``script`` once: the first failure fails the job."""
    return f"""
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainingRuntime
metadata:
  name: {name}
spec:
  mlPolicy: {{numNodes: {num_nodes}, torch: {{}}}}
  template:
    spec:
      replicatedJobs:
        - name: node
          template:
            metadata:
              labels: {{trainer.kubeflow.org/trainjob-ancestor-step: trainer}}
            spec:
              backoffLimit: 0
              template:
                spec:
                  restartPolicy: Never
                  containers:
                    - name: node
                      image: python:3.11
                      command: [python3, -c, {json.dumps(script)}]
"""


def _trainjob_on(name: str, runtime_name: str) -> str:
    """A TrainJob of the namespaced TrainingRuntime ``runtime_name``, with no overrides."""
    return (
        f"apiVersion: trainer.kubeflow.org/v1alpha1\nkind: TrainJob\nmetadata: {{name: {name}}}\n"
        f"spec:\n  runtimeRef: {{name: {runtime_name}, kind: TrainingRuntime}}\n"
    )


def test_trainjob_runs_torchrun_on_two_nodes_with_kubectl(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    runtimes = kubectl(runtime, namespace, "get", "clustertrainingruntimes", "-o", "name").stdout
    assert "clustertrainingruntime.trainer.kubeflow.org/torch-distributed" in runtimes
    manifest = tmp_path / "trainjob.yaml"
    manifest.write_text(TRAINJOB.replace("NAME", "ddp"))
    kubectl(runtime, namespace, "apply", "-f", str(manifest))
    kubectl(
        runtime, namespace, "wait", "--for=condition=Complete", "trainjob/ddp", "--timeout=120s", timeout=130
    )
    logs = kubectl(runtime, namespace, "logs", "-l", "jobset.sigs.k8s.io/jobset-name=ddp").stdout
    # both ranks saw the other: 0 + 1
    assert "rank 0 of 2 node 0 sum 1.0" in logs and "rank 1 of 2 node 1 sum 1.0" in logs, logs
    job = _trainjob(runtime, namespace, "ddp")
    complete = next(c for c in job["status"]["conditions"] if c["type"] == "Complete")
    assert (complete["status"], complete["reason"], complete["message"]) == (
        "True",
        "AllJobsCompleted",
        "jobset completed successfully",
    )
    assert job["status"]["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}
    ]
    pods = json.loads(
        kubectl(
            runtime, namespace, "get", "pods", "-l", "jobset.sigs.k8s.io/jobset-name=ddp", "-o", "json"
        ).stdout
    )["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["ddp-node-0-0", "ddp-node-0-1"]
    env = {e["name"]: e for e in pods[0]["spec"]["containers"][0]["env"]}
    assert env["PET_NNODES"]["value"] == "2" and env["PET_NPROC_PER_NODE"]["value"] == "1"
    assert "fieldRef" in env["PET_NODE_RANK"]["valueFrom"]
    assert (
        kubectl(runtime, namespace, "get", "trainjob", "ddp").stdout.split("\n")[1].split()[1] == "Complete"
    )


def test_trainjob_refusals_name_the_fix_and_store_nothing(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    cases = {
        "no-runtime": ("name: torch-distributed", "name: no-such-runtime"),
        "zero-nodes": ("numNodes: 2", "numNodes: 0"),
        "reserved-env": ("numNodes: 2", "numNodes: 2\n    env: [{name: PET_NNODES, value: '9'}]"),
        "unmapped-image": ("numNodes: 2", "numNodes: 2\n    image: tensorflow/tensorflow:2.16.1"),
    }
    expected = {
        "no-runtime": 'clustertrainingruntimes.trainer.kubeflow.org "no-such-runtime" not found',
        "zero-nodes": "numNodes",
        "reserved-env": "must not have reserved envs",
        # the local runtime's own limit, with its fix
        "unmapped-image": 'image "tensorflow/tensorflow:2.16.1" is not mapped to a local environment',
    }
    for name, (old, new) in cases.items():
        manifest = tmp_path / f"{name}.yaml"
        manifest.write_text(TRAINJOB.replace("NAME", name).replace(old, new))
        proc = kubectl(runtime, namespace, "apply", "-f", str(manifest), check=False)
        assert proc.returncode != 0 and expected[name] in proc.stderr, (name, proc.stderr)
    assert kubectl(runtime, namespace, "get", "trainjobs", "-o", "name").stdout.strip() == ""
    assert kubectl(runtime, namespace, "get", "pods", "-o", "name").stdout.strip() == ""


def test_a_failing_node_fails_the_trainjob_and_suspend_resumes(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    # a namespaced runtime with no retries: the first failure fails the job (JobSet's FailedJobs)
    _apply(
        runtime,
        namespace,
        tmp_path,
        _no_retry_runtime("strict", 1, "import sys; print('bad node'); sys.exit(3)"),
    )
    _apply(runtime, namespace, tmp_path, _trainjob_on("broken", "strict"))
    kubectl(
        runtime, namespace, "wait", "--for=condition=Failed", "trainjob/broken", "--timeout=60s", timeout=70
    )
    failed = [
        c for c in _trainjob(runtime, namespace, "broken")["status"]["conditions"] if c["type"] == "Failed"
    ]
    assert failed[0]["reason"] == "FailedJobs"
    assert "bad node" in kubectl(runtime, namespace, "logs", "broken-node-0-0").stdout

    # suspended: no pod until resumed, then Suspended=False (Resumed) and the job runs to Complete
    _apply(
        runtime,
        namespace,
        tmp_path,
        "apiVersion: trainer.kubeflow.org/v1alpha1\nkind: TrainJob\nmetadata: {name: later}\n"
        "spec:\n  suspend: true\n  runtimeRef: {name: torch-distributed}\n"
        "  trainer: {command: [python3, -c, \"print('resumed')\"]}\n",
    )
    kubectl(
        runtime, namespace, "wait", "--for=condition=Suspended", "trainjob/later", "--timeout=30s", timeout=40
    )
    assert (
        kubectl(
            runtime, namespace, "get", "pods", "-l", "jobset.sigs.k8s.io/jobset-name=later", "-o", "name"
        ).stdout
        == ""
    )
    kubectl(
        runtime, namespace, "patch", "trainjob", "later", "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )
    kubectl(
        runtime, namespace, "wait", "--for=condition=Complete", "trainjob/later", "--timeout=60s", timeout=70
    )
    suspended = [
        c for c in _trainjob(runtime, namespace, "later")["status"]["conditions"] if c["type"] == "Suspended"
    ]
    assert (suspended[0]["status"], suspended[0]["reason"]) == ("False", "Resumed")
    assert (
        "resumed" in kubectl(runtime, namespace, "logs", "-l", "jobset.sigs.k8s.io/jobset-name=later").stdout
    )


def test_replicated_jobs_start_in_depends_on_order(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    """An initializer runs to completion before the trainer nodes start (dependsOn status Complete), as
    Trainer's dataset and model initializers do."""
    marker = tmp_path / "initialized"
    _apply(
        runtime,
        namespace,
        tmp_path,
        f"""
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainingRuntime
metadata:
  name: staged
spec:
  mlPolicy: {{numNodes: 1}}
  template:
    spec:
      replicatedJobs:
        - name: dataset-initializer
          template:
            metadata:
              labels: {{trainer.kubeflow.org/trainjob-ancestor-step: dataset-initializer}}
            spec:
              template:
                spec:
                  containers:
                    - name: dataset-initializer
                      image: python:3.11
                      command: [python3, -c, "import time, pathlib; time.sleep(1.5); pathlib.Path('{marker}').write_text('ok')"]
        - name: node
          dependsOn: [{{name: dataset-initializer, status: Complete}}]
          template:
            metadata:
              labels: {{trainer.kubeflow.org/trainjob-ancestor-step: trainer}}
            spec:
              template:
                spec:
                  containers:
                    - name: node
                      image: python:3.11
                      command: [python3, -c, "import pathlib; print('data ready:', pathlib.Path('{marker}').exists())"]
""",
    )
    _apply(runtime, namespace, tmp_path, _trainjob_on("staged", "staged"))
    kubectl(
        runtime, namespace, "wait", "--for=condition=Complete", "trainjob/staged", "--timeout=60s", timeout=70
    )
    assert "data ready: True" in kubectl(runtime, namespace, "logs", "staged-node-0-0").stdout
    names = [e["name"] for e in _trainjob(runtime, namespace, "staged")["status"]["jobsStatus"]]
    assert names == ["dataset-initializer", "node"]


def test_a_failed_trainjob_stops_its_other_nodes(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    """Node 1 fails; node 0, waiting, is stopped a few seconds after Failed (no orphan); node 1's pod and
    log stay."""
    script = "import os, sys, time; i = os.environ['JOB_COMPLETION_INDEX']; print('node', i, flush=True); i == '1' and sys.exit(3); time.sleep(120)"
    _apply(runtime, namespace, tmp_path, _no_retry_runtime("half", 2, script))
    _apply(runtime, namespace, tmp_path, _trainjob_on("half", "half"))
    kubectl(
        runtime, namespace, "wait", "--for=condition=Failed", "trainjob/half", "--timeout=60s", timeout=70
    )
    kubectl(runtime, namespace, "wait", "--for=delete", "pod/half-node-0-0", "--timeout=30s", timeout=40)
    assert "node 1" in kubectl(runtime, namespace, "logs", "half-node-0-1").stdout


def test_a_restarted_controller_keeps_the_jobs_master_port() -> None:
    """The port lives in the controller's memory; after a runtime restart it is read back from the pods
    that exist, so a replacement node meets its peers on it."""
    from kubeflow_bridge.local.training.trainjob import TrainJobController

    controller = TrainJobController()
    job = {"metadata": {"uid": "u1"}}
    pod = {"spec": {"containers": [{"name": "node", "env": [{"name": "PET_MASTER_PORT", "value": "41234"}]}]}}
    controller._recover_port(job, [{"spec": {"containers": [{"name": "node"}]}}, pod])
    assert controller.ports == {"u1": 41234}
    controller._recover_port(
        job, [{"spec": {"containers": [{"env": [{"name": "PET_MASTER_PORT", "value": "1"}]}]}}]
    )
    assert controller.ports == {"u1": 41234}  # the first one found stays
