"""Pods as processes and batch/v1 Jobs."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import httpx

from .conftest import RuntimeHandle, group_gone, python_pod, wait_for


def _pod(c: httpx.Client, ns: str, name: str) -> dict[str, Any]:
    return dict(c.get(f"/api/v1/namespaces/{ns}/pods/{name}").json())


def _phase(c: httpx.Client, ns: str, name: str) -> str:
    return str(_pod(c, ns, name).get("status", {}).get("phase"))


def _events(c: httpx.Client, ns: str, name: str) -> list[dict[str, Any]]:
    items = c.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
    return [e for e in items if e["involvedObject"]["name"] == name]


def test_pod_exit_code_env_workdir(runtime: RuntimeHandle, namespace: str, tmp_path: Any) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    with runtime.http() as c:
        c.post(
            f"/api/v1/namespaces/{namespace}/secrets",
            json={"metadata": {"name": "s"}, "data": {"pw": base64.b64encode(b"hunter2").decode()}},
        )
        c.post(
            f"/api/v1/namespaces/{namespace}/configmaps",
            json={"metadata": {"name": "cm"}, "data": {"mode": "fast"}},
        )
        code = "import os, sys; print(os.environ['PW'], os.environ['MODE'], os.environ['POD'], os.environ['GREETING'], os.getcwd()); sys.exit(3)"
        body = python_pod(
            "e",
            code,
            workingDir=str(tmp_path),
            env=[
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "mode"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NAME", "value": "world"},
                {"name": "GREETING", "value": "hello-$(NAME)"},
            ],
            resources={"requests": {"cpu": "100m", "memory": "64Mi"}},
        )
        c.post(pods, json=body).raise_for_status()
        wait_for(lambda: _phase(c, namespace, "e") == "Failed", what="pod failure")
        pod = _pod(c, namespace, "e")
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 3 and term["reason"] == "Error"
        assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}
        assert pod["status"]["qosClass"] == "Burstable"
        log = c.get(f"{pods}/e/log").text
        assert log.strip() == f"hunter2 fast e hello-world {tmp_path}"


def test_pods_get_storage_credentials_only_when_they_ask(runtime: RuntimeHandle, namespace: str) -> None:
    """No pod gets the S3 keys unasked; the workflow's envFrom of the namespace's storage Secret does."""
    from kubeflow_bridge.workflow import STORAGE_SECRET, storage_env_from

    secrets = f"/api/v1/namespaces/{namespace}/secrets"
    pods = f"/api/v1/namespaces/{namespace}/pods"
    code = (
        "import os; print(sorted(k for k in os.environ if k.startswith('AWS_')), 'KUBECONFIG' in os.environ)"
    )
    with runtime.http() as c:
        # A new namespace gets the Secret, holding the runtime's S3 endpoint and keys.
        secret = wait_for(
            lambda: c.get(f"{secrets}/{STORAGE_SECRET}").json().get("data"), what="storage secret"
        )
        assert base64.b64decode(secret["AWS_ENDPOINT_URL"]).decode() == runtime.s3
        c.post(pods, json=python_pod("plain", code)).raise_for_status()
        c.post(pods, json=python_pod("asks", code, envFrom=storage_env_from())).raise_for_status()
        for name in ("plain", "asks"):
            wait_for(lambda n=name: _phase(c, namespace, n) == "Succeeded", what=f"pod {name}")
        assert c.get(f"{pods}/plain/log").text.strip() == "[] True"
        asked = c.get(f"{pods}/asks/log").text
        assert (
            "'AWS_ACCESS_KEY_ID'" in asked
            and "'AWS_SECRET_ACCESS_KEY'" in asked
            and "'AWS_ENDPOINT_URL'" in asked
        )
        # A Secret of that name the team made stays as they made it.
        c.delete(f"{secrets}/{STORAGE_SECRET}")
        c.post(
            secrets, json={"metadata": {"name": STORAGE_SECRET}, "stringData": {"AWS_ACCESS_KEY_ID": "mine"}}
        )
        c.patch(
            f"/api/v1/namespaces/{namespace}",
            json={"metadata": {"labels": {"touched": "yes"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
        time.sleep(1)
        kept = c.get(f"{secrets}/{STORAGE_SECRET}").json()
        assert "app.kubernetes.io/managed-by" not in (kept["metadata"].get("labels") or {})


def test_missing_secret_is_create_container_config_error(runtime: RuntimeHandle, namespace: str) -> None:
    with runtime.http() as c:
        body = python_pod(
            "m", "print(1)", env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]
        )
        c.post(f"/api/v1/namespaces/{namespace}/pods", json=body).raise_for_status()

        def waiting() -> str | None:
            css = _pod(c, namespace, "m").get("status", {}).get("containerStatuses") or []
            return css[0]["state"].get("waiting", {}).get("reason") if css else None

        wait_for(lambda: waiting() == "CreateContainerConfigError")
        assert (
            'secret "nope" not found'
            in _pod(c, namespace, "m")["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        )
        assert _phase(c, namespace, "m") == "Pending"


def test_unknown_image_fails_like_image_pull(runtime: RuntimeHandle, namespace: str) -> None:
    with runtime.http() as c:
        c.post(
            f"/api/v1/namespaces/{namespace}/pods",
            json=python_pod("u", "print(1)", image="registry.example.com/unknown:1"),
        ).raise_for_status()
        reasons = set()

        def failed() -> bool:
            pod = _pod(c, namespace, "u")
            for cs in pod.get("status", {}).get("containerStatuses") or []:
                reasons.add(cs["state"].get("waiting", {}).get("reason"))
            return pod["status"].get("phase") == "Failed"

        wait_for(failed, timeout=15)
        assert {"ErrImagePull", "ImagePullBackOff"} <= reasons
        pod = _pod(c, namespace, "u")
        assert "not mapped to a local environment" in pod["status"]["message"]
        assert any(
            e["reason"] == "Failed" and "registry.example.com/unknown:1" in e["message"]
            for e in _events(c, namespace, "u")
        )


def test_gpu_pod_stays_pending_unschedulable(runtime: RuntimeHandle, namespace: str) -> None:
    with runtime.http() as c:
        body = python_pod("g", "print(1)", resources={"limits": {"nvidia.com/gpu": "1"}})
        c.post(f"/api/v1/namespaces/{namespace}/pods", json=body).raise_for_status()
        wait_for(lambda: _pod(c, namespace, "g").get("status", {}).get("conditions"))
        pod = _pod(c, namespace, "g")
        cond = pod["status"]["conditions"][0]
        assert pod["status"]["phase"] == "Pending"
        assert (
            cond["type"] == "PodScheduled" and cond["status"] == "False" and cond["reason"] == "Unschedulable"
        )
        assert "nvidia.com/gpu" in cond["message"]
        assert any(e["reason"] == "FailedScheduling" for e in _events(c, namespace, "g"))


def test_delete_kills_process_group(runtime: RuntimeHandle, namespace: str) -> None:
    # The pod starts a child too: deleting the pod must take the whole group.
    code = "import subprocess, sys, time, os; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); print(os.getpid(), flush=True); time.sleep(300)"
    with runtime.http() as c:
        c.post(f"/api/v1/namespaces/{namespace}/pods", json=python_pod("k", code)).raise_for_status()
        pid = int(
            wait_for(
                lambda: (
                    c.get(f"/api/v1/namespaces/{namespace}/pods/k/log").text.strip()
                    if _phase(c, namespace, "k") == "Running"
                    else ""
                ),
                what="pid",
            )
        )
        os.killpg(pid, 0)
        c.delete(f"/api/v1/namespaces/{namespace}/pods/k").raise_for_status()
        wait_for(lambda: group_gone(pid), timeout=15, what="process group gone")


def test_restart_on_failure(runtime: RuntimeHandle, namespace: str, tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    code = f"import os, sys, pathlib; p = pathlib.Path({str(marker)!r}); first = not p.exists(); p.write_text('x'); print('first' if first else 'second'); sys.exit(1 if first else 0)"
    with runtime.http() as c:
        c.post(
            f"/api/v1/namespaces/{namespace}/pods", json=python_pod("r", code, restart="OnFailure")
        ).raise_for_status()
        wait_for(lambda: _phase(c, namespace, "r") == "Succeeded", timeout=20)
        cs = _pod(c, namespace, "r")["status"]["containerStatuses"][0]
        assert cs["restartCount"] == 1 and cs["lastState"]["terminated"]["exitCode"] == 1
        assert c.get(f"/api/v1/namespaces/{namespace}/pods/r/log").text == "second\n"
        assert (
            c.get(f"/api/v1/namespaces/{namespace}/pods/r/log", params={"previous": "true"}).text == "first\n"
        )


def test_batch_job_completions_and_backoff(runtime: RuntimeHandle, namespace: str) -> None:
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"

    def job(name: str, code: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                **spec,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "c", "image": "python:3.11", "command": ["python", "-c", code]}
                        ],
                    }
                },
            },
        }

    def cond(name: str) -> list[str]:
        return [
            x["type"]
            for x in c.get(f"{jobs}/{name}").json().get("status", {}).get("conditions", [])
            if x["status"] == "True"
        ]

    with runtime.http() as c:
        created = c.post(jobs, json=job("ok", "print('done')", completions=2, parallelism=2))
        assert created.status_code == 201, created.text
        uid = created.json()["metadata"]["uid"]
        c.post(jobs, json=job("bad", "raise SystemExit(2)", backoffLimit=1)).raise_for_status()
        wait_for(lambda: "Complete" in cond("ok"), timeout=30)
        wait_for(lambda: "Failed" in cond("bad"), timeout=30)
        ok = c.get(f"{jobs}/ok").json()
        assert ok["status"]["succeeded"] == 2 and ok["status"]["completionTime"]
        pods = c.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": "job-name=ok"}).json()[
            "items"
        ]
        assert len(pods) == 2 and all(p["metadata"]["labels"]["controller-uid"] == uid for p in pods)
        bad = c.get(f"{jobs}/bad").json()
        failed = next(x for x in bad["status"]["conditions"] if x["type"] == "Failed")
        assert failed["reason"] == "BackoffLimitExceeded" and bad["status"]["failed"] == 2
        # Deleting the job cascades to its pods.
        c.delete(f"{jobs}/ok", params={"propagationPolicy": "Foreground"}).raise_for_status()
        assert (
            c.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": "job-name=ok"}).json()[
                "items"
            ]
            == []
        )
        bad_spec = job("norestart", "print(1)")
        bad_spec["spec"]["template"]["spec"]["restartPolicy"] = "Always"
        r = c.post(jobs, json=bad_spec)
        assert (
            r.status_code == 422
            and r.json()["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
        )


def test_batch_job_active_deadline(runtime: RuntimeHandle, namespace: str) -> None:
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "slow"},
        "spec": {
            "activeDeadlineSeconds": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "c",
                            "image": "python:3.11",
                            "command": ["python", "-c", "import time; time.sleep(120)"],
                        }
                    ],
                }
            },
        },
    }
    with runtime.http() as c:
        c.post(jobs, json=body).raise_for_status()

        def failed() -> dict[str, Any] | None:
            conds = c.get(f"{jobs}/slow").json().get("status", {}).get("conditions", [])
            return next((x for x in conds if x["type"] == "Failed"), None)

        cond = wait_for(failed, timeout=30)
        assert cond["reason"] == "DeadlineExceeded"
        wait_for(lambda: c.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"] == [], timeout=20)
