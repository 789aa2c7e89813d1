"""InferenceServices against the real local runtime: revisions as pods, the canary proxy, KServeClient.

The rollout tests use a tiny model server (image ``python:3.11``) that answers KServe's health endpoint
and reports which revision served a request, so ~100 requests show the traffic split quickly.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"

FAKE_SERVER = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port = int(sys.argv[sys.argv.index("--port") + 1])
if os.environ.get("FAIL_LOAD"):
    print("RuntimeError: failed to load model from /mnt/models: no such file", flush=True)
    sys.exit(1)
class Handler(BaseHTTPRequestHandler):
    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send(200, {"ready": True}) if self.path == "/v2/health/ready" else self._send(404, {"error": "nope"})
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self._send(200, {"version": os.environ["MODEL_VERSION"], "revision": os.environ["K_REVISION"], "n": len(body)})
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def _container(version: str, *, image: str = "python:3.11", fail: bool = False) -> dict[str, Any]:
    env = [{"name": "MODEL_VERSION", "value": version}]
    if fail:
        env.append({"name": "FAIL_LOAD", "value": "1"})
    return {
        "name": "kserve-container",
        "image": image,
        "command": ["python", "-c", FAKE_SERVER, "--port", "8080"],
        "env": env,
    }


def _isvc(name: str, version: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"containers": [_container(version)]}},
    }


def _custom(kube: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(kube)


def _wait_generation(
    custom: Any, ns: str, name: str, generation: int, ready: str, timeout: float = 60, reason: str = ""
) -> dict[str, Any]:
    """Wait until status is at ``generation`` with Ready == ``ready`` ("True"/"False") (and `reason`)."""
    deadline = time.monotonic() + timeout
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        st = obj.get("status") or {}
        cond = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), None)
        if (
            st.get("observedGeneration", 0) >= generation
            and cond is not None
            and cond["status"] == ready
            and cond.get("reason", "").startswith(reason)
        ):
            return obj
        time.sleep(0.3)
    raise AssertionError(f"{name} not Ready={ready} at generation {generation}: {obj.get('status')}")


def _versions(url: str, n: int = 100) -> dict[str, int]:
    counts: dict[str, int] = {}
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            r = client.post(f"{url}/v1/models/m:predict", json={"instances": [[1, 2]]})
            assert r.status_code == 200, r.text
            body = r.json()
            assert r.headers["x-kserve-revision"] == body["revision"]
            counts[body["version"]] = counts.get(body["version"], 0) + 1
    return counts


def test_canary_rollout_rollback_promotion_and_failed_canary(kube: Any, namespace: str) -> None:
    custom = _custom(kube)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _isvc("fake"))
    obj = _wait_generation(custom, namespace, "fake", 1, "True")
    st = obj["status"]
    assert [c["type"] for c in st["conditions"]] == [
        "IngressReady",
        "PredictorConfigurationReady",
        "PredictorReady",
        "PredictorRouteReady",
        "Ready",
    ]
    pred = st["components"]["predictor"]
    assert (
        pred["latestCreatedRevision"]
        == pred["latestReadyRevision"]
        == pred["latestRolledoutRevision"]
        == "fake-predictor-00001"
    )
    assert pred["traffic"] == [
        {"latestRevision": True, "percent": 100, "revisionName": "fake-predictor-00001"}
    ]
    assert st["url"].startswith("http://127.0.0.1:")
    assert st["address"]["url"] == f"http://fake.{namespace}.svc.cluster.local"
    assert _versions(st["url"], 20) == {"v1": 20}
    url = st["url"]

    # canary 20%: a new revision takes ~20% of the requests, the rolled-out one the rest
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 20, "containers": [_container("v2")]}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "fake", patch)
    obj = _wait_generation(custom, namespace, "fake", 2, "True")
    pred = obj["status"]["components"]["predictor"]
    assert pred["traffic"] == [
        {"latestRevision": True, "percent": 20, "revisionName": "fake-predictor-00002"},
        {"latestRevision": False, "percent": 80, "revisionName": "fake-predictor-00001", "tag": "prev"},
    ]
    assert pred["latestRolledoutRevision"] == "fake-predictor-00001"
    assert obj["status"]["url"] == url
    counts = _versions(url, 120)
    assert 8 <= counts.get("v2", 0) <= 45, counts

    # canary 0 pins everything to the previous revision (rollback)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "fake", {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
    )
    obj = _wait_generation(custom, namespace, "fake", 3, "True")
    assert (
        obj["status"]["components"]["predictor"]["latestCreatedRevision"] == "fake-predictor-00002"
    )  # no new revision
    assert _versions(url, 30) == {"v1": 30}

    # removing the field promotes the latest revision; the previous revision's pod is stopped
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "fake", {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    )
    obj = _wait_generation(custom, namespace, "fake", 4, "True")
    pred = obj["status"]["components"]["predictor"]
    assert pred["traffic"] == [
        {"latestRevision": True, "percent": 100, "revisionName": "fake-predictor-00002"}
    ]
    assert pred["latestRolledoutRevision"] == "fake-predictor-00002"
    assert pred["previousRolledoutRevision"] == "fake-predictor-00001"
    assert _versions(url, 30) == {"v2": 30}
    from kubernetes import client

    core = client.CoreV1Api(kube)

    def pods() -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod(namespace).items)

    deadline = time.monotonic() + 20
    while pods() != ["fake-predictor-00002-deployment"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert pods() == ["fake-predictor-00002-deployment"]

    # a canary whose model fails to load: Ready False at the new generation, v2 keeps serving
    bad = {"spec": {"predictor": {"canaryTrafficPercent": 50, "containers": [_container("v3", fail=True)]}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "fake", bad)
    obj = _wait_generation(custom, namespace, "fake", 5, "False")
    ready = obj["status"]["conditions"][-1]
    assert ready["reason"] == "RevisionFailed"
    assert "failed to load model" in ready["message"]
    assert obj["status"]["components"]["predictor"]["traffic"] == [
        {"latestRevision": False, "percent": 100, "revisionName": "fake-predictor-00002"}
    ]
    assert obj["status"]["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    assert _versions(url, 30) == {"v2": 30}

    # an unknown image: the same, with the image error as the reason
    unknown = {"spec": {"predictor": {"containers": [_container("v4", image="example.com/nope:1")]}}}
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "fake", unknown)
    obj = _wait_generation(custom, namespace, "fake", 6, "False")
    assert obj["status"]["conditions"][-1]["reason"] in ("ErrImagePull", "ImagePullBackOff", "RevisionFailed")
    assert "example.com/nope:1" in obj["status"]["conditions"][-1]["message"]
    assert _versions(url, 10) == {"v2": 10}


def test_sklearn_served_by_kserve_model_server_legacy_form_converted_others_fail_as_on_a_cluster(
    runtime: Any, kube: Any, namespace: str, tmp_path: Any
) -> None:
    import joblib
    from kserve import (
        KServeClient,
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1PredictorSpec,
        V1beta1SKLearnSpec,
    )
    from kubernetes.client import V1ObjectMeta
    from sklearn.linear_model import LogisticRegression

    x = [[0.0, 0.1], [0.2, 0.0], [1.0, 0.9], [0.8, 1.1]]
    estimator = LogisticRegression().fit(x, [0, 0, 1, 1])
    (tmp_path / "model").mkdir()
    joblib.dump(estimator, tmp_path / "model" / "model.joblib")
    legacy = V1beta1InferenceService(  # as KServe's sklearn example writes it
        api_version=f"{GROUP}/{VERSION}",
        kind="InferenceService",
        metadata=V1ObjectMeta(name="skl", namespace=namespace),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(sklearn=V1beta1SKLearnSpec(storage_uri=str(tmp_path / "model")))
        ),
    )
    kserve_client = KServeClient(config_file=str(runtime.kubeconfig))
    kserve_client.create(legacy, namespace=namespace)
    stored = kserve_client.get("skl", namespace=namespace)
    predictor = stored["spec"]["predictor"]  # as KServe's defaulting webhook stores it
    assert "sklearn" not in predictor and predictor["model"]["modelFormat"] == {"name": "sklearn"}
    assert predictor["model"]["storageUri"] == str(tmp_path / "model")
    kserve_client.wait_isvc_ready("skl", namespace=namespace, timeout_seconds=90, polling_interval=1)
    url = kserve_client.get("skl", namespace=namespace)["status"]["url"]
    rows = [[0.1, 0.0], [0.9, 1.0]]
    answer = httpx.post(f"{url}/v1/models/skl:predict", json={"instances": rows}, timeout=10).json()
    assert answer == {"predictions": [int(v) for v in estimator.predict(rows)]} == {"predictions": [0, 1]}

    custom = _custom(kube)
    for name, fmt in (("xgb", "xgboost"), ("tf", "tensorflow")):
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferenceService",
            "metadata": {"name": name},
            "spec": {
                "predictor": {"model": {"modelFormat": {"name": fmt}, "storageUri": str(tmp_path / "model")}}
            },
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    # xgboost is not in this environment: its runtime's container cannot start, as on a cluster
    xgb = _wait_generation(custom, namespace, "xgb", 1, "False", reason="RevisionFailed")
    assert "No module named 'xgboost'" in xgb["status"]["conditions"][-1]["message"]
    tf = _wait_generation(custom, namespace, "tf", 1, "False")
    ready = tf["status"]["conditions"][-1]
    assert (
        ready["reason"] == "NoSupportingRuntime"
        and "unsupported model format 'tensorflow'" in ready["message"]
    )
    assert tf["status"]["modelStatus"]["transitionStatus"] == "InvalidSpec"


def _sdk_isvc(namespace: str, version: str, canary: int | None = None) -> Any:
    from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1PredictorSpec
    from kubernetes.client import V1Container, V1EnvVar, V1ObjectMeta

    c = _container(version)
    container = V1Container(
        name=c["name"],
        image=c["image"],
        command=c["command"],
        env=[V1EnvVar(name=e["name"], value=e["value"]) for e in c["env"]],
    )
    return V1beta1InferenceService(
        api_version=f"{GROUP}/{VERSION}",
        kind="InferenceService",
        metadata=V1ObjectMeta(name="sdk", namespace=namespace),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(containers=[container], canary_traffic_percent=canary)
        ),
    )


def test_kserve_client_create_get_patch_wait_delete(runtime: Any, namespace: str) -> None:
    from kserve import KServeClient

    kserve_client = KServeClient(config_file=str(runtime.kubeconfig))
    created = kserve_client.create(_sdk_isvc(namespace, "v1"), namespace=namespace)
    assert created["metadata"]["name"] == "sdk"
    kserve_client.wait_isvc_ready("sdk", namespace=namespace, timeout_seconds=60, polling_interval=1)
    got = kserve_client.get("sdk", namespace=namespace)
    assert got["status"]["components"]["predictor"]["latestReadyRevision"] == "sdk-predictor-00001"
    assert kserve_client.is_isvc_ready("sdk", namespace=namespace)
    patched_body = _sdk_isvc(namespace, "v2", canary=30)
    patched = kserve_client.patch("sdk", patched_body, namespace=namespace)
    assert patched["metadata"]["generation"] == 2
    obj = _wait_generation(_custom_from(runtime), namespace, "sdk", 2, "True")
    assert [t["percent"] for t in obj["status"]["components"]["predictor"]["traffic"]] == [30, 70]
    kserve_client.delete("sdk", namespace=namespace)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            kserve_client.get("sdk", namespace=namespace)
        except RuntimeError:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("InferenceService sdk still exists after delete")
    # its proxy is gone with it
    with pytest.raises(httpx.HTTPError):
        httpx.get(obj["status"]["url"] + "/v2/health/ready", timeout=2)


def _custom_from(runtime: Any) -> Any:
    from kubernetes import client, config

    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(runtime.kubeconfig)))


def test_trainer_model_format_serves_the_vae_through_the_proxy(
    kube: Any, namespace: str, tmp_path: Any
) -> None:
    """storageUri + modelFormat kubeflow-bridge-vae runs the trainer's kserve ModelServer (V1 and V2)."""
    import subprocess
    import sys

    trainer = [sys.executable, "-m", "trainer"]
    raw, prep, model = tmp_path / "raw", tmp_path / "prep", tmp_path / "model.pt"
    subprocess.run(
        [*trainer, "ingest", "--out", str(raw), "--rows", "3000", "--seed", "1"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*trainer, "preprocess", "--data", str(raw), "--out", str(prep), "--scheduler", "threads"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*trainer, "train", "--data", str(prep), "--model-out", str(model), "--epochs", "1"],
        check=True,
        capture_output=True,
    )
    from trainer.model import load_artifact

    scaler = load_artifact(str(model), arg="--model")[1]["scaler"]
    width = len(scaler.get("channels") or scaler["features"])
    custom = _custom(kube)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": "vae"},
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "kubeflow-bridge-vae"}, "storageUri": str(model)}}
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    obj = _wait_generation(custom, namespace, "vae", 1, "True", timeout=90)
    assert obj["status"]["servingRuntimeName"] == "kubeflow-bridge-vae"
    url = obj["status"]["url"]
    rows = [[0.5] * width, [50.0] * width]
    v1 = httpx.post(f"{url}/v1/models/vae:predict", json={"instances": rows}, timeout=30)
    assert v1.status_code == 200, v1.text
    predictions = v1.json()["predictions"]
    assert len(predictions) == 2 and all(isinstance(p["score"], float) for p in predictions)
    assert predictions[1]["score"] > predictions[0]["score"]  # far-out rows reconstruct worse
    v2 = httpx.post(
        f"{url}/v2/models/vae/infer",
        json={
            "inputs": [
                {
                    "name": "rows",
                    "shape": [2, width],
                    "datatype": "FP64",
                    "data": [x for r in rows for x in r],
                }
            ]
        },
        timeout=30,
    )
    assert v2.status_code == 200, v2.text
    assert [o["name"] for o in v2.json()["outputs"]] == ["score", "anomaly"]
    assert (
        httpx.post(f"{url}/v1/models/vae:predict", json={"instances": [[1.0]]}, timeout=30).status_code == 400
    )


def _runtime_helpers() -> Any:
    import importlib.util
    import sys
    from pathlib import Path

    name = "local_conftest_helpers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_inference_service_serves_again_after_a_runtime_restart(tmp_path: Any) -> None:
    helpers = _runtime_helpers()
    state = tmp_path / "state"
    rt = helpers.start_runtime(state, "--no-s3")
    try:
        custom = _custom_from(rt)
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _isvc("keep"))
        url = _wait_generation(custom, "default", "keep", 1, "True")["status"]["url"]
        assert _versions(url, 5) == {"v1": 5}
    finally:
        helpers.stop_runtime(rt)  # asserts that no predictor or proxy process is left behind
    rt = helpers.start_runtime(state, "--no-s3")
    try:
        custom = _custom_from(rt)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _versions(url, 5) == {"v1": 5}:
                    break
            except (httpx.HTTPError, AssertionError):
                pass
            time.sleep(0.5)
        obj = _wait_generation(custom, "default", "keep", 1, "True")
        assert obj["status"]["url"] == url  # the proxy took its port back
        assert obj["status"]["components"]["predictor"]["latestCreatedRevision"] == "keep-predictor-00001"
        assert _versions(url, 10) == {"v1": 10}
    finally:
        helpers.stop_runtime(rt)


def test_custom_server_without_kserve_endpoints_is_ready_once_it_listens(kube: Any, namespace: str) -> None:
    """A plain HTTP server (404 on KServe's health paths) is ready as soon as it answers, like Knative's TCP probe."""
    custom = _custom(kube)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": "plain"},
        "spec": {
            "predictor": {
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "python:3.11",
                        "command": ["python", "-m", "http.server", "--bind", "127.0.0.1", "$(PORT)"],
                    }
                ]
            }
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    obj = _wait_generation(custom, namespace, "plain", 1, "True")
    listing = httpx.get(obj["status"]["url"] + "/", timeout=10)
    assert listing.status_code == 200 and "Directory listing" in listing.text
    assert listing.headers["x-kserve-revision"] == "plain-predictor-00001"
