"""Fault injection: 5xx, 429 with Retry-After, dropped connections, cut watches, forced 410, killed pods, auth."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from .conftest import RuntimeHandle, python_pod, wait_for


def test_error_and_throttle_rates(runtime: RuntimeHandle, namespace: str) -> None:
    url = f"{runtime.api}/api/v1/namespaces/{namespace}/configmaps"
    runtime.faults(error_rate=1.0, path_pattern=namespace, seed=1)
    codes = {httpx.get(url).status_code for _ in range(20)}
    assert codes == {500, 503}
    body = httpx.get(url).json()
    assert body["kind"] == "Status" and body["reason"] in ("InternalError", "ServiceUnavailable")
    # Other paths are untouched.
    assert httpx.get(f"{runtime.api}/api/v1/namespaces/default/configmaps").status_code == 200
    runtime.faults(error_rate=0.0, throttle_rate=1.0, retry_after=2)
    r = httpx.get(url)
    assert (
        r.status_code == 429 and r.headers["Retry-After"] == "2" and r.json()["reason"] == "TooManyRequests"
    )
    runtime.faults(throttle_rate=0.5, seed=7)
    codes_list = [httpx.get(url).status_code for _ in range(40)]
    assert 5 < codes_list.count(429) < 35 and codes_list.count(200) > 5
    stats = httpx.get(f"{runtime.api}/_admin/faults").json()
    assert stats["injected"]["throttle"] >= 6 and stats["injected"]["error"] >= 20
    bad = httpx.post(f"{runtime.api}/_admin/faults", json={"no_such": 1})
    assert bad.status_code == 400 and "no_such" in bad.json()["message"]
    # A wrong value is refused whole: before, {"error_rate": "abc"} was stored and every request then failed.
    for setting in (
        {"error_rate": "abc"},
        {"error_rate": 2},
        {"retry_after": -1},
        {"auth": "yes"},
        {"path_pattern": "("},
        {"methods": "GET"},
        {"seed": 1.5, "error_rate": 0.5},
    ):
        bad = httpx.post(f"{runtime.api}/_admin/faults", json=setting)
        assert bad.status_code == 400, (setting, bad.text)
        assert next(iter(setting)) in bad.json()["message"]
    current = httpx.get(f"{runtime.api}/_admin/faults").json()["faults"]
    assert current["error_rate"] == 0.0 and current["throttle_rate"] == 0.5 and current["seed"] == 7


def test_dropped_connections(runtime: RuntimeHandle, namespace: str) -> None:
    runtime.faults(drop_rate=1.0, path_pattern=namespace)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{runtime.api}/api/v1/namespaces/{namespace}/pods")
    runtime.reset_faults()
    assert httpx.get(f"{runtime.api}/api/v1/namespaces/{namespace}/pods").status_code == 200


def test_watch_cut_mid_stream_and_forced_gone(runtime: RuntimeHandle, namespace: str) -> None:
    url = f"{runtime.api}/api/v1/namespaces/{namespace}/configmaps"
    httpx.post(url, json={"metadata": {"name": "a"}}).raise_for_status()
    runtime.faults(watch_cut_after=1.0)
    t0 = time.monotonic()
    lines: list[str] = []
    with (
        pytest.raises(httpx.TransportError),
        httpx.stream("GET", url, params={"watch": "true", "timeoutSeconds": "30"}, timeout=20) as r,
    ):
        for line in r.iter_lines():
            lines.append(line)
    assert time.monotonic() - t0 < 10
    assert json.loads(lines[0])["type"] == "ADDED"
    runtime.faults(watch_cut_after=0.0, watch_gone=1)
    r = httpx.get(url, params={"watch": "true", "resourceVersion": "1", "timeoutSeconds": "5"})
    ev = json.loads(r.text.splitlines()[0])
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410
    # Only one watch was forced.
    r = httpx.get(url, params={"watch": "true", "timeoutSeconds": "1"})
    assert json.loads(r.text.splitlines()[0])["type"] == "ADDED"


def test_kill_pod_process(runtime: RuntimeHandle, namespace: str) -> None:
    with runtime.http() as c:
        c.post(
            f"/api/v1/namespaces/{namespace}/pods", json=python_pod("victim", "import time; time.sleep(120)")
        ).raise_for_status()
        wait_for(
            lambda: (
                c.get(f"/api/v1/namespaces/{namespace}/pods/victim").json()["status"]["phase"] == "Running"
            )
        )
        r = c.post("/_admin/kill-pod", json={"namespace": namespace, "name": "victim"})
        assert r.json()["killed"] == ["main"]
        wait_for(
            lambda: c.get(f"/api/v1/namespaces/{namespace}/pods/victim").json()["status"]["phase"] == "Failed"
        )
        term = c.get(f"/api/v1/namespaces/{namespace}/pods/victim").json()["status"]["containerStatuses"][0][
            "state"
        ]["terminated"]
        assert term["exitCode"] == 137 and term["signal"] == 9


def test_crash_pods_makes_matching_containers_crash_with_their_words(
    runtime: RuntimeHandle, namespace: str
) -> None:
    with runtime.http() as c:

        def phase(name: str) -> str | None:
            return c.get(f"/api/v1/namespaces/{namespace}/pods/{name}").json()["status"].get("phase")

        assert c.post("/_admin/crash-pods", json={"name_pattern": "(", "exit_code": 1}).status_code == 400
        assert c.post("/_admin/crash-pods", json={"name_pattern": "x", "exit_code": 0}).status_code == 400
        r = c.post(
            "/_admin/crash-pods", json={"name_pattern": "^doomed-", "exit_code": 3, "message": "out of luck"}
        )
        assert r.json() == {"name_pattern": "^doomed-", "exit_code": 3}
        try:
            for name in ("doomed-1", "spared-1"):
                pod = python_pod(name, "print('ran my own command')")
                c.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).raise_for_status()
            wait_for(lambda: phase("doomed-1") == "Failed" and phase("spared-1") == "Succeeded")
        finally:
            c.post("/_admin/crash-pods", json={"name_pattern": ""}).raise_for_status()
        status = c.get(f"/api/v1/namespaces/{namespace}/pods/doomed-1").json()["status"]
        assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
        assert c.get(f"/api/v1/namespaces/{namespace}/pods/doomed-1/log").text.strip() == "out of luck"
        assert c.get(f"/api/v1/namespaces/{namespace}/pods/spared-1/log").text.strip() == "ran my own command"
        # Turned off: a new matching pod runs its own command.
        pod = python_pod("doomed-2", "print('ran my own command')")
        c.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).raise_for_status()
        wait_for(lambda: phase("doomed-2") == "Succeeded")


def test_bearer_token_auth_with_expiry(runtime: RuntimeHandle, namespace: str) -> None:
    url = f"{runtime.api}/api/v1/namespaces/{namespace}/pods"
    runtime.faults(auth=True, static_token="s3cret-static")
    r = httpx.get(url)
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer s3cret-static"}).status_code == 200
    # With auth on, /_admin takes the static token only: no minting, no switching auth off without it.
    assert httpx.post(f"{runtime.api}/_admin/tokens", json={"ttl": 1.0}).status_code == 401
    assert httpx.post(f"{runtime.api}/_admin/faults", json={"auth": False}).status_code == 401
    assert (
        httpx.post(f"{runtime.api}/_admin/kill-pod", json={"namespace": namespace, "name": "x"}).status_code
        == 401
    )
    minted_only = httpx.post(
        f"{runtime.api}/_admin/tokens", json={"ttl": 60}, headers={"Authorization": "Bearer s3cret-static"}
    ).json()["token"]
    assert (
        httpx.get(
            f"{runtime.api}/_admin/faults", headers={"Authorization": f"Bearer {minted_only}"}
        ).status_code
        == 401
    )
    # The KFP API checks the same tokens.
    assert runtime.kfp is not None
    kfp_url = f"{runtime.kfp}/apis/v2beta1/experiments"
    assert httpx.get(kfp_url).status_code == 401
    assert httpx.get(kfp_url, headers={"Authorization": f"Bearer {minted_only}"}).status_code == 200
    assert httpx.get(f"{runtime.kfp}/apis/v2beta1/healthz").status_code == 200
    minted = httpx.post(
        f"{runtime.api}/_admin/tokens", json={"ttl": 1.0}, headers={"Authorization": "Bearer s3cret-static"}
    ).json()
    headers = {"Authorization": f"Bearer {minted['token']}"}
    assert httpx.get(url, headers=headers).status_code == 200
    time.sleep(1.2)
    r = httpx.get(url, headers=headers)
    assert r.status_code == 401 and "expired" in r.json()["message"]
    # The settings endpoint never echoes the token.
    settings = httpx.get(f"{runtime.api}/_admin/faults", headers={"Authorization": "Bearer s3cret-static"})
    assert settings.json()["faults"]["static_token"] == "***"
