"""The Kubernetes API surface over raw HTTP: discovery, CRUD, patches, metadata semantics, bad input."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import RuntimeHandle

PJ = "/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs"


def pytorchjob(name: str, workers: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    def replica(n: int) -> dict[str, Any]:
        return {
            "replicas": n,
            "restartPolicy": "Never",
            "template": {
                "spec": {
                    "containers": [
                        {"name": "pytorch", "image": "python:3.11", "command": ["python", "-c", "pass"]}
                    ]
                }
            },
        }

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "labels": labels or {}},
        # Suspended: these tests are about the API, not the controller's pods.
        "spec": {
            "runPolicy": {"suspend": True},
            "pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(workers)},
        },
    }


def test_discovery(runtime: RuntimeHandle) -> None:
    with runtime.http() as c:
        assert c.get("/version").json()["major"] == "1"
        assert c.get("/api").json()["versions"] == ["v1"]
        groups = {g["name"]: g for g in c.get("/apis").json()["groups"]}
        assert groups["kubeflow.org"]["preferredVersion"]["version"] == "v1"
        assert {v["version"] for v in groups["kubeflow.org"]["versions"]} == {"v1", "v1beta1"}
        assert "serving.kserve.io" in groups and "batch" in groups
        res = {r["name"]: r for r in c.get("/apis/kubeflow.org/v1").json()["resources"]}
        assert res["pytorchjobs"]["kind"] == "PyTorchJob" and res["pytorchjobs"]["namespaced"] is True
        assert "watch" in res["pytorchjobs"]["verbs"] and "pytorchjobs/status" in res
        core = {r["name"]: r for r in c.get("/api/v1").json()["resources"]}
        assert core["pods"]["shortNames"] == ["po"] and "pods/log" in core
        assert core["namespaces"]["namespaced"] is False
        isvc = {r["name"]: r for r in c.get("/apis/serving.kserve.io/v1beta1").json()["resources"]}
        assert isvc["inferenceservices"]["shortNames"] == ["isvc"]
        assert c.get("/apis/nope.io/v1").status_code == 404


def test_default_namespaces_exist(runtime: RuntimeHandle) -> None:
    with runtime.http() as c:
        names = {n["metadata"]["name"] for n in c.get("/api/v1/namespaces").json()["items"]}
    assert {"default", "kubeflow-user"} <= names


def test_create_get_list_metadata(runtime: RuntimeHandle, namespace: str) -> None:
    url = PJ.format(ns=namespace)
    with runtime.http() as c:
        r = c.post(url, json=pytorchjob("a", labels={"team": "x"}))
        assert r.status_code == 201, r.text
        obj = r.json()
        meta = obj["metadata"]
        assert meta["uid"] and meta["generation"] == 1 and meta["creationTimestamp"].endswith("Z")
        assert meta["namespace"] == namespace and int(meta["resourceVersion"]) > 0
        # Stored as submitted: the v1.9 operator has no mutating webhook (it defaults in memory).
        assert obj["spec"] == pytorchjob("a")["spec"]
        dup = c.post(url, json=pytorchjob("a"))
        assert dup.status_code == 409 and dup.json()["reason"] == "AlreadyExists"
        gen = c.post(url, json={**pytorchjob(""), "metadata": {"generateName": "gen-"}})
        assert gen.status_code == 201 and gen.json()["metadata"]["name"].startswith("gen-")
        c.post(url, json=pytorchjob("b", labels={"team": "y"})).raise_for_status()
        assert c.get(f"{url}/a").json()["metadata"]["uid"] == meta["uid"]
        missing = c.get(f"{url}/zzz")
        assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
        assert missing.json()["kind"] == "Status" and missing.json()["details"]["name"] == "zzz"
        sel = c.get(url, params={"labelSelector": "team=x"}).json()
        assert [o["metadata"]["name"] for o in sel["items"]] == ["a"]
        assert sel["kind"] == "PyTorchJobList"
        notin = c.get(url, params={"labelSelector": "team notin (x),team"}).json()
        assert [o["metadata"]["name"] for o in notin["items"]] == ["b"]
        fs = c.get(url, params={"fieldSelector": "metadata.name=b"}).json()
        assert [o["metadata"]["name"] for o in fs["items"]] == ["b"]
        # Paging.
        page1 = c.get(url, params={"limit": 2}).json()
        assert len(page1["items"]) == 2 and page1["metadata"]["continue"]
        page2 = c.get(url, params={"limit": 2, "continue": page1["metadata"]["continue"]}).json()
        names = [o["metadata"]["name"] for o in page1["items"] + page2["items"]]
        assert len(names) == 3 and len(set(names)) == 3 and not page2["metadata"].get("continue")
        assert page1["metadata"]["remainingItemCount"] == 1
        # A page with a selector: Kubernetes leaves remainingItemCount unset (the count is unknown).
        sel1 = c.get(url, params={"limit": 1, "labelSelector": "team"}).json()
        assert [o["metadata"]["name"] for o in sel1["items"]] == ["a"] and sel1["metadata"]["continue"]
        assert "remainingItemCount" not in sel1["metadata"]
        sel2 = c.get(
            url, params={"limit": 1, "labelSelector": "team", "continue": sel1["metadata"]["continue"]}
        )
        assert [o["metadata"]["name"] for o in sel2.json()["items"]] == ["b"]
        assert not sel2.json()["metadata"].get("continue")  # nothing matches after it
        assert c.get(url, params={"limit": 1, "continue": "bad"}).status_code == 400
        # All namespaces.
        every = c.get("/apis/kubeflow.org/v1/pytorchjobs").json()["items"]
        assert {o["metadata"]["name"] for o in every if o["metadata"]["namespace"] == namespace} == set(names)


def test_update_patch_generation_and_conflict(runtime: RuntimeHandle, namespace: str) -> None:
    url = PJ.format(ns=namespace)
    with runtime.http() as c:
        obj = c.post(url, json=pytorchjob("p")).json()
        rv0 = obj["metadata"]["resourceVersion"]
        # Label change: no generation bump.
        r = c.patch(
            f"{url}/p",
            json={"metadata": {"labels": {"a": "b"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["metadata"]["generation"] == 1 and r.json()["metadata"]["labels"] == {"a": "b"}
        # Spec change: bump.
        r = c.patch(
            f"{url}/p",
            json=[{"op": "replace", "path": "/spec/pytorchReplicaSpecs/Worker/replicas", "value": 3}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["metadata"]["generation"] == 2
        assert r.json()["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 3
        # Stale resourceVersion on replace -> 409 Conflict, nothing changed.
        stale = dict(obj)
        stale["metadata"] = dict(obj["metadata"], resourceVersion=rv0, labels={"stale": "1"})
        r = c.put(f"{url}/p", json=stale)
        assert r.status_code == 409 and r.json()["reason"] == "Conflict"
        assert c.get(f"{url}/p").json()["metadata"]["labels"] == {"a": "b"}
        # Status subresource: status changes, spec ignored, generation unchanged.
        cur = c.get(f"{url}/p").json()
        cur["status"] = {"conditions": [{"type": "Created", "status": "True"}]}
        cur["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = 9
        r = c.put(f"{url}/p/status", json=cur)
        assert r.status_code == 200, r.text
        got = c.get(f"{url}/p").json()
        assert got["status"]["conditions"][0]["type"] == "Created"
        assert (
            got["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 3
            and got["metadata"]["generation"] == 2
        )
        # Main-resource writes keep status.
        r = c.patch(
            f"{url}/p", json={"status": {"x": 1}}, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert "x" not in r.json()["status"]
        # Strategic merge patch is refused for custom resources, as by the real server.
        r = c.patch(
            f"{url}/p",
            json={"metadata": {"annotations": {"k": "v"}}},
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert r.status_code == 415 and "annotations" not in c.get(f"{url}/p").json()["metadata"]


def test_bad_input_nothing_stored(runtime: RuntimeHandle, namespace: str) -> None:
    url = PJ.format(ns=namespace)
    with runtime.http() as c:
        r = c.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
        r = c.post(url, content=b"a: [unclosed", headers={"Content-Type": "application/yaml"})
        assert r.status_code == 400 and "YAML" in r.json()["message"]
        r = c.post(f"/apis/kubeflow.org/v9/namespaces/{namespace}/pytorchjobs", json=pytorchjob("x"))
        assert r.status_code == 404
        r = c.post(f"/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs", json=pytorchjob("x"))
        assert r.status_code == 404  # a kind the runtime does not serve
        r = c.post(f"/apis/kubeflow.org/v1/namespaces/{namespace}/tfjobs", json=pytorchjob("x"))
        assert r.status_code == 400  # a PyTorchJob body at the TFJob collection
        r = c.post(url, json={**pytorchjob("x"), "kind": "TFJob"})
        assert r.status_code == 400
        r = c.post(url, json=pytorchjob("Bad_Name"))
        assert r.status_code == 422 and r.json()["reason"] == "Invalid"
        assert r.json()["details"]["causes"][0]["field"] == "metadata.name"
        wrong = pytorchjob("wrong")
        wrong["metadata"]["labels"] = {"a": 1}
        r = c.post(url, json=wrong)
        assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "metadata.labels.a"
        wrong = pytorchjob("wrong2")
        wrong["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = "two"
        r = c.post(url, json=wrong)
        assert r.status_code == 422, r.text
        zero = pytorchjob("zero", workers=0)
        r = c.post(url, json=zero)  # the training operator's webhook denies it (the API server relays 403)
        assert r.status_code == 403, r.text
        assert (
            'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied'
            in r.json()["message"]
        )
        assert "Worker" in r.json()["message"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "command": "python"}]},
        }
        r = c.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
        assert r.status_code == 422
        fields = {cause["field"] for cause in r.json()["details"]["causes"]}
        assert {"spec.containers[0].image", "spec.containers[0].command"} <= fields
        pod["spec"]["containers"][0] = {"name": "c", "image": "python:3.11"}
        r = c.post("/api/v1/namespaces/no-such-ns/pods", json=pod)
        assert r.status_code == 404
        assert c.get(url).json()["items"] == []
        assert c.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"] == []
        r = c.patch(f"{url}/nothere", json={}, headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 404
        r = c.request("PATCH", url, json={})
        assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"


def test_cascading_delete_and_orphan(runtime: RuntimeHandle, namespace: str) -> None:
    cm = f"/api/v1/namespaces/{namespace}/configmaps"
    with runtime.http() as c:
        owner = c.post(cm, json={"metadata": {"name": "owner"}, "data": {}}).json()
        ref = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
        c.post(cm, json={"metadata": {"name": "child", "ownerReferences": [ref]}}).raise_for_status()
        r = c.request("DELETE", f"{cm}/owner", json={"propagationPolicy": "Foreground"})
        assert r.status_code == 200
        assert c.get(f"{cm}/child").status_code == 404
        owner = c.post(cm, json={"metadata": {"name": "owner2"}}).json()
        ref = dict(ref, name="owner2", uid=owner["metadata"]["uid"])
        c.post(cm, json={"metadata": {"name": "child2", "ownerReferences": [ref]}}).raise_for_status()
        c.delete(f"{cm}/owner2", params={"propagationPolicy": "Orphan"}).raise_for_status()
        kept = c.get(f"{cm}/child2")
        assert kept.status_code == 200 and "ownerReferences" not in kept.json()["metadata"]
        r = c.delete(f"{cm}/child2", params={"propagationPolicy": "Sideways"})
        assert r.status_code == 400


def test_finalizers_and_deletion_timestamp(runtime: RuntimeHandle, namespace: str) -> None:
    cm = f"/api/v1/namespaces/{namespace}/configmaps"
    with runtime.http() as c:
        c.post(cm, json={"metadata": {"name": "f", "finalizers": ["example.com/keep"]}}).raise_for_status()
        r = c.delete(f"{cm}/f")
        assert r.status_code == 202
        obj = c.get(f"{cm}/f").json()
        assert obj["metadata"]["deletionTimestamp"]
        c.patch(
            f"{cm}/f",
            json={"metadata": {"finalizers": None}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
        assert c.get(f"{cm}/f").status_code == 404


def test_openapi_v3_for_kubectl(runtime: RuntimeHandle) -> None:
    with runtime.http() as c:
        idx = c.get("/openapi/v3").json()["paths"]
        doc = c.get(idx["apis/kubeflow.org/v1"]["serverRelativeURL"]).json()
        patch = doc["paths"]["/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs/{name}"]["patch"]
        assert patch["x-kubernetes-group-version-kind"]["kind"] == "PyTorchJob"
        assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
        assert c.get("/openapi/v2").status_code == 404


def test_table_printing(runtime: RuntimeHandle, namespace: str) -> None:
    with runtime.http() as c:
        c.post(PJ.format(ns=namespace), json=pytorchjob("t")).raise_for_status()
        r = c.get(PJ.format(ns=namespace), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
        body = r.json()
        assert body["kind"] == "Table"
        assert [col["name"] for col in body["columnDefinitions"]] == ["Name", "State", "Age"]
        assert body["rows"][0]["cells"][0] == "t"


def test_unreachable_path_is_404(runtime: RuntimeHandle) -> None:
    assert httpx.get(f"{runtime.api}/nope").status_code == 404


def test_delete_collection_by_label(runtime: RuntimeHandle, namespace: str) -> None:
    cm = f"/api/v1/namespaces/{namespace}/configmaps"
    with runtime.http() as c:
        for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
            c.post(cm, json={"metadata": {"name": name, "labels": {"team": team}}}).raise_for_status()
        r = c.delete(cm, params={"labelSelector": "team=x"})
        assert r.status_code == 200 and {o["metadata"]["name"] for o in r.json()["items"]} == {"a", "b"}
        assert [o["metadata"]["name"] for o in c.get(cm).json()["items"]] == ["c"]


def test_names_a_real_api_server_refuses_store_nothing(runtime: RuntimeHandle, namespace: str) -> None:
    """Label keys and values, container names and images as the API server validates them (422)."""
    pods = f"/api/v1/namespaces/{namespace}/pods"

    def pod(name: str, container: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [container]},
        }

    good = {"name": "main", "image": "busybox"}
    cases = [
        (pod("a", good, {"bad key!": "x"}), "metadata.labels"),
        (pod("b", good, {"team": "has space"}), "metadata.labels"),
        (pod("c", good, {"-lead": "x"}), "metadata.labels"),
        (pod("d", good, {"Bad_Prefix/x": "y"}), "metadata.labels"),
        (pod("e", good, {"k": "v" * 64}), "metadata.labels"),
        (pod("f", {"name": "Bad_Container", "image": "busybox"}), "spec.containers[0].name"),
        (pod("g", {"name": "../../x", "image": "busybox"}), "spec.containers[0].name"),
        (pod("h", {"name": "a" * 64, "image": "busybox"}), "spec.containers[0].name"),
        (pod("i", {"name": "main", "image": " busybox"}), "spec.containers[0].image"),
    ]
    with runtime.http() as c:
        for body, field in cases:
            r = c.post(pods, json=body)
            assert r.status_code == 422, (body, r.text)
            assert field in {cause["field"] for cause in r.json()["details"]["causes"]}, r.text
        annotated = pod("j", good)
        annotated["metadata"]["annotations"] = {"not a key": "fine value"}
        assert c.post(pods, json=annotated).status_code == 422
        assert c.get(pods).json()["items"] == []
        # Valid names with prefixes and dots pass.
        ok = pod("k", good, {"example.com/team": "a.b_c-1", "empty": ""})
        assert c.post(pods, json=ok).status_code == 201
