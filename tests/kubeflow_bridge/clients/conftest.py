from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def _load(name: str):  # type: ignore[no-untyped-def]
    # --import-mode=importlib: load the helper modules by path under a private name.
    full = f"_kfb_clients_{name}"
    if full not in sys.modules:
        spec = importlib.util.spec_from_file_location(full, _HERE / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
    return sys.modules[full]


fake_apiserver = _load("fake_apiserver")
fake_kfp = _load("fake_kfp")


@pytest.fixture
def kfp_server() -> Iterator:  # type: ignore[type-arg]
    server = fake_kfp.FakeKfp().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fakes():  # type: ignore[no-untyped-def]
    """The fake_apiserver module (Fault, FakeApiServer, write_kubeconfig)."""
    return fake_apiserver


@pytest.fixture
def apiserver() -> Iterator:  # type: ignore[type-arg]
    server = fake_apiserver.FakeApiServer(bookmark_interval=0.3).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_retry():  # type: ignore[no-untyped-def]
    from kubeflow_bridge.clients.kube import RetryPolicy

    return RetryPolicy(max_attempts=5, initial_delay=0.01, max_delay=0.05, max_retry_after=2.0)


@pytest.fixture
def sync_client(apiserver, fast_retry):  # type: ignore[no-untyped-def]
    from kubernetes import client

    from kubeflow_bridge.clients.kube import KubeflowObjectClient

    configuration = client.Configuration()
    configuration.host = apiserver.url
    c = KubeflowObjectClient(client.ApiClient(configuration), retry=fast_retry)
    yield c
    c.close()


@pytest.fixture
async def async_client(apiserver, fast_retry):  # type: ignore[no-untyped-def]
    from kubernetes_asyncio import client

    from kubeflow_bridge.clients.kube import AsyncKubeflowObjectClient

    configuration = client.Configuration()
    configuration.host = apiserver.url
    c = AsyncKubeflowObjectClient(client.ApiClient(configuration), retry=fast_retry)
    yield c
    await c.close()
