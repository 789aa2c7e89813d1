from __future__ import annotations

import json
from typing import Any

import pytest

from kubeflow_bridge.hooks.kubeflow import (
    DEFAULT_SA_TOKEN_PATH,
    KubeflowConnectionError,
    KubeflowHook,
    parse_connection,
)


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str = "kubeflow_default", **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "kubeflow", **fields}))


def test_defaults_and_host_normalisation() -> None:
    s = parse_connection("c", host="ml-pipeline:8888", login=None, password=None, extras={})
    assert s.kfp_endpoint == "http://ml-pipeline:8888"
    assert (s.auth_mode, s.namespace, s.verify_tls, s.dashboard_url) == ("none", "kubeflow-user", True, None)


def test_kfp_endpoint_from_extra_when_host_is_empty() -> None:
    s = parse_connection(
        "c", host=None, login=None, password=None, extras={"kfp_endpoint": "http://kfp:8888/"}
    )
    assert s.kfp_endpoint == "http://kfp:8888"


def test_prefixed_extras_and_bool_strings() -> None:
    s = parse_connection(
        "c",
        host="https://kfp/",
        login=None,
        password=None,
        extras={"extra__kubeflow__namespace": "ns", "verify_tls": "false", "dashboard_url": "https://dash/"},
    )
    assert (s.kfp_endpoint, s.namespace, s.verify_tls, s.dashboard_url) == (
        "https://kfp",
        "ns",
        False,
        "https://dash",
    )


@pytest.mark.parametrize(
    ("extras", "login", "password", "message"),
    [
        (
            {"auth_mode": "kerberos"},
            None,
            None,
            "auth_mode 'kerberos' is not one of none, token, sa_token_file, dex",
        ),
        ({"auth_mode": "token"}, None, None, "needs the bearer token in the Password field"),
        ({"auth_mode": "dex"}, "user", None, "needs Login \\(username\\) and Password"),
        ({"verify_tls": "maybe"}, None, None, "verify_tls must be true or false"),
    ],
)
def test_bad_connections_say_what_to_fix(
    extras: dict, login: str | None, password: str | None, message: str
) -> None:
    with pytest.raises(KubeflowConnectionError, match=message):
        parse_connection("c", host="http://kfp", login=login, password=password, extras=extras)


def test_auth_modes_map_to_kfp_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse_connection("c", host="http://k", login=None, password="tok", extras={"auth_mode": "token"})
    assert (s.token, s.password) == ("tok", None)
    s = parse_connection(
        "c", host="http://k", login=None, password=None, extras={"auth_mode": "sa_token_file"}
    )
    assert s.token_path == DEFAULT_SA_TOKEN_PATH
    s = parse_connection("c", host="http://k", login="u@x", password="pw", extras={"auth_mode": "dex"})
    assert (s.username, s.password, s.token) == ("u@x", "pw", None)


def test_settings_repr_hides_secrets() -> None:
    s = parse_connection("c", host="http://k", login="u", password="hunter2", extras={"auth_mode": "dex"})
    assert "hunter2" not in repr(s)


def test_missing_connection_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
    with pytest.raises(
        KubeflowConnectionError, match="connection 'nope' is not defined: create a 'kubeflow' connection"
    ):
        _ = KubeflowHook("nope").settings


def test_hook_reads_connection_and_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    set_conn(
        monkeypatch,
        host="http://127.0.0.1:8888",
        login="alice",
        password="s3cret-pw",
        extra={"auth_mode": "dex", "namespace": "team-a", "kubernetes_conn_id": "k8s_local"},
    )
    hook = KubeflowHook()
    assert hook.namespace == "team-a" and hook.kubernetes_conn_id == "k8s_local"
    assert KubeflowHook(namespace="other").namespace == "other"
    assert "s3cret-pw" not in str(redact("password is s3cret-pw"))


def test_no_kfp_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, extra={"namespace": "x"})
    with pytest.raises(KubeflowConnectionError, match="has no KFP endpoint: set its Host"):
        KubeflowHook().get_kfp_client()


def test_module_import_is_cheap() -> None:
    import subprocess
    import sys

    # airflow.sdk itself imports httpx; our modules must add none of these on top of it.
    code = (
        "import sys, airflow.sdk, airflow.triggers.base\n"
        "before = set(sys.modules)\n"
        "import kubeflow_bridge.hooks.kubeflow, kubeflow_bridge.operators.training, kubeflow_bridge.operators.kfp, "
        "kubeflow_bridge.operators.katib, kubeflow_bridge.operators.kserve, kubeflow_bridge.operators.gate, "
        "kubeflow_bridge.sensors.kfp, kubeflow_bridge.sensors.katib, kubeflow_bridge.sensors.training, "
        "kubeflow_bridge.sensors.kserve, kubeflow_bridge.links.kfp, "
        "kubeflow_bridge.triggers.kubeflow, kubeflow_bridge.triggers.kfp\n"
        "heavy = [m for m in ('kubernetes', 'kubernetes_asyncio', 'httpx', 'kfp', 'torch', 'yaml', 'aiohttp') if m in set(sys.modules) - before]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


async def test_waiters_in_one_loop_share_one_async_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from kubeflow_bridge.hooks import kubeflow

    set_conn(monkeypatch, host="http://kfp", extra={"kubernetes_conn_id": "k8s"})
    opened: list[object] = []
    closed: list[object] = []

    async def fake_open(self: object, conn_id: str) -> object:
        await asyncio.sleep(0.01)  # let the other waiters pile up on the lock
        opened.append(conn_id)
        return object()

    async def fake_close(self: object) -> None:
        closed.append(self)

    monkeypatch.setattr(kubeflow._SharedAsyncClient, "open", fake_open)
    monkeypatch.setattr(kubeflow._SharedAsyncClient, "close", fake_close)
    seen: list[object] = []

    async def waiter() -> None:
        async with KubeflowHook().async_object_client() as client:
            seen.append(client)
            await asyncio.sleep(0.02)

    await asyncio.gather(*(waiter() for _ in range(20)))
    assert opened == ["k8s"] and len({id(c) for c in seen}) == 1
    assert len(closed) == 1 and kubeflow._SHARED_ASYNC_CLIENTS == {}
