"""kubectl's everyday verbs against the runtime, answered as a real API server answers them:
dry-run on every mutating verb, protobuf bodies (kubectl create namespace|configmap|secret|sa),
auth can-i/whoami, scale, strategic merge patch, logs --timestamps/--since, image entrypoints."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from .conftest import RuntimeHandle, wait_for
from .test_api import PJ, pytorchjob
from .test_kubectl import MANIFEST, kubectl


def _job(runtime: RuntimeHandle, ns: str, name: str = "kc") -> dict:
    with runtime.http() as c:
        r = c.get(f"{PJ.format(ns=ns)}/{name}")
        r.raise_for_status()
        return dict(r.json())


def test_dry_run_changes_nothing_on_any_verb(runtime: RuntimeHandle, namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(MANIFEST.replace("WORKERS", "1").replace("time.sleep(1.5)", "time.sleep(30)"))
    out = kubectl(runtime, namespace, "apply", "-f", str(manifest), "--dry-run=server").stdout
    assert "(server dry run)" in out
    assert "No resources found" in kubectl(runtime, namespace, "get", "pytorchjobs").stderr
    kubectl(runtime, namespace, "apply", "-f", str(manifest))
    before = _job(runtime, namespace)

    changed = tmp_path / "changed.yaml"
    changed.write_text(MANIFEST.replace("WORKERS", "2").replace("time.sleep(1.5)", "time.sleep(30)"))
    assert "replicas: 2" in changed.read_text()
    diff = kubectl(runtime, namespace, "diff", "-f", str(changed), check=False)
    assert diff.returncode == 1 and "+      replicas: 2" in diff.stdout, diff.stderr  # 1: differences found
    kubectl(runtime, namespace, "apply", "-f", str(changed), "--dry-run=server")
    kubectl(runtime, namespace, "scale", "pytorchjob", "kc", "--replicas=5", "--dry-run=server")
    kubectl(runtime, namespace, "label", "pytorchjob", "kc", "team=a", "--dry-run=server")
    kubectl(
        runtime,
        namespace,
        "patch",
        "pytorchjob",
        "kc",
        "--type=merge",
        "-p",
        '{"metadata":{"labels":{"x":"y"}}}',
        "--dry-run=server",
    )
    kubectl(runtime, namespace, "replace", "-f", str(changed), "--dry-run=server")
    assert (
        "(server dry run)"
        in kubectl(runtime, namespace, "delete", "pytorchjob", "kc", "--dry-run=server").stdout
    )
    kubectl(runtime, namespace, "delete", "pods", "--all", "--dry-run=server")
    after = _job(runtime, namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]  # (status moves on)
    assert after["spec"] == before["spec"] and "labels" not in after["metadata"]
    assert "kc-master-0" in kubectl(runtime, namespace, "get", "pods").stdout

    with runtime.http() as c:  # only "All" exists
        r = c.delete(f"{PJ.format(ns=namespace)}/kc", params={"dryRun": "Server"})
        assert r.status_code == 400 and 'supported values: "All"' in r.json()["message"]
    assert _job(runtime, namespace)["metadata"]["uid"] == before["metadata"]["uid"]


def test_create_namespace_configmap_secret_and_serviceaccount(runtime: RuntimeHandle, namespace: str) -> None:
    # kubectl sends these as protobuf (application/vnd.kubernetes.protobuf)
    created = f"{namespace}-x"
    kubectl(runtime, namespace, "create", "namespace", created)
    try:
        kubectl(
            runtime, created, "create", "configmap", "cfg", "--from-literal=mode=fast", "--from-literal=n=3"
        )
        kubectl(runtime, created, "create", "secret", "generic", "creds", "--from-literal=password=hunter2")
        kubectl(runtime, created, "create", "serviceaccount", "bot")
        cfg = json.loads(kubectl(runtime, created, "get", "configmap", "cfg", "-o", "json").stdout)
        assert cfg["data"] == {"mode": "fast", "n": "3"} and "generateName" not in cfg["metadata"]
        secret = kubectl(runtime, created, "get", "secret", "creds", "-o", "jsonpath={.data.password}").stdout
        assert secret == "aHVudGVyMg=="
        assert "bot" in kubectl(runtime, created, "get", "serviceaccounts").stdout
        job = kubectl(
            runtime, created, "create", "job", "j", "--image=busybox", "--", "echo", "hi", check=False
        )
        assert job.returncode != 0 and "send it as JSON or YAML" in job.stderr  # said, not garbled
    finally:
        kubectl(runtime, namespace, "delete", "namespace", created)


def test_auth_can_i_and_whoami(runtime: RuntimeHandle, namespace: str) -> None:
    assert kubectl(runtime, namespace, "auth", "can-i", "create", "pytorchjobs").stdout.strip() == "yes"
    assert (
        kubectl(runtime, namespace, "auth", "can-i", "delete", "pods", "--all-namespaces").stdout.strip()
        == "yes"
    )
    who = kubectl(runtime, namespace, "auth", "whoami", "-o", "json").stdout
    assert json.loads(who)["status"]["userInfo"]["username"] == "kubeflow-bridge-local"
    assert "*.*" in kubectl(runtime, namespace, "auth", "can-i", "--list").stdout
    with runtime.http() as c:  # reviews are answered, never stored or listed
        r = c.get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        assert r.status_code == 405


def test_scale_strategic_merge_and_its_refusal_for_custom_resources(
    runtime: RuntimeHandle, namespace: str
) -> None:
    with runtime.http() as c:
        c.post(PJ.format(ns=namespace), json=pytorchjob("p", workers=1)).raise_for_status()
    kubectl(runtime, namespace, "scale", "pytorchjob", "p", "--replicas=3")
    assert _job(runtime, namespace, "p")["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 3
    with runtime.http() as c:
        scale = c.get(f"{PJ.format(ns=namespace)}/p/scale").json()
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
        bad = c.put(f"{PJ.format(ns=namespace)}/p/scale", json={**scale, "spec": {"replicas": -1}})
        assert bad.status_code == 422

    # custom resources: 415, as the real server answers (kubectl patch defaults to strategic)
    refused = kubectl(
        runtime, namespace, "patch", "pytorchjob", "p", "-p", '{"metadata":{"labels":{"a":"b"}}}', check=False
    )
    assert (
        refused.returncode != 0
        and "strategic-merge-patch+json is not supported by kubeflow.org/v1, Kind=PyTorchJob"
        in refused.stderr
    )

    # built-in kinds: lists merge by their keys
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "smp", "finalizers": ["a/one"]},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11",
                    "command": ["python", "-c", "import time; time.sleep(30)"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                },
            ],
        },
    }
    with runtime.http() as c:
        c.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).raise_for_status()
    patch = {
        "metadata": {"finalizers": ["a/two"]},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "env": [
                        {"name": "B", "value": "3"},
                        {"name": "A", "$patch": "delete"},
                        {"name": "C", "value": "4"},
                    ],
                }
            ]
        },
    }
    kubectl(runtime, namespace, "patch", "pod", "smp", "-p", json.dumps(patch))
    got = json.loads(kubectl(runtime, namespace, "get", "pod", "smp", "-o", "json").stdout)
    assert got["spec"]["containers"][0]["env"] == [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert got["spec"]["containers"][0]["image"] == "python:3.11"  # merged, not replaced
    assert got["metadata"]["finalizers"] == ["a/one", "a/two"]
    with runtime.http() as c:
        c.patch(
            f"/api/v1/namespaces/{namespace}/pods/smp",
            json={"metadata": {"finalizers": None}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()


def test_logs_timestamps_since_and_image_entrypoints(runtime: RuntimeHandle, namespace: str) -> None:
    code = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(1.2)"
    # `kubectl run IMAGE -- ARGS` sets args only: the python image has no entrypoint, so they run as given
    kubectl(
        runtime,
        namespace,
        "run",
        "ticker",
        "--image=python:3.11",
        "--restart=Never",
        "--",
        "python",
        "-c",
        code,
    )
    kubectl(
        runtime, namespace, "run", "box", "--image=busybox", "--restart=Never", "--", "echo", "from the shell"
    )

    def completed(pod: str) -> bool:
        return "Completed" in kubectl(runtime, namespace, "get", "pod", pod).stdout

    wait_for(lambda: completed("ticker") and completed("box"), timeout=30, what="both pods to complete")
    assert kubectl(runtime, namespace, "logs", "box").stdout == "from the shell\n"
    stamped = kubectl(runtime, namespace, "logs", "ticker", "--timestamps").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["line 0", "line 1", "line 2"]
    times = [line.split(" ", 1)[0] for line in stamped]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", t) for t in times), times
    assert times == sorted(times) and times[0] != times[2]
    assert (
        kubectl(runtime, namespace, "logs", "ticker", f"--since-time={times[1]}").stdout == "line 1\nline 2\n"
    )
    time.sleep(1.5)
    assert kubectl(runtime, namespace, "logs", "ticker", "--since=1s").stdout == ""
    assert kubectl(runtime, namespace, "logs", "ticker", "--since=1h", "--tail=1").stdout == "line 2\n"
    with runtime.http() as c:
        r = c.get(f"/api/v1/namespaces/{namespace}/pods/ticker/log", params={"sinceSeconds": "0"})
        assert r.status_code == 400


CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa
  labels: {team: red, tier: web}
data:
  a: "1"
  b: "2"
"""


def test_server_side_apply_owns_removes_and_conflicts(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(CONFIGMAP)
    assert (
        "serverside-applied"
        in kubectl(runtime, namespace, "apply", "--server-side", "-f", str(manifest)).stdout
    )
    manifest.write_text(CONFIGMAP.replace('  b: "2"\n', "").replace("tier: web", "tier: api"))
    kubectl(runtime, namespace, "apply", "--server-side", "-f", str(manifest))
    cm = json.loads(
        kubectl(runtime, namespace, "get", "cm", "ssa", "-o", "json", "--show-managed-fields").stdout
    )
    assert cm["data"] == {"a": "1"}  # b was applied before and no longer is: removed
    assert cm["metadata"]["labels"] == {"team": "red", "tier": "api"}
    (entry,) = cm["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply") and "f:a" in entry["fieldsV1"][
        "f:data"
    ]

    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '9'\n  c: '3'\n")
    refused = kubectl(
        runtime, namespace, "apply", "--server-side", "--field-manager=ops", "-f", str(other), check=False
    )
    assert refused.returncode != 0 and 'conflict with "kubectl": .data.a' in refused.stderr
    assert json.loads(kubectl(runtime, namespace, "get", "cm", "ssa", "-o", "json").stdout)["data"] == {
        "a": "1"
    }
    kubectl(
        runtime,
        namespace,
        "apply",
        "--server-side",
        "--field-manager=ops",
        "--force-conflicts",
        "-f",
        str(other),
    )
    cm = json.loads(
        kubectl(runtime, namespace, "get", "cm", "ssa", "-o", "json", "--show-managed-fields").stdout
    )
    assert cm["data"] == {"a": "9", "c": "3"}
    owners = {e["manager"]: e["fieldsV1"] for e in cm["metadata"]["managedFields"]}
    assert "f:a" in owners["ops"]["f:data"] and "f:a" not in owners["kubectl"].get("f:data", {})

    # custom resources too: create, then re-apply unchanged
    job = tmp_path / "job.yaml"
    job.write_text(MANIFEST.replace("WORKERS", "1"))
    assert (
        "serverside-applied" in kubectl(runtime, namespace, "apply", "--server-side", "-f", str(job)).stdout
    )
    before = _job(runtime, namespace)
    kubectl(runtime, namespace, "apply", "--server-side", "-f", str(job))
    assert _job(runtime, namespace)["metadata"]["generation"] == before["metadata"]["generation"] == 1


def test_unknown_fields_are_refused_as_kubectl_asks(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        MANIFEST.replace("WORKERS", "1").replace(
            "restartPolicy: Never\n      template",
            "restartPolicy: Never\n      replcas: 2\n      template",
            1,
        )
    )
    refused = kubectl(runtime, namespace, "apply", "-f", str(typo), check=False)  # kubectl: --validate=strict
    assert refused.returncode != 0
    assert 'strict decoding error: unknown field "spec.pytorchReplicaSpecs.Master.replcas"' in refused.stderr
    assert "No resources found" in kubectl(runtime, namespace, "get", "pytorchjobs").stderr
    warned = kubectl(runtime, namespace, "apply", "-f", str(typo), "--validate=warn")
    assert (
        'unknown field "spec.pytorchReplicaSpecs.Master.replcas"' in warned.stderr
        and "created" in warned.stdout
    )
    pod = tmp_path / "pod.yaml"
    pod.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n    comand: [sh]\n"
    )
    refused = kubectl(runtime, namespace, "create", "-f", str(pod), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.containers[0].comand"' in refused.stderr


def test_explain_reads_the_served_schemas(runtime: RuntimeHandle, namespace: str) -> None:
    out = kubectl(runtime, namespace, "explain", "pytorchjobs.spec.runPolicy.backoffLimit").stdout
    assert "KIND:       PyTorchJob" in out and "<integer>" in out and "retries" in out
    out = kubectl(runtime, namespace, "explain", "pods.spec.containers").stdout
    assert "image\t<string>" in out and "env\t<[]V1EnvVar>" in out
    assert "predictor" in kubectl(runtime, namespace, "explain", "inferenceservices.spec").stdout
    # a kind without a client model says so instead of failing
    assert "no field schema" in kubectl(runtime, namespace, "explain", "experiments").stdout
