"""One contract, two implementations: the operators' in-memory ``FakeObjectClient`` and the real
``KubeflowObjectClient`` against the local runtime must answer every call the same way, so the operator
unit tests (which use the fake) test what the operators do against a real API server."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubeflow_bridge.clients.kube import (
    PYTORCHJOB,
    AlreadyExistsError,
    CreateResult,
    IdentityMismatchError,
    KubeflowObjectClient,
    WaitOutcome,
)
from kubeflow_bridge.resources.names import Identity, with_identity

from . import test_local_runtime as on_runtime
from .conftest import FakeObjectClient

pytestmark = pytest.mark.e2e
runtime = on_runtime.runtime


@pytest.fixture(params=["fake", "local-runtime"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "fake":
        yield FakeObjectClient()
        return
    rt = request.getfixturevalue("runtime")
    with KubeflowObjectClient.from_kubeconfig(rt.env["KUBECONFIG"]) as real:
        yield real


def job(name: str, who: Identity) -> dict[str, Any]:
    """A suspended PyTorchJob: a real object that starts no pods, so nothing but the contract is tested."""
    container = {"name": "pytorch", "image": "kubeflow-bridge/trainer:latest", "command": ["true"]}
    body = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "runPolicy": {"suspend": True},
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {"spec": {"containers": [container]}},
                }
            },
        },
    }
    return with_identity(body, who)


def test_create_reattach_fail_replace_and_identity(client: Any) -> None:
    ns, name = "default", f"c-{uuid.uuid4().hex[:8]}"
    ours, theirs = Identity.airflow("d", "t", "r1", -1), Identity.airflow("d", "t", "r2", -1)
    first = client.create(PYTORCHJOB, job(name, ours), namespace=ns)
    assert isinstance(first, CreateResult) and first.created
    again = client.create(PYTORCHJOB, job(name, ours), namespace=ns)
    assert not again.created and again.obj["metadata"]["uid"] == first.obj["metadata"]["uid"]
    with pytest.raises(AlreadyExistsError, match="if_exists=fail"):
        client.create(PYTORCHJOB, job(name, ours), namespace=ns, if_exists="fail")
    with pytest.raises(IdentityMismatchError, match="not created by this task"):
        client.create(PYTORCHJOB, job(name, theirs), namespace=ns)
    replaced = client.create(PYTORCHJOB, job(name, ours), namespace=ns, if_exists="replace")
    assert replaced.created and replaced.obj["metadata"]["uid"] != first.obj["metadata"]["uid"]


def test_get_patch_generation_wait_and_cancel(client: Any) -> None:
    ns, name = "default", f"c-{uuid.uuid4().hex[:8]}"
    assert client.get(PYTORCHJOB, name, namespace=ns) is None
    created = client.create(PYTORCHJOB, job(name, Identity.airflow("d", "t", "r", -1)), namespace=ns).obj
    assert created["metadata"]["generation"] == 1
    labelled = client.patch(PYTORCHJOB, name, {"metadata": {"labels": {"x": "y"}}}, namespace=ns)
    assert labelled["metadata"]["generation"] == 1  # metadata does not bump the generation
    spec = copy.deepcopy(created["spec"])
    spec["runPolicy"]["backoffLimit"] = 2
    patched = client.patch(PYTORCHJOB, name, {"spec": spec}, namespace=ns)
    assert patched["metadata"]["generation"] == 2 and patched["metadata"]["labels"]["x"] == "y"
    waited = client.wait(PYTORCHJOB, name, namespace=ns, timeout=1)
    assert isinstance(waited, WaitOutcome) and waited.state == "timeout"  # suspended: not terminal
    client.cancel(PYTORCHJOB, name, namespace=ns)
    assert client.get(PYTORCHJOB, name, namespace=ns) is None
    gone = client.wait(PYTORCHJOB, name, namespace=ns, timeout=1)
    assert gone.state == "error" and gone.reason == "NotFound"  # the trigger reads this as cancelled
