"""The clients against the real local runtime (API server + PyTorchJob controller in a subprocess)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeflow_bridge.clients.kube import PYTORCHJOB, IdentityMismatchError
from kubeflow_bridge.clients.kube.results import job_outcome
from kubeflow_bridge.local.testing import local_runtime

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("clients-rt") / "state"
    with local_runtime(state, "--no-s3", "--bookmark-interval", "0.5"):
        yield json.loads((state / "runtime.json").read_text())


@pytest.fixture
def namespace(runtime: dict[str, Any]) -> Iterator[str]:
    name = f"c-{uuid.uuid4().hex[:8]}"
    httpx.post(f"{runtime['api']}/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    yield name
    httpx.delete(f"{runtime['api']}/_admin/faults")
    httpx.delete(f"{runtime['api']}/api/v1/namespaces/{name}")


def pytorchjob(name: str, code: str, identity: str = "abcdefabcdef") -> dict[str, Any]:
    container = {"name": "pytorch", "image": "python:3.11", "command": [sys.executable, "-c", code]}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {
            "name": name,
            "labels": {
                "kubeflow-bridge.io/identity": identity,
                "app.kubernetes.io/managed-by": "kubeflow-bridge",
            },
        },
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {"spec": {"containers": [container]}},
                }
            }
        },
    }


def test_sync_client_runs_a_pytorchjob_and_reads_its_failure(runtime: dict[str, Any], namespace: str) -> None:
    from kubeflow_bridge.clients.kube import KubeflowObjectClient

    client = KubeflowObjectClient.from_kubeconfig(runtime["kubeconfig"])
    try:
        ok = client.create(PYTORCHJOB, pytorchjob("ok", "print('epoch=1 val_loss=0.5')"), namespace=namespace)
        assert ok.created
        assert not client.create(
            PYTORCHJOB, pytorchjob("ok", "print(1)"), namespace=namespace
        ).created  # reattached
        with pytest.raises(IdentityMismatchError):
            client.create(
                PYTORCHJOB, pytorchjob("ok", "print(1)", identity="000000000000"), namespace=namespace
            )
        outcome = client.wait(PYTORCHJOB, "ok", namespace=namespace, timeout=60)
        assert outcome.state == "succeeded", outcome
        assert "epoch=1 val_loss=0.5" in client.job_logs(PYTORCHJOB, "ok", namespace=namespace)["ok-master-0"]

        client.create(
            PYTORCHJOB,
            pytorchjob("bad", "import sys; print('loading'); sys.exit('RuntimeError: NaN loss')"),
            namespace=namespace,
        )
        failed = client.wait(PYTORCHJOB, "bad", namespace=namespace, timeout=60)
        assert failed.state == "failed" and failed.obj is not None
        summary = job_outcome(failed.obj, client.job_logs(PYTORCHJOB, "bad", namespace=namespace))
        assert summary.failed_replica == "Master" and "NaN loss" in summary.log_tail
    finally:
        client.close()


@pytest.mark.parametrize("use_async", [False, True])
async def test_restarted_replica_shows_its_crash_from_the_previous_log(
    runtime: dict[str, Any], namespace: str, use_async: bool
) -> None:
    # restartPolicy OnFailure restarts the container in place (no replica counts as failed): once a
    # later run is silent, the crash is only in the previous container's log. (No backoffLimit: on
    # reaching it the operator deletes every pod, logs and all, as v1.9 does.)
    from kubeflow_bridge.clients.kube import AsyncKubeflowObjectClient, KubeflowObjectClient

    # The first two runs crash with the reason; later restarts print nothing and wait, so the reason is
    # only in the previous container's log (the working folder survives restarts: it counts the runs).
    code = (
        "import os, sys, time\n"
        "runs = open('runs').read().count('x') if os.path.exists('runs') else 0\n"
        "open('runs', 'a').write('x')\n"
        "if runs >= 2: time.sleep(600)\n"
        "print('batch 256 not divisible by world 3'); sys.exit(3)\n"
    )
    job = pytorchjob("crashloop", code)
    job["metadata"]["name"] = name = f"crashloop-{int(use_async)}"
    job["spec"]["pytorchReplicaSpecs"]["Master"]["restartPolicy"] = "OnFailure"
    sync = KubeflowObjectClient.from_kubeconfig(runtime["kubeconfig"])
    aclient = await AsyncKubeflowObjectClient.from_kubeconfig(runtime["kubeconfig"])
    pod_url = f"{runtime['api']}/api/v1/namespaces/{namespace}/pods/{name}-master-0"

    def restarts() -> int:
        statuses = (httpx.get(pod_url).json().get("status") or {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount") or 0)

    try:
        sync.create(PYTORCHJOB, job, namespace=namespace)
        deadline = time.monotonic() + 60
        while restarts() < 2 and time.monotonic() < deadline:  # the silent third run has started
            await asyncio.sleep(0.3)
        assert restarts() >= 2
        if use_async:
            logs = await aclient.job_logs(PYTORCHJOB, name, namespace=namespace)
        else:
            logs = sync.job_logs(PYTORCHJOB, name, namespace=namespace)
        current = sync.get(PYTORCHJOB, name, namespace=namespace)
    finally:
        sync.close()
        await aclient.close()
    assert "batch 256 not divisible by world 3" in logs[f"{name}-master-0"]
    assert current is not None and "not divisible" in job_outcome(current, logs).log_tail


async def test_async_shared_watch_survives_runtime_faults(runtime: dict[str, Any], namespace: str) -> None:
    from kubeflow_bridge.clients.kube import AsyncKubeflowObjectClient, RetryPolicy

    client = await AsyncKubeflowObjectClient.from_kubeconfig(
        runtime["kubeconfig"], retry=RetryPolicy(initial_delay=0.05, max_delay=0.5)
    )
    try:
        names = [f"j{i}" for i in range(6)]
        for name in names:
            await client.create(
                PYTORCHJOB,
                pytorchjob(name, "import time; time.sleep(1.5); print('done')"),
                namespace=namespace,
            )
        faults = {
            "watch_cut_after": 0.7,
            "watch_gone": 1,
            "throttle_rate": 0.3,
            "retry_after": 0,
            "path_pattern": "pytorchjobs",
            "methods": ["GET"],
            "seed": 7,
        }
        before = httpx.post(f"{runtime['api']}/_admin/faults", json=faults).json()["injected"]
        outcomes = await asyncio.gather(
            *(client.wait(PYTORCHJOB, n, namespace=namespace, timeout=90) for n in names)
        )
        assert [o.state for o in outcomes] == ["succeeded"] * len(names), outcomes
        after = httpx.get(f"{runtime['api']}/_admin/faults").json()["injected"]
        assert after["watch_gone"] > before["watch_gone"] and after["watch_cut"] > before["watch_cut"], (
            before,
            after,
        )
        assert after["throttle"] > before["throttle"], (before, after)
    finally:
        await client.close()


async def test_progress_of_many_waits_reads_the_shared_watch_not_the_api(
    runtime: dict[str, Any], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A triggerer's waits log progress from their shared watch: no request per wait per interval (20
    waits reporting every 0.2 s would otherwise send ~200 GETs and pod lists in 2 s)."""
    import logging

    import aiohttp

    from kubeflow_bridge.clients.kube import AsyncKubeflowObjectClient
    from kubeflow_bridge.triggers.progress import ProgressReporter

    client = await AsyncKubeflowObjectClient.from_kubeconfig(runtime["kubeconfig"])
    names = [f"p{i}" for i in range(20)]
    for name in names:
        job = pytorchjob(name, "print('never runs')")
        job["spec"]["runPolicy"] = {"suspend": True}
        await client.create(PYTORCHJOB, job, namespace=namespace)
    sent: list[str] = []
    original = aiohttp.ClientSession._request

    async def counting(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(f"{method} {url}")
        return await original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", counting)
    logs = [logging.getLogger(f"test.progress.{name}") for name in names]
    waits = [
        asyncio.ensure_future(client.wait(PYTORCHJOB, n, namespace=namespace, timeout=60)) for n in names
    ]
    reporters = [
        ProgressReporter(client, PYTORCHJOB, n, namespace, log, interval=0.2)
        for n, log in zip(names, logs, strict=True)
    ]
    try:
        await asyncio.sleep(1.0)  # the shared watch lists once and delivers every object
        loops = [asyncio.ensure_future(r.run()) for r in reporters]
        steady_from = len(sent)
        await asyncio.sleep(2.0)
        steady = sent[steady_from:]
        assert len(steady) <= 2, steady  # at most the watch's own reconnect, not one read per wait
        assert all(r._last_line.startswith(f"PyTorchJob {namespace}/p") for r in reporters)
        for loop in loops:
            loop.cancel()
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        await client.close()


def _compiled_pipeline(tmp_path: Path) -> Path:
    pytest.importorskip("kfp")  # the trainer environment has the SDK (the client itself does not need it)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_kfb_clients_kfp_pipeline", Path(__file__).with_name("kfp_pipeline.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compile_to(tmp_path / "pipeline.yaml")


async def test_kfp_clients_against_runtime_kfp_api(runtime: dict[str, Any], tmp_path: Path) -> None:
    import yaml

    from kubeflow_bridge.clients.kfp import AsyncKfpClient, KfpClient, run_output_parameters

    compiled = _compiled_pipeline(tmp_path)
    assert runtime.get("kfp"), f"the runtime started no KFP API: {runtime}"
    spec = yaml.safe_load(compiled.read_text())
    with KfpClient(runtime["kfp"]) as client:
        client.healthz()
        exp = client.get_or_create_experiment("clients-e2e")
        assert client.get_or_create_experiment("clients-e2e")["experiment_id"] == exp["experiment_id"]
        pipeline = client.upload_pipeline(compiled, name=f"clients-e2e-{uuid.uuid4().hex[:6]}")
        assert client.list_pipeline_versions(pipeline["pipeline_id"])["pipeline_versions"]
        body = {
            "display_name": "sum",
            "experiment_id": exp["experiment_id"],
            "pipeline_spec": spec,
            "runtime_config": {"parameters": {"a": 2, "b": 3}},
        }
        run = client.create_run(body)
    async with AsyncKfpClient(runtime["kfp"]) as aclient:
        done = await aclient.wait_for_run(run["run_id"], timeout=180, poll_interval=0.5)
        assert done.state == "succeeded", done
        assert run_output_parameters(done.run)["sum"] == {"Output": 5}
        slow = await aclient.create_run(
            {**body, "display_name": "slow", "runtime_config": {"parameters": {"nap_seconds": 60.0}}}
        )
        await asyncio.sleep(1.0)
        await aclient.terminate_run(slow["run_id"])
        cancelled = await aclient.wait_for_run(slow["run_id"], timeout=60, poll_interval=0.5)
        assert cancelled.state == "cancelled" and not cancelled.succeeded
        listed = await aclient.list_runs(experiment_id=exp["experiment_id"], page_size=1)
        assert len(listed["runs"]) == 1 and listed.get("next_page_token")
