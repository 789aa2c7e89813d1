from __future__ import annotations

import asyncio
import time

import pytest

from kubeflow_bridge.clients.kube import (
    EXPERIMENT,
    INFERENCESERVICE,
    POD,
    PYTORCHJOB,
    TRIAL,
    AlreadyExistsError,
    IdentityMismatchError,
    KubeApiError,
)
from kubeflow_bridge.clients.kube._watch import active_watches

NS = "ns"
PJ = PYTORCHJOB.collection_path(NS)
EXP = EXPERIMENT.collection_path(NS)
TRIALS = TRIAL.collection_path(NS)
ISVC = INFERENCESERVICE.collection_path(NS)
PODS = POD.collection_path(NS)

SUCCEEDED = {
    "conditions": [
        {"type": "Created", "status": "True"},
        {"type": "Running", "status": "False"},
        {"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded"},
    ]
}
RESTARTING = {
    "conditions": [
        {"type": "Created", "status": "True"},
        {"type": "Restarting", "status": "True", "reason": "PyTorchJobRestarting"},
    ]
}


def job(name: str = "train", identity: str = "aaaabbbbcccc") -> dict:
    return {
        "metadata": {"name": name, "labels": {"kubeflow-bridge.io/identity": identity}},
        "spec": {"pytorchReplicaSpecs": {}},
    }


async def eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    # Under load a watch may take a moment to connect or to be noticed as closed.
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_async_create_reattach_fail_replace(async_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    first = await async_client.create(PYTORCHJOB, job(), namespace=NS)
    assert first.created and first.obj["kind"] == "PyTorchJob"
    again = await async_client.create(PYTORCHJOB, job(), namespace=NS)
    assert not again.created and again.obj["metadata"]["uid"] == first.obj["metadata"]["uid"]
    with pytest.raises(AlreadyExistsError):
        await async_client.create(PYTORCHJOB, job(), namespace=NS, if_exists="fail")
    with pytest.raises(IdentityMismatchError, match="not created by this task"):
        await async_client.create(PYTORCHJOB, job(identity="ffffffffffff"), namespace=NS)
    apiserver.delete_delay = 0.3
    replaced = await async_client.create(PYTORCHJOB, job(), namespace=NS, if_exists="replace")
    assert replaced.created and replaced.obj["metadata"]["uid"] != first.obj["metadata"]["uid"]
    assert await async_client.get(PYTORCHJOB, "nope", namespace=NS) is None


async def test_async_retries_429_500_and_drop(async_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    apiserver.add_fault(fakes.Fault(method="POST", code=429, retry_after=0.3))
    apiserver.add_fault(fakes.Fault(method="POST", code=500))
    apiserver.add_fault(fakes.Fault(method="POST", action="drop"))
    start = time.monotonic()
    assert (await async_client.create(PYTORCHJOB, job(), namespace=NS)).created
    assert time.monotonic() - start >= 0.3
    assert [s.method for s in apiserver.seen].count("POST") == 4
    apiserver.add_fault(fakes.Fault(method="GET", code=404 + 0, times=0))  # inert fault is ignored
    apiserver.add_fault(fakes.Fault(method="GET", code=403))
    with pytest.raises(KubeApiError) as info:
        await async_client.get(PYTORCHJOB, "train", namespace=NS)
    assert info.value.status == 403


async def test_async_wait_restarting_then_succeeded(async_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    await async_client.create(PYTORCHJOB, job(), namespace=NS)
    await asyncio.to_thread(apiserver.set_status, PJ, "train", RESTARTING)
    waiter = asyncio.create_task(async_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10))
    await asyncio.sleep(0.5)
    assert not waiter.done()  # Restarting is not terminal
    await asyncio.to_thread(apiserver.set_status, PJ, "train", SUCCEEDED)
    outcome = await waiter
    assert outcome.state == "succeeded" and outcome.reason == "PyTorchJobSucceeded"
    await asyncio.sleep(0.05)
    assert active_watches() == []  # the last waiter left: the watch closed
    await eventually(lambda: apiserver.open_watches == 0)


async def test_shared_watch_one_connection_for_many_waiters(async_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    names = [f"job-{i}" for i in range(50)]
    for name in names:
        apiserver.put(PJ, job(name))
    waiters = [asyncio.create_task(async_client.wait(PYTORCHJOB, n, namespace=NS, timeout=20)) for n in names]
    await asyncio.sleep(0.5)
    await eventually(lambda: apiserver.open_watches == 1)
    for i, name in enumerate(names):
        status = (
            SUCCEEDED
            if i % 2 == 0
            else {"conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed"}]}
        )
        await asyncio.to_thread(apiserver.set_status, PJ, name, status)
    outcomes = await asyncio.gather(*waiters)
    assert [o.state for o in outcomes] == ["succeeded" if i % 2 == 0 else "failed" for i in range(50)]
    assert [o.obj["metadata"]["name"] for o in outcomes] == names  # dispatched by name
    assert len(apiserver.watch_requests(PJ)) == 1
    assert len([s for s in apiserver.seen if s.method == "GET" and not s.watch]) == 1  # one list for all


async def test_shared_watch_separate_per_kind_and_namespace(async_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    apiserver.put(PJ, job("a"))
    apiserver.put(EXP, {"metadata": {"name": "e"}, "spec": {}})
    w1 = asyncio.create_task(async_client.wait(PYTORCHJOB, "a", namespace=NS, timeout=10))
    w2 = asyncio.create_task(async_client.wait(EXPERIMENT, "e", namespace=NS, timeout=10))
    await asyncio.sleep(0.4)
    await eventually(lambda: apiserver.open_watches == 2)
    assert len(active_watches()) == 2
    await asyncio.to_thread(apiserver.set_status, PJ, "a", SUCCEEDED)
    await asyncio.to_thread(
        apiserver.set_status,
        EXP,
        "e",
        {"conditions": [{"type": "Failed", "status": "True", "reason": "ExperimentFailed"}]},
    )
    assert (await w1).state == "succeeded" and (await w2).state == "failed"


async def test_shared_watch_relists_on_410_and_resumes_after_cut(async_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    apiserver.put(PJ, job())
    apiserver.add_fault(fakes.Fault(action="gone", watch=True))
    apiserver.add_fault(fakes.Fault(action="cut", watch=True, after_events=1))
    waiter = asyncio.create_task(async_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10))
    await asyncio.sleep(0.4)
    await asyncio.to_thread(apiserver.set_status, PJ, "train", RESTARTING)
    await asyncio.sleep(0.4)
    await asyncio.to_thread(apiserver.set_status, PJ, "train", SUCCEEDED)
    assert (await waiter).state == "succeeded"
    lists = [s for s in apiserver.seen if s.method == "GET" and not s.watch]
    watches = apiserver.watch_requests(PJ)
    assert len(lists) == 2  # initial list + relist after 410
    assert len(watches) >= 3  # gone, cut, resumed
    assert int(watches[2].query["resourceVersion"]) > int(watches[1].query["resourceVersion"])


async def test_shared_watch_backs_off_on_429_500_and_drop(async_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    apiserver.put(PJ, job())
    apiserver.add_fault(fakes.Fault(code=429, retry_after=0.2, watch=True))
    apiserver.add_fault(fakes.Fault(code=500, watch=True))
    apiserver.add_fault(fakes.Fault(action="drop", watch=True))
    waiter = asyncio.create_task(async_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10))
    await asyncio.sleep(0.8)
    await asyncio.to_thread(apiserver.set_status, PJ, "train", SUCCEEDED)
    assert (await waiter).state == "succeeded"
    assert len(apiserver.watch_requests(PJ)) >= 4


async def test_wait_missing_deleted_and_timeout(async_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    missing = await async_client.wait(PYTORCHJOB, "nope", namespace=NS, timeout=5)
    assert missing.state == "error" and missing.reason == "NotFound"
    apiserver.put(PJ, job())
    timed = await async_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=0.5)
    assert timed.state == "timeout" and timed.obj is not None
    waiter = asyncio.create_task(async_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10))
    await asyncio.sleep(0.4)
    await asyncio.to_thread(apiserver.remove, PJ, "train")
    deleted = await waiter
    assert deleted.state == "cancelled" and deleted.reason == "Deleted"


async def test_wait_for_object_created_after_watch_started(async_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    apiserver.put(PJ, job("early"))
    early = asyncio.create_task(async_client.wait(PYTORCHJOB, "early", namespace=NS, timeout=10))
    await asyncio.sleep(0.4)
    await async_client.create(PYTORCHJOB, job("late"), namespace=NS)
    late = asyncio.create_task(async_client.wait(PYTORCHJOB, "late", namespace=NS, timeout=10))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(apiserver.set_status, PJ, "late", SUCCEEDED)
    await asyncio.to_thread(apiserver.set_status, PJ, "early", SUCCEEDED)
    assert (await late).state == "succeeded" and (await early).state == "succeeded"
    assert len(apiserver.watch_requests(PJ)) == 1


async def test_async_isvc_new_generation_and_katib(async_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    ready = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    apiserver.put(ISVC, {"metadata": {"name": "m"}, "spec": {"predictor": {}}, "status": ready})
    patched = await async_client.patch(
        INFERENCESERVICE, "m", {"spec": {"predictor": {"minReplicas": 1}}}, namespace=NS
    )
    assert patched["metadata"]["generation"] == 2
    stale = await async_client.wait(INFERENCESERVICE, "m", namespace=NS, timeout=0.6, min_generation=2)
    assert stale.state == "timeout"
    failed = {
        "observedGeneration": 2,
        "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": "crash"}],
    }
    await asyncio.to_thread(apiserver.set_status, ISVC, "m", failed)
    outcome = await async_client.wait(INFERENCESERVICE, "m", namespace=NS, timeout=5, min_generation=2)
    assert outcome.state == "failed" and outcome.reason == "RevisionFailed" and outcome.message == "crash"
    apiserver.put(
        TRIALS,
        {
            "metadata": {"name": "t1"},
            "spec": {},
            "status": {
                "conditions": [
                    {"type": "MetricsUnavailable", "status": "True", "reason": "MetricsUnavailable"}
                ]
            },
        },
    )
    trial = await async_client.wait(TRIAL, "t1", namespace=NS, timeout=5)
    assert trial.state == "failed" and trial.reason == "MetricsUnavailable"


async def test_async_cancel_and_logs(async_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    await async_client.create(PYTORCHJOB, job(), namespace=NS)
    await async_client.cancel(PYTORCHJOB, "train", namespace=NS, mode="suspend")
    assert (await async_client.get(PYTORCHJOB, "train", namespace=NS))["spec"]["runPolicy"]["suspend"] is True
    await async_client.cancel(PYTORCHJOB, "train", namespace=NS)
    assert await async_client.get(PYTORCHJOB, "train", namespace=NS) is None
    labels = {
        "training.kubeflow.org/job-name": "train",
        "training.kubeflow.org/job-role": "master",
        "training.kubeflow.org/replica-type": "master",
    }
    apiserver.put(
        PODS,
        {
            "metadata": {"name": "train-master-0", "labels": labels},
            "spec": {"containers": [{"name": "pytorch"}]},
        },
    )
    apiserver.pod_logs[("train-master-0", "pytorch")] = "a\nb\nc\n"
    assert await async_client.job_logs(PYTORCHJOB, "train", namespace=NS, tail_lines=2) == {
        "train-master-0": "b\nc\n"
    }
    # A 5xx on a raw (not preloaded) read is retried, never read as the log or the pod listing itself.
    apiserver.add_fault(fakes.Fault(path="/log$", code=500, times=1))
    apiserver.add_fault(fakes.Fault(path="/pods$", code=503, times=1))
    assert await async_client.job_logs(PYTORCHJOB, "train", namespace=NS) == {"train-master-0": "a\nb\nc\n"}
    apiserver.add_fault(fakes.Fault(path="/log$", code=403, times=1))
    (text,) = (await async_client.job_logs(PYTORCHJOB, "train", namespace=NS)).values()
    assert text.startswith("<log unavailable:") and "403" in text


async def test_async_kubeconfig_token_rotation(apiserver, fakes, tmp_path, fast_retry) -> None:  # type: ignore[no-untyped-def]
    from kubeflow_bridge.clients.kube import AsyncKubeflowObjectClient

    apiserver.tokens = {"token-1"}
    kubeconfig = fakes.write_kubeconfig(tmp_path / "kubeconfig", apiserver.url, "token-1")
    client = await AsyncKubeflowObjectClient.from_kubeconfig(str(kubeconfig), retry=fast_retry)
    try:
        assert (await client.create(PYTORCHJOB, job(), namespace=NS)).created
        apiserver.tokens = {"token-2"}
        fakes.write_kubeconfig(kubeconfig, apiserver.url, "token-2")
        assert await client.get(PYTORCHJOB, "train", namespace=NS) is not None  # reloaded on 401
        apiserver.tokens = {"token-2b"}  # rotates again: now the shared watch meets the 401 first
        fakes.write_kubeconfig(kubeconfig, apiserver.url, "token-2b")
        waiter = asyncio.create_task(client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(apiserver.set_status, PJ, "train", SUCCEEDED)
        assert (await waiter).state == "succeeded"  # the shared watch reloaded the rotated token on 401
        apiserver.tokens = {"token-3"}
        with pytest.raises(KubeApiError) as info:
            await client.get(PYTORCHJOB, "train", namespace=NS)
        assert info.value.status == 401 and "token" not in repr(client)
    finally:
        await client.close()


async def test_shared_watch_reports_non_retryable_error_and_restarts_later(
    async_client, apiserver, fakes
) -> None:  # type: ignore[no-untyped-def]
    apiserver.put(PJ, job())
    apiserver.add_fault(fakes.Fault(method="GET", path=PJ + "$", code=403, watch=False))
    outcomes = await asyncio.gather(
        *(async_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10) for _ in range(3))
    )
    assert [o.state for o in outcomes] == ["error"] * 3 and outcomes[0].message == "injected 403"
    await asyncio.to_thread(apiserver.set_status, PJ, "train", SUCCEEDED)
    assert (await async_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10)).state == "succeeded"
