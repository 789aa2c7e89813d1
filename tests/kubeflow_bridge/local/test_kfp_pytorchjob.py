"""kfp.Client runs, through `local up`'s runtime, a compiled pipeline whose component creates a PyTorchJob."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import kfp_fixtures as fx

packages = fx.packages

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The local runtime daemon (Kubernetes API + controllers + S3 + the KFP API it mounts)."""
    state = tmp_path_factory.mktemp("runtime") / "state"
    log = open(state.parent / "daemon.log", "w")  # noqa: SIM115 - closed in the finalizer
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeflow_bridge.local.daemon", "--state-dir", str(state)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=str(state.parent),
    )
    try:
        info_file = state / "runtime.json"
        fx.wait_for(lambda: info_file.exists() or proc.poll() is not None, 60, what="runtime.json")
        assert proc.poll() is None, (state.parent / "daemon.log").read_text()[-3000:]
        info: dict[str, Any] = json.loads(info_file.read_text())
        assert info["kfp"], "the runtime did not mount the KFP API"
        info["token"] = (state / "token").read_text().strip()  # the daemon requires it, as `local up` does
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_kfp_client_pipeline_creates_a_pytorchjob_through_the_runtime(
    runtime: dict[str, Any], packages: dict[str, Path]
) -> None:
    import kfp
    from kubernetes import client, config

    kfp_client = kfp.Client(host=runtime["kfp"], existing_token=runtime["token"])
    result = kfp_client.create_run_from_pipeline_package(
        str(packages["pytorchjob"]), arguments={"name": "kfp-launched"}, run_name="launch-ptj"
    )
    done = kfp_client.wait_for_run_completion(result.run_id, timeout=150, sleep_duration=1)
    assert done.state == "SUCCEEDED", done.error
    with httpx.Client(
        base_url=runtime["kfp"], headers={"Authorization": f"Bearer {runtime['token']}"}
    ) as http:
        raw = fx.wait_run(http, result.run_id)
    assert fx.tasks_by_name(raw)["launch-pytorchjob"]["output_parameters"] == {"Output": "Succeeded"}

    api_client = config.new_client_from_config(config_file=runtime["kubeconfig"])
    job = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", "kfp-launched"
    )
    assert job["metadata"]["annotations"]["kubeflow-bridge.io/pipeline-run"] == result.run_id
    conditions = {c["type"]: c["status"] for c in job["status"]["conditions"]}
    assert conditions["Succeeded"] == "True"
    core = client.CoreV1Api(api_client)
    assert core.read_namespaced_pod_log("kfp-launched-master-0", "default").strip() == "rank 0 world 2"
    assert core.read_namespaced_pod_log("kfp-launched-worker-0", "default").strip() == "rank 1 world 2"


def test_s3_pipeline_root_puts_the_artifacts_on_the_runtime_s3(
    runtime: dict[str, Any], packages: dict[str, Path]
) -> None:
    import boto3
    import kfp

    from kubeflow_bridge.local.kfp.__main__ import _read_env_file

    kfp_client = kfp.Client(host=runtime["kfp"], existing_token=runtime["token"])
    result = kfp_client.create_run_from_pipeline_package(
        str(packages["demo"]), arguments={"a": 2, "b": 5}, pipeline_root="minio://mlpipeline/v2/artifacts"
    )
    done = kfp_client.wait_for_run_completion(result.run_id, timeout=120, sleep_duration=0.5)
    assert done.state == "SUCCEEDED", done.error
    with httpx.Client(
        base_url=runtime["kfp"], headers={"Authorization": f"Bearer {runtime['token']}"}
    ) as http:
        run = http.get(f"/apis/v2beta1/runs/{result.run_id}").json()
    uri = fx.tasks_by_name(run)["report"]["output_artifacts"]["data"]
    assert uri.startswith("s3://mlpipeline/v2/artifacts/demo-")
    env = _read_env_file(Path(runtime["env"]))
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"7"
