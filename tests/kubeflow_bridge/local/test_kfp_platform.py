"""kfp-kubernetes platform config on the runtime's KFP API: secrets and config maps as env from the
runtime's Kubernetes API, no-op settings said in the task log, volumes refused at create time.

The platform document is written as kfp-kubernetes compiles it (``use_secret_as_env``,
``use_config_map_as_env``, ``add_node_selector``, ``mount_pvc``): the second YAML document of the
package, ``platforms.kubernetes.deploymentSpec.executors.<executor>``.
"""

# No `from __future__ import annotations` here: kfp reads the components' annotations as types.
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kfp import compiler, dsl

from .conftest import RuntimeHandle
from .kfp_fixtures import tasks_by_name, wait_run

pytestmark = pytest.mark.e2e


@dsl.component
def show_env() -> str:
    import os

    return f"{os.environ.get('DB_PASSWORD')}|{os.environ.get('MODE')}|{os.environ.get('POD')}"


@dsl.pipeline
def with_settings():  # type: ignore[no-untyped-def]
    show_env()


def _package(tmp_path: Path, settings: dict[str, Any]) -> Path:
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(with_settings, str(path))
    spec = yaml.safe_load(path.read_text())
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-show-env": settings}}}}}
    path.write_text(yaml.safe_dump(spec) + "---\n" + yaml.safe_dump(platform))
    return path


def test_secret_and_config_map_env_no_ops_and_refusals(runtime: RuntimeHandle, tmp_path: Path) -> None:
    import kfp

    assert runtime.kfp is not None
    with runtime.http() as c:
        ns = "default"
        c.post(
            f"/api/v1/namespaces/{ns}/secrets",
            json={"metadata": {"name": "db"}, "stringData": {}, "data": {"password": "czNjcjN0"}},
        )
        c.post(
            f"/api/v1/namespaces/{ns}/configmaps",
            json={"metadata": {"name": "cfg"}, "data": {"mode": "fast"}},
        )
    settings = {
        "secretAsEnv": [
            {
                "secretNameParameter": {"runtimeValue": {"constant": "db"}},
                "keyToEnv": [{"secretKey": "password", "envVar": "DB_PASSWORD"}],
            }
        ],
        "configMapAsEnv": [
            {"configMapName": "cfg", "keyToEnv": [{"configMapKey": "mode", "envVar": "MODE"}]}
        ],
        "fieldPathAsEnv": [{"name": "POD", "fieldPath": "metadata.name"}],
        "nodeSelector": {"labels": {"accelerator": "a100"}},
        "podMetadata": {"labels": {"team": "ml"}},
    }
    client = kfp.Client(host=runtime.kfp)
    run = client.create_run_from_pipeline_package(
        str(_package(tmp_path, settings)), arguments={}, enable_caching=False
    )
    with httpx.Client(base_url=runtime.kfp, timeout=30) as http:
        done = wait_run(http, run.run_id)
        assert done["state"] == "SUCCEEDED", done.get("error")
        task = tasks_by_name(done)["show-env"]
        assert task["output_parameters"]["Output"] == "s3cr3t|fast|show-env"
        log = http.get("/k8s/pod/logs", params={"podname": task["pod_name"], "runid": run.run_id}).text
        assert "nodeSelector has no effect on a local process" in log and "podMetadata" in log
        assert "s3cr3t" not in log  # the secret's value is not logged

        missing = {"secretAsEnv": [{"secretName": "nope", "keyToEnv": [{"secretKey": "k", "envVar": "K"}]}]}
        failed = client.create_run_from_pipeline_package(
            str(_package(tmp_path, missing)), arguments={}, enable_caching=False
        )
        failed_run = wait_run(http, failed.run_id)
        assert failed_run["state"] == "FAILED" and 'Secret "nope" not found' in failed_run["error"]["message"]

        before = len(http.get("/apis/v2beta1/runs", params={"page_size": 100}).json().get("runs") or [])
        volume = {
            "pvcMount": [{"pvcNameParameter": {"runtimeValue": {"constant": "data"}}, "mountPath": "/data"}]
        }
        with pytest.raises(Exception, match="pvcMount cannot be mounted by the local runtime"):
            client.create_run_from_pipeline_package(str(_package(tmp_path, volume)), arguments={})
        after = len(http.get("/apis/v2beta1/runs", params={"page_size": 100}).json().get("runs") or [])
        assert after == before  # refused before anything was created
