"""kubectl 1.32 against the runtime: get, -o yaml, apply -f, wait, logs, delete, get -w."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from .conftest import RuntimeHandle

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

MANIFEST = """
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: kc
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: Never
      template:
        spec:
          containers:
            - name: pytorch
              image: python:3.11
              command: ["python", "-c", "import time; time.sleep(1.5); print('master says hi')"]
    Worker:
      replicas: WORKERS
      restartPolicy: Never
      template:
        spec:
          containers:
            - name: pytorch
              image: python:3.11
              command: ["python", "-c", "print('worker')"]
"""


def kubectl(
    rt: RuntimeHandle, ns: str, *args: str, timeout: float = 60, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(rt.kubeconfig), "HOME": str(rt.state_dir)}
    proc = subprocess.run(
        [KUBECTL, "-n", ns, *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
    return proc


def test_kubectl_apply_wait_logs_get_delete(runtime: RuntimeHandle, namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(MANIFEST.replace("WORKERS", "1"))
    # Start a watch first: it must see the job appear and change.
    env = {**os.environ, "KUBECONFIG": str(runtime.kubeconfig), "HOME": str(runtime.state_dir)}
    watcher = subprocess.Popen(
        [KUBECTL, "-n", namespace, "get", "pytorchjobs", "-w", "--request-timeout=8s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        time.sleep(0.5)
        out = kubectl(runtime, namespace, "apply", "-f", str(manifest)).stdout
        assert "pytorchjob.kubeflow.org/kc created" in out
        out = kubectl(
            runtime, namespace, "wait", "--for=condition=Succeeded", "pytorchjob/kc", "--timeout=60s"
        ).stdout
        assert "condition met" in out
    finally:
        try:
            watch_out, _ = watcher.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            watcher.kill()
            watch_out, _ = watcher.communicate()
    lines = [ln.split() for ln in watch_out.splitlines() if ln.strip()]
    assert lines[0][:2] == ["NAME", "STATE"]
    assert [ln[1] for ln in lines[1:] if ln[0] == "kc"][-1] == "Succeeded"
    table = kubectl(runtime, namespace, "get", "pytorchjobs").stdout.split()
    assert table[:3] == ["NAME", "STATE", "AGE"] and table[3:5] == ["kc", "Succeeded"]
    obj = yaml.safe_load(kubectl(runtime, namespace, "get", "pytorchjob", "kc", "-o", "yaml").stdout)
    assert obj["status"]["conditions"][-1]["type"] == "Succeeded" and obj["metadata"]["generation"] == 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    pods = kubectl(runtime, namespace, "get", "pods").stdout
    assert "kc-master-0" in pods and "Completed" in pods
    assert kubectl(runtime, namespace, "logs", "kc-master-0").stdout == "master says hi\n"
    # Re-apply unchanged: nothing to do (the stored spec is the submitted one, no defaults written back).
    assert "unchanged" in kubectl(runtime, namespace, "apply", "-f", str(manifest)).stdout
    # Re-apply with a change: a merge patch that bumps the generation.
    manifest.write_text(MANIFEST.replace("WORKERS", "2"))
    assert "configured" in kubectl(runtime, namespace, "apply", "-f", str(manifest)).stdout
    obj = yaml.safe_load(kubectl(runtime, namespace, "get", "pytorchjob", "kc", "-o", "yaml").stdout)
    assert (
        obj["metadata"]["generation"] == 2 and obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    )
    assert (
        'pytorchjob.kubeflow.org "kc" deleted'
        in kubectl(runtime, namespace, "delete", "pytorchjob", "kc").stdout
    )
    gone = kubectl(runtime, namespace, "get", "pytorchjob", "kc", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    assert "kc-master-0" not in kubectl(runtime, namespace, "get", "pods").stdout


def test_kubectl_rejects_invalid_job(runtime: RuntimeHandle, namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(MANIFEST.replace("WORKERS", "0"))
    proc = kubectl(runtime, namespace, "apply", "-f", str(manifest), check=False)
    assert proc.returncode != 0
    assert (
        'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request'
        in proc.stderr
    )
    assert "No resources found" in kubectl(runtime, namespace, "get", "pytorchjobs").stderr


def test_kubectl_get_events_and_namespaces(runtime: RuntimeHandle, namespace: str) -> None:
    out = kubectl(runtime, namespace, "get", "namespaces").stdout
    assert "kubeflow-user" in out and namespace in out
    kubectl(
        runtime,
        namespace,
        "run",
        "hello",
        "--image=python:3.11",
        "--restart=Never",
        "--command",
        "--",
        "python",
        "-c",
        "print('hi')",
    )
    deadline = time.monotonic() + 20
    while (
        "Completed" not in kubectl(runtime, namespace, "get", "pod", "hello").stdout
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert kubectl(runtime, namespace, "logs", "hello").stdout == "hi\n"
    assert "Started container hello" in kubectl(runtime, namespace, "get", "events").stdout
