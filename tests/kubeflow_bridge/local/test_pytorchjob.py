"""PyTorchJob with the training operator's semantics, through HTTP and the kubeflow-training SDK."""

from __future__ import annotations

import json
from typing import Any

from .conftest import RuntimeHandle, wait_for

ENV_DUMP = (
    "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
    "('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'PET_MASTER_ADDR', 'PET_NODE_RANK', 'PET_NNODES', "
    "'PET_NPROC_PER_NODE', 'PYTHONUNBUFFERED')}))"
)


def replica(n: int, code: str, restart: str = "Never", image: str = "python:3.11") -> dict[str, Any]:
    return {
        "replicas": n,
        "restartPolicy": restart,
        "template": {
            "spec": {"containers": [{"name": "pytorch", "image": image, "command": ["python", "-c", code]}]}
        },
    }


def job(name: str, master: dict[str, Any], worker: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {**spec, "pytorchReplicaSpecs": {"Master": master, "Worker": worker}},
    }


def conditions(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c["reason"]) for c in obj.get("status", {}).get("conditions", [])]


def finished(obj: dict[str, Any]) -> bool:
    return any(t in ("Succeeded", "Failed") and s == "True" for t, s, _ in conditions(obj))


def test_replicas_env_labels_and_status(runtime: RuntimeHandle, namespace: str) -> None:
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    with runtime.http() as c:
        c.post(url, json=job("envs", replica(1, ENV_DUMP), replica(2, ENV_DUMP))).raise_for_status()
        obj = wait_for(lambda: (o := c.get(f"{url}/envs").json()) and finished(o) and o, timeout=30)
        assert conditions(obj) == [
            ("Created", "True", "PyTorchJobCreated"),
            ("Running", "False", "PyTorchJobRunning"),
            ("Succeeded", "True", "PyTorchJobSucceeded"),
        ]
        st = obj["status"]
        assert st["startTime"] and st["completionTime"]
        assert st["replicaStatuses"]["Master"]["succeeded"] == 1
        assert st["replicaStatuses"]["Worker"]["selector"].startswith("training.kubeflow.org/job-name=envs")
        pods = c.get(
            f"/api/v1/namespaces/{namespace}/pods",
            params={"labelSelector": "training.kubeflow.org/job-name=envs"},
        ).json()["items"]
        by_name = {p["metadata"]["name"]: p for p in pods}
        assert set(by_name) == {"envs-master-0", "envs-worker-0", "envs-worker-1"}
        assert by_name["envs-master-0"]["metadata"]["labels"]["training.kubeflow.org/job-role"] == "master"
        assert by_name["envs-worker-1"]["metadata"]["labels"]["training.kubeflow.org/replica-index"] == "1"
        assert by_name["envs-worker-1"]["metadata"]["ownerReferences"][0]["kind"] == "PyTorchJob"
        envs = {}
        for name in by_name:
            wait_for(
                lambda n=name: (
                    c.get(f"/api/v1/namespaces/{namespace}/pods/{n}").json()["status"]["phase"] == "Succeeded"
                )
            )
            envs[name] = json.loads(c.get(f"/api/v1/namespaces/{namespace}/pods/{name}/log").text)
        assert [envs[n]["RANK"] for n in ("envs-master-0", "envs-worker-0", "envs-worker-1")] == [
            "0",
            "1",
            "2",
        ]
        assert {e["WORLD_SIZE"] for e in envs.values()} == {"3"}
        assert {e["MASTER_ADDR"] for e in envs.values()} == {"127.0.0.1"}
        assert len({e["MASTER_PORT"] for e in envs.values()}) == 1
        assert envs["envs-worker-1"]["PET_NODE_RANK"] == "2" and envs["envs-master-0"]["PET_NNODES"] == "3"
        assert (
            envs["envs-master-0"]["PET_NPROC_PER_NODE"] == "auto"
            and envs["envs-master-0"]["PYTHONUNBUFFERED"] == "1"
        )
        events = [
            e["reason"]
            for e in c.get(f"/api/v1/namespaces/{namespace}/events").json()["items"]
            if e["involvedObject"]["name"] == "envs"
        ]
        assert {"PyTorchJobCreated", "SuccessfulCreatePod", "PyTorchJobSucceeded"} <= set(events)
        # Deleting the job deletes its pods.
        c.delete(f"{url}/envs").raise_for_status()
        assert (
            c.get(
                f"/api/v1/namespaces/{namespace}/pods",
                params={"labelSelector": "training.kubeflow.org/job-name=envs"},
            ).json()["items"]
            == []
        )


def test_failing_replica_fails_job_with_pod_reason(runtime: RuntimeHandle, namespace: str) -> None:
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    body = job(
        "bad",
        replica(1, "import time; time.sleep(120)"),
        replica(1, "import sys; print('boom'); sys.exit(3)"),
        runPolicy={"cleanPodPolicy": "Running"},
    )
    with runtime.http() as c:
        c.post(url, json=body).raise_for_status()
        obj = wait_for(lambda: (o := c.get(f"{url}/bad").json()) and finished(o) and o, timeout=30)
        failed = obj["status"]["conditions"][-1]
        assert failed["type"] == "Failed" and failed["reason"] == "PyTorchJobFailed"
        assert "1 Worker replica(s) failed" in failed["message"]
        assert "bad-worker-0" in failed["message"] and "exited with code 3" in failed["message"]
        assert obj["status"]["replicaStatuses"]["Worker"]["failed"] == 1
        # cleanPodPolicy Running: the still-running master is deleted, the failed worker is kept.
        wait_for(lambda: c.get(f"/api/v1/namespaces/{namespace}/pods/bad-master-0").status_code == 404)
        assert c.get(f"/api/v1/namespaces/{namespace}/pods/bad-worker-0/log").text == "boom\n"


def test_unknown_image_replica_fails_job(runtime: RuntimeHandle, namespace: str) -> None:
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    body = job(
        "img",
        replica(1, "pass", image="nowhere.example/x:1"),
        replica(1, "pass"),
        runPolicy={"cleanPodPolicy": "All"},
    )
    with runtime.http() as c:
        c.post(url, json=body).raise_for_status()
        obj = wait_for(lambda: (o := c.get(f"{url}/img").json()) and finished(o) and o, timeout=30)
        msg = obj["status"]["conditions"][-1]["message"]
        assert "Master" in msg and "ImagePullBackOff" in msg


def test_training_client_sdk(runtime: RuntimeHandle, namespace: str) -> None:
    from kubeflow.training import TrainingClient, models
    from kubernetes.client import V1Container, V1ObjectMeta, V1PodSpec, V1PodTemplateSpec

    def spec(code: str) -> Any:
        container = V1Container(name="pytorch", image="python:3.11", command=["python", "-c", code])
        return models.KubeflowOrgV1ReplicaSpec(
            replicas=1,
            restart_policy="OnFailure",
            template=V1PodTemplateSpec(spec=V1PodSpec(containers=[container])),
        )

    tc = TrainingClient(config_file=str(runtime.kubeconfig), namespace=namespace)
    pj = models.KubeflowOrgV1PyTorchJob(
        api_version="kubeflow.org/v1",
        kind="PyTorchJob",
        metadata=V1ObjectMeta(name="sdk"),
        spec=models.KubeflowOrgV1PyTorchJobSpec(
            run_policy=models.KubeflowOrgV1RunPolicy(clean_pod_policy="None"),
            pytorch_replica_specs={
                "Master": spec("print('from master rank 0')"),
                "Worker": spec("print('worker')"),
            },
        ),
    )
    tc.create_job(pj)
    done = tc.wait_for_job_conditions(
        "sdk", expected_conditions={"Succeeded"}, timeout=60, polling_interval=1
    )
    assert done.status.replica_statuses["Master"].succeeded == 1
    assert tc.is_job_succeeded("sdk")
    logs, _ = tc.get_job_logs("sdk")
    assert logs == {"sdk-master-0": "from master rank 0\n"}
    assert [c.type for c in tc.get_job_conditions("sdk")] == ["Created", "Running", "Succeeded"]
    tc.delete_job("sdk")
    assert tc.list_jobs() == []


def test_suspend_and_resume(runtime: RuntimeHandle, namespace: str, tmp_path: Any) -> None:
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    pods = f"/api/v1/namespaces/{namespace}/pods"
    merge = {"Content-Type": "application/merge-patch+json"}
    go = tmp_path / "go"  # the master runs until the job has been suspended and resumed
    master = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.2)\nprint('m')"
    with runtime.http() as c:
        c.post(url, json=job("sus", replica(1, master), replica(1, "print('w')"))).raise_for_status()
        wait_for(lambda: ("Running", "True", "PyTorchJobRunning") in conditions(c.get(f"{url}/sus").json()))
        c.patch(
            f"{url}/sus", json={"spec": {"runPolicy": {"suspend": True}}}, headers=merge
        ).raise_for_status()
        obj = wait_for(
            lambda: (
                (o := c.get(f"{url}/sus").json()) and any(t == "Suspended" for t, _, _ in conditions(o)) and o
            )
        )
        # as v1.9 writes it: Running turns False (not removed), Suspended True, no active replicas
        assert ("Running", "False", "PyTorchJobSuspended") in conditions(obj)
        assert ("Suspended", "True", "PyTorchJobSuspended") in conditions(obj)
        assert not any(st.get("active") for st in obj["status"]["replicaStatuses"].values())
        wait_for(lambda: c.get(pods).json()["items"] == [], timeout=20)
        go.write_text("x")
        c.patch(
            f"{url}/sus", json={"spec": {"runPolicy": {"suspend": False}}}, headers=merge
        ).raise_for_status()
        obj = wait_for(lambda: (o := c.get(f"{url}/sus").json()) and finished(o) and o, timeout=30)
        assert ("Suspended", "False", "PyTorchJobResumed") in conditions(obj)
        assert conditions(obj)[-1] == ("Succeeded", "True", "PyTorchJobSucceeded")


def test_on_failure_restarts_until_backoff_limit(
    runtime: RuntimeHandle, namespace: str, tmp_path: Any
) -> None:
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    crashes = tmp_path / "crashes"
    crash = f"import sys, time\ntime.sleep(1)\nopen({str(crashes)!r}, 'a').write('x')\nsys.exit(1)"
    body = job(
        "flaky",
        replica(1, crash, restart="OnFailure"),
        replica(1, "import time; time.sleep(60)"),
        runPolicy={"backoffLimit": 2},  # cleanPodPolicy None: pods are still removed on a backoff failure
    )
    with runtime.http() as c:
        c.post(url, json=body).raise_for_status()
        obj = wait_for(lambda: (o := c.get(f"{url}/flaky").json()) and finished(o) and o, timeout=60)
        last = obj["status"]["conditions"][-1]
        assert last["type"] == "Failed" and "backoff limit" in last["message"]
        wait_for(lambda: c.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"] == [], timeout=20)
    # the job fails when the 2nd restart is running (restartCount 2 >= backoffLimit), as the operator
    # counts: the first run and two restarts crash; the pods go 5 s later, before a fourth run could
    assert crashes.read_text() == "xxx"


def test_ttl_seconds_after_finished_deletes_the_job(runtime: RuntimeHandle, namespace: str) -> None:
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    body = job(
        "ttl", replica(1, "print('m')"), replica(1, "print('w')"), runPolicy={"ttlSecondsAfterFinished": 1}
    )
    with runtime.http() as c:
        c.post(url, json=body).raise_for_status()
        wait_for(lambda: c.get(f"{url}/ttl").status_code == 404, timeout=30, what="the job to be deleted")
        assert c.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"] == []


def test_exit_code_policy_restarts_on_retryable_code(
    runtime: RuntimeHandle, namespace: str, tmp_path: Any
) -> None:
    marker = tmp_path / "first-run-done"
    # First run dies by SIGKILL (exit 137: retryable), the second succeeds.
    code = (
        f"import os, pathlib, signal; p = pathlib.Path({str(marker)!r})\n"
        "if not p.exists():\n    p.write_text('x'); os.kill(os.getpid(), signal.SIGKILL)\n"
        "print('second run')"
    )
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    with runtime.http() as c:
        c.post(
            url, json=job("ec", replica(1, code, restart="ExitCode"), replica(1, "print('w')"))
        ).raise_for_status()

        def done() -> dict[str, Any] | None:
            o = c.get(f"{url}/ec").json()
            return o if finished(o) else None

        obj = wait_for(done, timeout=40)
        assert conditions(obj)[-1] == ("Succeeded", "True", "PyTorchJobSucceeded")
        assert c.get(f"/api/v1/namespaces/{namespace}/pods/ec-master-0/log").text == "second run\n"
        events = [
            e["reason"]
            for e in c.get(f"/api/v1/namespaces/{namespace}/events").json()["items"]
            if e["involvedObject"]["name"] == "ec"
        ]
        # Restarting is transient (Running replaces it once the new pod runs); its event stays.
        assert "PyTorchJobRestarting" in events


def test_active_deadline_fails_job_and_removes_pods(runtime: RuntimeHandle, namespace: str) -> None:
    url = f"/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    sleep = "import time; time.sleep(120)"
    with runtime.http() as c:
        c.post(
            url,
            json=job("late", replica(1, sleep), replica(1, sleep), runPolicy={"activeDeadlineSeconds": 2}),
        ).raise_for_status()
        obj = wait_for(lambda: (o := c.get(f"{url}/late").json()) and finished(o) and o, timeout=30)
        last = obj["status"]["conditions"][-1]
        assert last["type"] == "Failed" and "deadline" in last["message"]
        wait_for(lambda: c.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"] == [], timeout=20)
