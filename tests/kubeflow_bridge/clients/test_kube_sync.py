from __future__ import annotations

import threading
import time

import pytest

from kubeflow_bridge.clients.kube import (
    INFERENCESERVICE,
    POD,
    PYTORCHJOB,
    AlreadyExistsError,
    IdentityMismatchError,
    IfExists,
    KubeApiError,
)

NS = "ns"
PJ = PYTORCHJOB.collection_path(NS)
ISVC = INFERENCESERVICE.collection_path(NS)
PODS = POD.collection_path(NS)


def job(name: str = "train", identity: str = "aaaabbbbcccc") -> dict:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubeflow-bridge.io/identity": identity,
                "app.kubernetes.io/managed-by": "kubeflow-bridge",
            },
        },
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1}}},
    }


SUCCEEDED = {
    "conditions": [
        {"type": "Created", "status": "True", "reason": "PyTorchJobCreated"},
        {"type": "Running", "status": "False", "reason": "PyTorchJobRunning"},
        {"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded", "message": "done"},
    ]
}
RESTARTING = {
    "conditions": [
        {"type": "Created", "status": "True"},
        {"type": "Restarting", "status": "True", "reason": "PyTorchJobRestarting"},
    ]
}


def later(delay: float, fn, *args, **kwargs) -> threading.Timer:  # type: ignore[no-untyped-def]
    timer = threading.Timer(delay, fn, args, kwargs)
    timer.start()
    return timer


def test_create_sets_kind_and_get_returns_none_on_404(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    result = sync_client.create(PYTORCHJOB, job(), namespace=NS)
    assert (
        result.created
        and result.obj["kind"] == "PyTorchJob"
        and result.obj["apiVersion"] == "kubeflow.org/v1"
    )
    assert (
        sync_client.get(PYTORCHJOB, "train", namespace=NS)["metadata"]["uid"] == result.obj["metadata"]["uid"]
    )
    assert sync_client.get(PYTORCHJOB, "missing", namespace=NS) is None


def test_create_reattaches_on_409_with_same_identity(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    first = sync_client.create(PYTORCHJOB, job(), namespace=NS)
    again = sync_client.create(PYTORCHJOB, job(), namespace=NS, if_exists="reattach")
    assert not again.created and again.obj["metadata"]["uid"] == first.obj["metadata"]["uid"]
    assert [s.method for s in apiserver.seen].count("POST") == 2


def test_create_identity_mismatch_is_a_clear_error(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(identity="111111111111"), namespace=NS)
    with pytest.raises(IdentityMismatchError, match="not created by this task") as info:
        sync_client.create(PYTORCHJOB, job(identity="222222222222"), namespace=NS)
    assert "'111111111111'" in str(info.value)
    with pytest.raises(IdentityMismatchError):
        sync_client.create(PYTORCHJOB, job(identity="222222222222"), namespace=NS, if_exists=IfExists.REPLACE)
    # the other task's object is untouched
    assert (
        sync_client.get(PYTORCHJOB, "train", namespace=NS)["metadata"]["labels"][
            "kubeflow-bridge.io/identity"
        ]
        == "111111111111"
    )


def test_create_fail_mode(sync_client) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    with pytest.raises(AlreadyExistsError, match="if_exists=fail"):
        sync_client.create(PYTORCHJOB, job(), namespace=NS, if_exists=IfExists.FAIL)


def test_create_replace_deletes_waits_until_gone_and_creates(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    apiserver.delete_delay = 0.4  # the object lingers with a deletionTimestamp like a foreground deletion
    first = sync_client.create(PYTORCHJOB, job(), namespace=NS)
    start = time.monotonic()
    second = sync_client.create(PYTORCHJOB, job(), namespace=NS, if_exists="replace")
    assert second.created and second.obj["metadata"]["uid"] != first.obj["metadata"]["uid"]
    assert time.monotonic() - start >= 0.35
    deletes = [s for s in apiserver.seen if s.method == "DELETE"]
    assert len(deletes) == 1


def test_retries_429_with_retry_after_and_500(sync_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    apiserver.add_fault(fakes.Fault(method="POST", code=429, retry_after=0.3))
    apiserver.add_fault(fakes.Fault(method="POST", code=500))
    start = time.monotonic()
    assert sync_client.create(PYTORCHJOB, job(), namespace=NS).created
    assert time.monotonic() - start >= 0.3  # Retry-After honoured
    assert [s.method for s in apiserver.seen].count("POST") == 3


def test_gives_up_after_max_attempts_and_does_not_retry_4xx(sync_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    apiserver.add_fault(fakes.Fault(method="GET", code=503, times=50))
    with pytest.raises(KubeApiError) as info:
        sync_client.get(PYTORCHJOB, "x", namespace=NS)
    assert info.value.status == 503 and len(apiserver.seen) == 5
    apiserver.faults.clear()
    apiserver.add_fault(fakes.Fault(method="GET", code=403, times=5))
    with pytest.raises(KubeApiError) as info:
        sync_client.get(PYTORCHJOB, "x", namespace=NS)
    assert info.value.status == 403 and len(apiserver.seen) == 6


def test_retries_dropped_connection(sync_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    apiserver.add_fault(fakes.Fault(method="POST", action="drop"))
    assert sync_client.create(PYTORCHJOB, job(), namespace=NS).created


def test_wait_restarting_is_not_terminal_then_succeeded(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    apiserver.set_status(PJ, "train", RESTARTING)
    later(0.5, apiserver.set_status, PJ, "train", SUCCEEDED)
    outcome = sync_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10)
    assert outcome.state == "succeeded" and outcome.reason == "PyTorchJobSucceeded"
    assert outcome.obj is not None and outcome.obj["status"] == SUCCEEDED


def test_wait_times_out_with_last_object(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    apiserver.set_status(PJ, "train", RESTARTING)
    outcome = sync_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=1.0)
    assert outcome.state == "timeout" and outcome.obj["status"] == RESTARTING


def test_wait_missing_object_is_error(sync_client) -> None:  # type: ignore[no-untyped-def]
    outcome = sync_client.wait(PYTORCHJOB, "nope", namespace=NS, timeout=5)
    assert outcome.state == "error" and outcome.reason == "NotFound"


def test_wait_deleted_is_cancelled(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    later(0.3, apiserver.remove, PJ, "train")
    outcome = sync_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10)
    assert outcome.state == "cancelled" and outcome.reason == "Deleted"


def test_wait_relists_on_410_gone(sync_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    apiserver.add_fault(fakes.Fault(action="gone", watch=True))
    later(0.5, apiserver.set_status, PJ, "train", SUCCEEDED)
    outcome = sync_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10)
    assert outcome.state == "succeeded"
    lists = [s for s in apiserver.seen if s.method == "GET" and not s.watch and s.path == PJ]
    assert len(lists) == 2  # the initial list and the relist after 410


def test_wait_resumes_after_cut_watch_from_last_resource_version(sync_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    apiserver.add_fault(fakes.Fault(action="cut", watch=True, after_events=1))
    later(0.3, apiserver.set_status, PJ, "train", RESTARTING)
    later(0.8, apiserver.set_status, PJ, "train", SUCCEEDED)
    outcome = sync_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10)
    assert outcome.state == "succeeded"
    watches = apiserver.watch_requests(PJ)
    assert len(watches) >= 2
    first_rv = int(watches[0].query["resourceVersion"])
    assert int(watches[1].query["resourceVersion"]) > first_rv  # resumed, did not start over
    assert len([s for s in apiserver.seen if not s.watch and s.method == "GET"]) == 1  # no relist needed


def test_wait_backs_off_on_watch_429_and_500(sync_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    apiserver.add_fault(fakes.Fault(code=429, retry_after=0.2, watch=True))
    apiserver.add_fault(fakes.Fault(code=500, watch=True))
    apiserver.add_fault(fakes.Fault(action="drop", watch=True))
    later(0.5, apiserver.set_status, PJ, "train", SUCCEEDED)
    assert sync_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10).state == "succeeded"
    assert len(apiserver.watch_requests(PJ)) >= 4


def test_isvc_ready_judged_at_new_generation(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    ready = {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True"}],
        "url": "http://m.ns.example.com",
    }
    apiserver.put(
        ISVC, {"metadata": {"name": "m", "generation": 1}, "spec": {"predictor": {}}, "status": ready}
    )
    patched = sync_client.patch(
        INFERENCESERVICE, "m", {"spec": {"predictor": {"canaryTrafficPercent": 10}}}, namespace=NS
    )
    assert patched["metadata"]["generation"] == 2
    early = sync_client.wait(INFERENCESERVICE, "m", namespace=NS, timeout=0.8, min_generation=2)
    assert early.state == "timeout"  # old Ready=True at observedGeneration 1 must not count
    later(0.3, apiserver.set_status, ISVC, "m", {**ready, "observedGeneration": 2})
    outcome = sync_client.wait(INFERENCESERVICE, "m", namespace=NS, timeout=10, min_generation=2)
    assert outcome.state == "succeeded" and outcome.obj["status"]["observedGeneration"] == 2


def test_cancel_deletes_with_foreground_or_suspends(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    sync_client.cancel(PYTORCHJOB, "train", namespace=NS, mode="suspend")
    assert sync_client.get(PYTORCHJOB, "train", namespace=NS)["spec"]["runPolicy"]["suspend"] is True
    sync_client.cancel(PYTORCHJOB, "train", namespace=NS)
    assert sync_client.get(PYTORCHJOB, "train", namespace=NS) is None
    assert sync_client.delete(PYTORCHJOB, "train", namespace=NS) is False
    sync_client.cancel(PYTORCHJOB, "train", namespace=NS)  # cancelling what is gone is fine


def _pod(name: str, labels: dict, containers: tuple[str, ...] = ("pytorch",)) -> dict:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": c} for c in containers]},
    }


def test_job_logs_by_training_operator_labels(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    base = {"training.kubeflow.org/job-name": "train"}
    apiserver.put(
        PODS,
        _pod(
            "train-master-0",
            {
                **base,
                "training.kubeflow.org/replica-type": "master",
                "training.kubeflow.org/replica-index": "0",
                "training.kubeflow.org/job-role": "master",
            },
        ),
    )
    apiserver.put(
        PODS,
        _pod(
            "train-worker-0",
            {
                **base,
                "training.kubeflow.org/replica-type": "worker",
                "training.kubeflow.org/replica-index": "0",
            },
        ),
    )
    apiserver.put(
        PODS,
        _pod(
            "other-master-0",
            {"training.kubeflow.org/job-name": "other", "training.kubeflow.org/job-role": "master"},
        ),
    )
    apiserver.pod_logs[("train-master-0", "pytorch")] = "epoch=1 val_loss=0.5\nepoch=2 val_loss=0.4\n"
    apiserver.pod_logs[("train-worker-0", "pytorch")] = "worker says hi\n"
    assert sync_client.job_logs(PYTORCHJOB, "train", namespace=NS) == {
        "train-master-0": "epoch=1 val_loss=0.5\nepoch=2 val_loss=0.4\n"
    }
    assert sync_client.job_logs(PYTORCHJOB, "train", namespace=NS, role="worker") == {
        "train-worker-0": "worker says hi\n"
    }
    assert set(sync_client.job_logs(PYTORCHJOB, "train", namespace=NS, role="all")) == {
        "train-master-0",
        "train-worker-0",
    }
    tail = sync_client.job_logs(PYTORCHJOB, "train", namespace=NS, tail_lines=1)
    assert tail["train-master-0"].strip() == "epoch=2 val_loss=0.4"


def test_job_logs_of_trial_batch_job(sync_client, apiserver) -> None:  # type: ignore[no-untyped-def]
    from kubeflow_bridge.clients.kube import TRIAL

    apiserver.put(
        PODS,
        _pod(
            "trial-1-x2x9z",
            {"job-name": "trial-1"},
            containers=("training-container", "metrics-logger-and-collector"),
        ),
    )
    apiserver.pod_logs[("trial-1-x2x9z", "training-container")] = "val_loss=0.3\n"
    assert sync_client.job_logs(TRIAL, "trial-1", namespace=NS) == {"trial-1-x2x9z": "val_loss=0.3\n"}


def test_kubeconfig_token_rotation_reloads_on_401(apiserver, fakes, tmp_path, fast_retry) -> None:  # type: ignore[no-untyped-def]
    from kubeflow_bridge.clients.kube import KubeflowObjectClient

    apiserver.tokens = {"token-1"}
    kubeconfig = fakes.write_kubeconfig(tmp_path / "kubeconfig", apiserver.url, "token-1")
    client = KubeflowObjectClient.from_kubeconfig(
        str(kubeconfig), context="kubeflow-bridge-local", retry=fast_retry
    )
    try:
        assert client.create(PYTORCHJOB, job(), namespace=NS).created
        apiserver.tokens = {"token-2"}  # token-1 expires; the kubeconfig is rewritten with a fresh token
        fakes.write_kubeconfig(kubeconfig, apiserver.url, "token-2")
        assert client.get(PYTORCHJOB, "train", namespace=NS) is not None
        apiserver.tokens = {"token-3"}  # expired and nobody refreshed it: a clear 401, no endless loop
        with pytest.raises(KubeApiError) as info:
            client.get(PYTORCHJOB, "train", namespace=NS)
        assert info.value.status == 401
        assert "token-" not in repr(client)
    finally:
        client.close()


def test_wait_relists_on_http_410_at_watch_start(sync_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    apiserver.add_fault(fakes.Fault(code=410, watch=True))
    later(0.4, apiserver.set_status, PJ, "train", SUCCEEDED)
    assert sync_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10).state == "succeeded"
    assert len([s for s in apiserver.seen if s.method == "GET" and not s.watch and s.path == PJ]) == 2


def test_wait_non_retryable_error_is_reported(sync_client, apiserver, fakes) -> None:  # type: ignore[no-untyped-def]
    sync_client.create(PYTORCHJOB, job(), namespace=NS)
    apiserver.add_fault(fakes.Fault(code=403, watch=True))
    outcome = sync_client.wait(PYTORCHJOB, "train", namespace=NS, timeout=10)
    assert outcome.state == "error" and outcome.obj is not None
