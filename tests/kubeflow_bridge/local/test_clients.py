"""The official clients against the runtime: kubernetes (sync), kubernetes_asyncio, watch semantics."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from .conftest import RuntimeHandle, python_pod, wait_for
from .test_api import pytorchjob


def test_custom_objects_api_crud(kube: Any, namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CustomObjectsApi(kube)
    args = ("kubeflow.org", "v1", namespace, "pytorchjobs")
    created = api.create_namespaced_custom_object(*args, pytorchjob("co"))
    assert created["metadata"]["name"] == "co"
    got = api.get_namespaced_custom_object(*args, "co")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    patched = api.patch_namespaced_custom_object(*args, "co", {"metadata": {"labels": {"x": "1"}}})
    assert patched["metadata"]["labels"] == {"x": "1"}
    api.patch_namespaced_custom_object_status(
        *args, "co", {"status": {"conditions": [{"type": "Created", "status": "True"}]}}
    )
    assert (
        api.get_namespaced_custom_object_status(*args, "co")["status"]["conditions"][0]["type"] == "Created"
    )
    listed = api.list_namespaced_custom_object(*args, label_selector="x=1")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["co"]
    with pytest.raises(ApiException) as e:
        api.create_namespaced_custom_object(*args, pytorchjob("co"))
    assert e.value.status == 409
    api.delete_namespaced_custom_object(*args, "co", propagation_policy="Foreground")
    with pytest.raises(ApiException) as e:
        api.get_namespaced_custom_object(*args, "co")
    assert e.value.status == 404


def test_core_pods_logs_and_watch(kube: Any, namespace: str) -> None:
    from kubernetes import client, watch

    core = client.CoreV1Api(kube)
    start_rv = core.list_namespaced_pod(namespace).metadata.resource_version
    core.create_namespaced_pod(namespace, python_pod("w", "print('line1'); print('line2'); print('line3')"))
    w = watch.Watch()
    phases = []
    for ev in w.stream(core.list_namespaced_pod, namespace, resource_version=start_rv, timeout_seconds=20):
        phases.append((ev["type"], ev["object"].status.phase))
        if ev["object"].status.phase in ("Succeeded", "Failed"):
            w.stop()
    assert phases[0][0] == "ADDED"
    assert phases[-1] == ("MODIFIED", "Succeeded")
    assert any(p == "Running" for _, p in phases)
    pod = core.read_namespaced_pod("w", namespace)
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    assert core.read_namespaced_pod_log("w", namespace) == "line1\nline2\nline3\n"
    assert core.read_namespaced_pod_log("w", namespace, tail_lines=1) == "line3\n"
    assert (
        core.read_namespaced_pod_log("w", namespace, container="main", follow=True) == "line1\nline2\nline3\n"
    )


def test_log_follow_streams_until_exit(runtime: RuntimeHandle, namespace: str) -> None:
    code = "import time\nfor i in range(3):\n    print(f'tick {i}', flush=True); time.sleep(0.4)"
    with runtime.http() as c:
        c.post(f"/api/v1/namespaces/{namespace}/pods", json=python_pod("f", code)).raise_for_status()
        wait_for(
            lambda: (
                c.get(f"/api/v1/namespaces/{namespace}/pods/f").json().get("status", {}).get("phase")
                == "Running"
            )
        )
        t0 = time.monotonic()
        with c.stream("GET", f"/api/v1/namespaces/{namespace}/pods/f/log", params={"follow": "true"}) as r:
            body = b"".join(r.iter_raw()).decode()
        assert body.splitlines() == ["tick 0", "tick 1", "tick 2"]
        assert time.monotonic() - t0 > 0.3  # it streamed while the process ran


def test_watch_resource_version_bookmarks_and_timeout(runtime: RuntimeHandle, namespace: str) -> None:
    cm = f"/api/v1/namespaces/{namespace}/configmaps"
    with runtime.http() as c:
        rv = c.get(cm).json()["metadata"]["resourceVersion"]
        c.post(cm, json={"metadata": {"name": "a"}}).raise_for_status()
        c.post(cm, json={"metadata": {"name": "b", "labels": {"k": "v"}}}).raise_for_status()
        t0 = time.monotonic()
        r = c.get(
            cm,
            params={
                "watch": "true",
                "resourceVersion": rv,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "2",
            },
        )
        elapsed = time.monotonic() - t0
        events = [json.loads(line) for line in r.text.splitlines()]
        adds = [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]
        assert adds == ["a", "b"]
        assert any(e["type"] == "BOOKMARK" for e in events)
        assert 1.5 < elapsed < 10
        # Label-selected watch from "now" gets only matching later changes.
        r = c.get(cm, params={"watch": "1", "labelSelector": "k=v", "timeoutSeconds": "1"})
        initial = [json.loads(line)["object"]["metadata"]["name"] for line in r.text.splitlines()]
        assert initial == ["b"]


def test_watch_too_old_resource_version_gets_410(runtime: RuntimeHandle, namespace: str) -> None:
    cm = f"/api/v1/namespaces/{namespace}/configmaps"
    with runtime.http() as c:
        rv = c.get(cm).json()["metadata"]["resourceVersion"]
        # The session runtime keeps 300 events of history.
        for i in range(160):
            c.post(cm, json={"metadata": {"name": f"x{i}"}}).raise_for_status()
            c.delete(f"{cm}/x{i}").raise_for_status()
        r = c.get(cm, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "5"})
        ev = json.loads(r.text.splitlines()[0])
        assert ev["type"] == "ERROR" and ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"


def test_watch_delivers_concurrent_changes(runtime: RuntimeHandle, namespace: str) -> None:
    cm = f"/api/v1/namespaces/{namespace}/configmaps"
    seen: list[str] = []

    def watcher() -> None:
        with httpx.stream(
            "GET", f"{runtime.api}{cm}", params={"watch": "true", "timeoutSeconds": "10"}, timeout=20
        ) as r:
            for line in r.iter_lines():
                ev = json.loads(line)
                seen.append(f"{ev['type']}:{ev['object']['metadata']['name']}")
                if ev["type"] == "DELETED":
                    return

    t = threading.Thread(target=watcher)
    t.start()
    time.sleep(0.5)
    with runtime.http() as c:
        c.post(cm, json={"metadata": {"name": "live"}}).raise_for_status()
        c.patch(
            f"{cm}/live", json={"data": {"a": "b"}}, headers={"Content-Type": "application/merge-patch+json"}
        ).raise_for_status()
        c.delete(f"{cm}/live").raise_for_status()
    t.join(15)
    assert seen == ["ADDED:live", "MODIFIED:live", "DELETED:live"]


async def test_kubernetes_asyncio(runtime: RuntimeHandle, namespace: str) -> None:
    from kubernetes_asyncio import client, config, watch

    api_client = await config.new_client_from_config(config_file=str(runtime.kubeconfig))
    async with api_client:
        co = client.CustomObjectsApi(api_client)
        args = ("kubeflow.org", "v1", namespace, "pytorchjobs")
        await co.create_namespaced_custom_object(*args, pytorchjob("aio"))
        got = await co.get_namespaced_custom_object(*args, "aio")
        assert got["metadata"]["name"] == "aio"
        core = client.CoreV1Api(api_client)
        await core.create_namespaced_pod(namespace, python_pod("aiop", "print('async hello')"))
        w = watch.Watch()
        final = None
        async with w.stream(
            core.list_namespaced_pod, namespace, field_selector="metadata.name=aiop", timeout_seconds=20
        ) as stream:
            async for ev in stream:
                if ev["object"].status.phase in ("Succeeded", "Failed"):
                    final = ev["object"].status.phase
                    break
        assert final == "Succeeded"
        assert await core.read_namespaced_pod_log("aiop", namespace) == "async hello\n"


def test_watch_selector_transitions(runtime: RuntimeHandle, namespace: str) -> None:
    cm = f"/api/v1/namespaces/{namespace}/configmaps"
    merge = {"Content-Type": "application/merge-patch+json"}
    with runtime.http() as c:
        rv = c.get(cm).json()["metadata"]["resourceVersion"]
        c.post(cm, json={"metadata": {"name": "t", "labels": {"sel": "no"}}}).raise_for_status()
        c.patch(f"{cm}/t", json={"metadata": {"labels": {"sel": "yes"}}}, headers=merge).raise_for_status()
        c.patch(f"{cm}/t", json={"data": {"a": "1"}}, headers=merge).raise_for_status()
        c.patch(f"{cm}/t", json={"metadata": {"labels": {"sel": "no"}}}, headers=merge).raise_for_status()
        r = c.get(
            cm,
            params={
                "watch": "true",
                "resourceVersion": rv,
                "labelSelector": "sel=yes",
                "timeoutSeconds": "1",
            },
        )
        types = [json.loads(line)["type"] for line in r.text.splitlines()]
        assert types == ["ADDED", "MODIFIED", "DELETED"]
