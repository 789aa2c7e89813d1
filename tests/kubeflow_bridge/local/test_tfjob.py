"""TFJob (training operator v1.9) on the local runtime with kubectl: TF_CONFIG for Chief, Workers and
PS, success with the Chief (or Worker 0), cleanPodPolicy Running, and the webhook's refusals.

The replicas run a small script (no TensorFlow): each prints its task and the cluster it was given.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .conftest import RuntimeHandle, wait_for
from .test_kubectl import kubectl

pytestmark = pytest.mark.e2e

# Prints its TF_CONFIG task and cluster; a PS serves until it is stopped, as TensorFlow's does; the
# Chief ends last (its success ends the job, and cleanPodPolicy Running stops what still runs).
REPLICA = textwrap.dedent(
    """
    import json, os, time
    config = json.loads(os.environ["TF_CONFIG"])
    task = config["task"]
    print("TASK", task["type"], task["index"], json.dumps(config["cluster"], sort_keys=True), flush=True)
    if task["type"] == "ps" or (task["type"] == "worker" and task["index"] > 0 and os.environ.get("SLOW")):
        time.sleep(300)
    if task["type"] == "chief":
        time.sleep(3)
    """
)


def _tfjob(name: str, replicas: dict[str, int], *, slow_workers: bool = False) -> dict[str, Any]:
    env = [{"name": "SLOW", "value": "1"}] if slow_workers else []
    container = {
        "name": "tensorflow",
        "image": "python:3.11",
        "command": ["python3", "-c", REPLICA],
        "env": env,
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name},
        "spec": {
            "tfReplicaSpecs": {
                rtype: {"replicas": n, "template": {"spec": {"containers": [container]}}}
                for rtype, n in replicas.items()
            }
        },
    }


def _apply(rt: RuntimeHandle, ns: str, tmp_path: Path, obj: dict[str, Any]) -> None:
    path = tmp_path / f"{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    kubectl(rt, ns, "apply", "-f", str(path))


def test_tfjob_chief_workers_and_ps_get_tf_config_and_the_chief_decides(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    _apply(runtime, namespace, tmp_path, _tfjob("dist", {"Chief": 1, "Worker": 2, "PS": 1}))
    kubectl(
        runtime, namespace, "wait", "--for=condition=Succeeded", "tfjob/dist", "--timeout=120s", timeout=150
    )
    job = json.loads(kubectl(runtime, namespace, "get", "tfjob", "dist", "-o", "json").stdout)
    # The operator's defaults, stored: restartPolicy Never, cleanPodPolicy Running.
    assert job["spec"]["tfReplicaSpecs"]["PS"]["restartPolicy"] == "Never"
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] == "Running"
    assert job["status"]["conditions"][-1]["reason"] == "TFJobSucceeded"
    # Every replica saw the same cluster (distinct local ports) and its own task.
    seen: dict[tuple[str, int], dict[str, list[str]]] = {}
    for pod in ("dist-chief-0", "dist-worker-0", "dist-worker-1"):
        line = next(
            x for x in kubectl(runtime, namespace, "logs", pod).stdout.splitlines() if x.startswith("TASK")
        )
        _, rtype, index, cluster = line.split(" ", 3)
        seen[(rtype, int(index))] = json.loads(cluster)
    assert set(seen) == {("chief", 0), ("worker", 0), ("worker", 1)}
    cluster = seen[("chief", 0)]
    assert all(c == cluster for c in seen.values())
    assert {k: len(v) for k, v in cluster.items()} == {"chief": 1, "worker": 2, "ps": 1}
    addresses = [a for v in cluster.values() for a in v]
    assert len(set(addresses)) == 4 and all(a.startswith("127.0.0.1:") for a in addresses)
    # The Chief is the master (its log is the job's); the PS, still serving, was cleaned up.
    master = kubectl(runtime, namespace, "logs", "-l", "training.kubeflow.org/job-role=master").stdout
    assert "TASK chief 0" in master
    wait_for(
        lambda: "dist-ps-0" not in kubectl(runtime, namespace, "get", "pods", "-o", "name").stdout,
        timeout=30,
        what="the running PS to be cleaned up",
    )


def test_tfjob_without_a_chief_succeeds_with_worker_0(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    _apply(runtime, namespace, tmp_path, _tfjob("workers", {"Worker": 2}, slow_workers=True))
    kubectl(
        runtime,
        namespace,
        "wait",
        "--for=condition=Succeeded",
        "tfjob/workers",
        "--timeout=120s",
        timeout=150,
    )
    master = kubectl(runtime, namespace, "logs", "-l", "training.kubeflow.org/job-role=master").stdout
    assert "TASK worker 0" in master  # Worker 0 is the master when there is no Chief


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.update(tfReplicaSpecs={"PS": s["tfReplicaSpecs"]["Worker"]}),
            "needs a Chief (or Master) or a Worker",
        ),
        (
            lambda s: s["tfReplicaSpecs"].update(
                Chief=s["tfReplicaSpecs"]["Worker"], Master=s["tfReplicaSpecs"]["Worker"]
            ),
            "must not have more than 1 Chief or Master role",
        ),
        (
            lambda s: s["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0].update(name="main"),
            "Worker needs a container named 'tensorflow'",
        ),
    ],
)
def test_tfjob_webhook_refusals_create_nothing(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path, change: Any, message: str
) -> None:
    obj = _tfjob("bad", {"Worker": 1})
    change(obj["spec"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))
    proc = kubectl(runtime, namespace, "apply", "-f", str(path), check=False)
    assert proc.returncode != 0
    assert (
        'admission webhook "validator.tfjob.training-operator.kubeflow.org" denied the request' in proc.stderr
    )
    assert message in proc.stderr
    assert kubectl(runtime, namespace, "get", "tfjobs,pods", "-o", "name").stdout.strip() == ""
