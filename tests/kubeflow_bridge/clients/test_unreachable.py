"""An endpoint that does not answer: the error names it and says what to do (no raw MaxRetryError)."""

from __future__ import annotations

import socket

import pytest
from kubernetes import client
from kubernetes_asyncio import client as aclient

from kubeflow_bridge.clients._retry import unreachable
from kubeflow_bridge.clients.kfp import AsyncKfpClient, KfpApiError, KfpClient
from kubeflow_bridge.clients.kube import (
    PYTORCHJOB,
    AsyncKubeflowObjectClient,
    KubeApiError,
    KubeflowObjectClient,
    RetryPolicy,
)

RETRY = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)
LOCAL_HINT = "is the local runtime up? Run `kubeflow-bridge local up` and re-source its env file"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kubernetes_clients_name_the_endpoint_and_the_fix() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    configuration = client.Configuration()
    configuration.host = url
    with (
        KubeflowObjectClient(client.ApiClient(configuration), retry=RETRY) as kube,
        pytest.raises(KubeApiError) as err,
    ):
        kube.get(PYTORCHJOB, "j", namespace="ns")
    assert err.value.status == 0 and err.value.reason == "Unreachable"
    assert f"cannot reach the Kubernetes API at {url}" in str(err.value) and LOCAL_HINT in str(err.value)


async def test_async_and_kfp_clients_name_the_endpoint_and_the_fix() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    configuration = aclient.Configuration()
    configuration.host = url
    kube = AsyncKubeflowObjectClient(aclient.ApiClient(configuration), retry=RETRY)
    try:
        with pytest.raises(KubeApiError, match="cannot reach the Kubernetes API") as err:
            await kube.get(PYTORCHJOB, "j", namespace="ns")
        assert LOCAL_HINT in str(err.value)
    finally:
        await kube.close()
    with pytest.raises(KfpApiError, match=f"cannot reach the KFP API at {url}") as kfp_err:
        KfpClient(url, retry=RETRY).get_run("r1")
    assert LOCAL_HINT in str(kfp_err.value)
    async with AsyncKfpClient(url, retry=RETRY) as kfp:
        with pytest.raises(KfpApiError, match=LOCAL_HINT.split("?")[0]):
            await kfp.get_run("r1")
    # A remote endpoint gets the remote hint, not the local runtime's.
    remote = unreachable(
        "KFP API", "https://kubeflow.example.com/pipeline", ConnectionRefusedError("refused")
    )
    assert "check the endpoint in the connection" in remote and "local up" not in remote
