"""Unit tests of the pure KServe pieces: predictor plans, revision pods, traffic and status."""

from __future__ import annotations

from typing import Any

import pytest

from kubeflow_bridge.local.kserve import predictor, status
from kubeflow_bridge.local.kserve.proxy import TrafficProxy
from kubeflow_bridge.local.kserve.status import Revision


def _isvc(
    predictor_spec: dict[str, Any], generation: int = 1, old_status: dict[str, Any] | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "vae", "namespace": "team", "generation": generation, "uid": "u"},
        "spec": {"predictor": predictor_spec},
    }
    if old_status is not None:
        obj["status"] = old_status
    return obj


CUSTOM = {
    "containers": [
        {"name": "kserve-container", "image": "python:3.11", "args": ["serve.py", "--port", "8080"]}
    ]
}


def test_plans_custom_and_model_format_and_rejects_others() -> None:
    plan = predictor.plan_predictor(_isvc(CUSTOM))
    assert plan.container["image"] == "python:3.11"
    assert plan.runtime == "custom"
    vae = predictor.plan_predictor(
        _isvc({"model": {"modelFormat": {"name": "kubeflow-bridge-vae"}, "storageUri": "s3://models/vae"}})
    )
    assert vae.container["command"] == ["python", "-m", "trainer", "serve"]
    assert vae.container["args"][:2] == ["--model", "s3://models/vae"]
    assert vae.model_name == "vae"
    sklearn = predictor.plan_predictor(
        _isvc({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://m"}})
    )
    assert sklearn.runtime == "kserve-sklearnserver" and "--model_dir" in sklearn.container["args"]
    with pytest.raises(predictor.UnsupportedPredictor, match=r"unsupported model format 'tensorflow'"):
        predictor.plan_predictor(_isvc({"tensorflow": {"storageUri": "gs://x"}}))  # converted, then refused
    assert predictor.convert_legacy_predictor(
        {"sklearn": {"storageUri": "s3://m", "protocolVersion": "v2"}}
    ) == {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://m", "protocolVersion": "v2"}}
    # canaryTrafficPercent alone makes no new revision; a spec change does
    assert predictor.predictor_spec_hash(
        _isvc({**CUSTOM, "canaryTrafficPercent": 10})
    ) == predictor.predictor_spec_hash(_isvc(CUSTOM))
    changed = {"containers": [{**CUSTOM["containers"][0], "env": [{"name": "V", "value": "2"}]}]}  # type: ignore[dict-item]
    assert predictor.predictor_spec_hash(_isvc(changed)) != predictor.predictor_spec_hash(_isvc(CUSTOM))


def test_revision_pod_rewrites_port_and_labels() -> None:
    plan = predictor.plan_predictor(
        _isvc(
            {
                "containers": [
                    {"name": "c", "image": "x", "command": ["run", "--http_port=8080", "--x=$(PORT)"]}
                ]
            }
        )
    )
    pod = predictor.revision_pod(_isvc(CUSTOM), plan, 3, 41234)
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["run", "--http_port=41234", "--x=41234"]
    assert {"name": "PORT", "value": "41234"} in container["env"]
    assert pod["metadata"]["name"] == "vae-predictor-00003-deployment"
    assert pod["metadata"]["labels"]["serving.knative.dev/revision"] == "vae-predictor-00003"
    assert pod["metadata"]["annotations"]["kubeflow-bridge.io/port"] == "41234"
    assert predictor.with_port(CUSTOM["containers"][0], 9)["args"] == ["serve.py", "--port", "9"]  # type: ignore[arg-type]


def _rev(n: int, state: str = "ready", port: int | None = None, message: str = "") -> Revision:
    return Revision(
        f"vae-predictor-{n:05d}",
        n,
        state,
        port or 9000 + n,
        "RevisionFailed" if state == "failed" else "",
        message,
    )


def test_first_revision_ready_status_shape() -> None:
    out = status.compute_status(_isvc(CUSTOM), [_rev(1)], proxy_url="http://127.0.0.1:5000", now="T1")
    st = out.status
    assert [c["type"] for c in st["conditions"]] == [
        "IngressReady",
        "PredictorConfigurationReady",
        "PredictorReady",
        "PredictorRouteReady",
        "Ready",
    ]
    assert all(c["status"] == "True" for c in st["conditions"])
    assert st["conditions"][1]["severity"] == "Info" and "severity" not in st["conditions"][2]
    pred = st["components"]["predictor"]
    assert (
        pred["latestCreatedRevision"]
        == pred["latestReadyRevision"]
        == pred["latestRolledoutRevision"]
        == "vae-predictor-00001"
    )
    assert "previousRolledoutRevision" not in pred
    assert pred["traffic"] == [
        {"latestRevision": True, "percent": 100, "revisionName": "vae-predictor-00001"}
    ]
    assert st["url"] == "http://127.0.0.1:5000"
    assert st["address"] == {"url": "http://vae.team.svc.cluster.local"}
    assert st["observedGeneration"] == 1
    assert st["modelStatus"]["transitionStatus"] == "UpToDate"
    assert out.routes == [("vae-predictor-00001", 9001, 100)]


def test_canary_split_promotion_and_pin_to_previous() -> None:
    first = status.compute_status(_isvc(CUSTOM), [_rev(1)], proxy_url="u", now="T1").status
    canary = _isvc({**CUSTOM, "canaryTrafficPercent": 20}, generation=2, old_status=first)
    # the canary revision is still starting: traffic stays, Ready Unknown at generation 2
    starting = status.compute_status(canary, [_rev(1), _rev(2, "pending")], proxy_url="u", now="T2")
    assert starting.status["components"]["predictor"]["traffic"] == [
        {"latestRevision": False, "percent": 100, "revisionName": "vae-predictor-00001"}
    ]
    assert starting.status["conditions"][-1]["status"] == "Unknown"
    assert starting.keep == {"vae-predictor-00001", "vae-predictor-00002"}
    from kubeflow_bridge.clients.kube.status import classify

    assert classify("InferenceService", {**canary, "status": starting.status}, min_generation=2) is None
    split = status.compute_status(canary, [_rev(1), _rev(2)], proxy_url="u", now="T3")
    pred = split.status["components"]["predictor"]
    assert pred["traffic"] == [
        {"latestRevision": True, "percent": 20, "revisionName": "vae-predictor-00002"},
        {"latestRevision": False, "percent": 80, "revisionName": "vae-predictor-00001", "tag": "prev"},
    ]
    assert pred["latestRolledoutRevision"] == "vae-predictor-00001"
    assert pred["latestReadyRevision"] == "vae-predictor-00002"
    assert split.routes == [("vae-predictor-00002", 9002, 20), ("vae-predictor-00001", 9001, 80)]
    assert split.status["conditions"][-1]["status"] == "True"
    verdict = classify("InferenceService", {**canary, "status": split.status}, min_generation=2)
    assert verdict is not None and verdict.state == "succeeded"
    # canary 0 pins everything to the previous revision
    pinned = _isvc({**CUSTOM, "canaryTrafficPercent": 0}, generation=3, old_status=split.status)
    pin = status.compute_status(pinned, [_rev(1), _rev(2)], proxy_url="u", now="T4")
    assert pin.routes == [("vae-predictor-00001", 9001, 100)]
    # removing the field promotes: latest 100%, rolled out, previous recorded, old pod not kept
    promoted = _isvc(CUSTOM, generation=4, old_status=pin.status)
    promo = status.compute_status(promoted, [_rev(1), _rev(2)], proxy_url="u", now="T5")
    pred = promo.status["components"]["predictor"]
    assert pred["traffic"] == [
        {"latestRevision": True, "percent": 100, "revisionName": "vae-predictor-00002"}
    ]
    assert pred["latestRolledoutRevision"] == "vae-predictor-00002"
    assert pred["previousRolledoutRevision"] == "vae-predictor-00001"
    assert promo.keep == {"vae-predictor-00002"}
    assert promo.status["observedGeneration"] == 4


def test_failed_canary_keeps_previous_serving() -> None:
    first = status.compute_status(_isvc(CUSTOM), [_rev(1)], proxy_url="u", now="T1").status
    bad = _isvc({**CUSTOM, "canaryTrafficPercent": 30}, generation=2, old_status=first)
    out = status.compute_status(
        bad, [_rev(1), _rev(2, "failed", message="model failed to load")], proxy_url="u", now="T2"
    )
    st = out.status
    assert out.routes == [("vae-predictor-00001", 9001, 100)]
    ready = st["conditions"][-1]
    assert ready["status"] == "False" and ready["reason"] == "RevisionFailed"
    assert "model failed to load" in ready["message"]
    assert st["observedGeneration"] == 2
    assert st["components"]["predictor"]["latestRolledoutRevision"] == "vae-predictor-00001"
    assert st["components"]["predictor"]["latestCreatedRevision"] == "vae-predictor-00002"
    assert st["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    assert st["conditions"][0]["lastTransitionTime"] == "T1"  # IngressReady did not change
    from kubeflow_bridge.clients.kube.status import classify

    verdict = classify("InferenceService", {**bad, "status": st}, min_generation=2)
    assert verdict is not None and verdict.state == "failed" and "model failed to load" in verdict.message


def test_unsupported_format_status() -> None:
    out = status.compute_status(
        _isvc({}), [], proxy_url="u", now="T", invalid="unsupported model format 'sklearn'"
    )
    ready = out.status["conditions"][-1]
    assert (ready["status"], ready["reason"]) == ("False", "NoSupportingRuntime")
    assert out.status["modelStatus"]["transitionStatus"] == "InvalidSpec"
    assert out.status["modelStatus"]["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
    # the bridge's own classifier reads it as a failure with the reason
    from kubeflow_bridge.clients.kube.status import classify

    verdict = classify("InferenceService", {**_isvc({}), "status": out.status})
    assert verdict is not None and verdict.state == "failed" and "sklearn" in verdict.message
    assert "url" not in out.status and out.routes == []


def test_proxy_pick_follows_weights() -> None:
    proxy = TrafficProxy()
    proxy.set_routes([("a", 1, 20), ("b", 2, 80)])
    picks = [proxy.pick() for _ in range(2000)]
    share = sum(1 for p in picks if p == ("a", 1)) / len(picks)
    assert 0.15 < share < 0.25
    proxy.set_routes([("a", 1, 0), ("b", 2, 100)])
    assert {proxy.pick() for _ in range(50)} == {("b", 2)}
    proxy.set_routes([])
    assert proxy.pick() is None


def test_tag_routing_annotation_tags_the_canary_latest() -> None:
    first = status.compute_status(_isvc(CUSTOM), [_rev(1)], proxy_url="u", now="T1").status
    canary = _isvc({**CUSTOM, "canaryTrafficPercent": 10}, generation=2, old_status=first)
    canary["metadata"]["annotations"] = {"serving.kserve.io/enable-tag-routing": "true"}
    traffic = status.compute_status(canary, [_rev(1), _rev(2)], proxy_url="u", now="T2").status["components"][
        "predictor"
    ]["traffic"]
    assert [(t["revisionName"], t["percent"], t.get("tag")) for t in traffic] == [
        ("vae-predictor-00002", 10, "latest"),
        ("vae-predictor-00001", 90, "prev"),
    ]
