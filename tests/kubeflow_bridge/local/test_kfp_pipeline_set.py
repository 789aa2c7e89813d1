"""Pipelines compiled with the KFP SDK's default options run on the local KFP API as on Kubeflow.

The set (kfp_pipeline_set.py) is submitted at once with kfp.Client.create_run_from_pipeline_func,
the way the KFP docs run a pipeline: kfp self-install preamble, packages_to_install (from the package
index), container components through the image map, optional inputs, exit handlers with
PipelineTaskFinalStatus, loops, sub-pipelines, retries, importers. Then caching across runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from . import kfp_fixtures as fx
from . import kfp_pipeline_set as pset

kfp_server = fx.kfp_server
http = fx.http
kfp_client = fx.kfp_client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished(
    kfp_client: Any, http: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    work = tmp_path_factory.mktemp("pipeline-set")
    (work / "imported.txt").write_text("abc")
    extra = {"retries": {"marker": str(work / "marker")}, "importer": {"uri": str(work / "imported.txt")}}
    run_ids = {}
    for case in pset.CASES:
        result = kfp_client.create_run_from_pipeline_func(
            case.pipeline,
            arguments={**case.arguments, **extra.get(case.name, {})},
            run_name=case.name,
            experiment_name="pipeline-set",
        )
        run_ids[case.name] = result.run_id
    return {name: fx.wait_run(http, run_id, timeout=300) for name, run_id in run_ids.items()}


@pytest.mark.parametrize("case", pset.CASES, ids=[c.name for c in pset.CASES])
def test_pipeline_runs_as_on_kubeflow(case: pset.Case, finished: dict[str, dict[str, Any]]) -> None:
    run = finished[case.name]
    assert run["state"] == case.state, run.get("error")
    case.check(run, fx.tasks_by_name(run))


def test_a_second_identical_run_is_served_from_the_cache_unless_caching_is_off(
    kfp_client: Any, http: httpx.Client, finished: dict[str, dict[str, Any]], kfp_server: fx.KfpServer
) -> None:
    first = fx.tasks_by_name(finished["artifacts"])
    again = kfp_client.create_run_from_pipeline_func(pset.artifacts, arguments={}, run_name="artifacts-again")
    tasks = fx.tasks_by_name(fx.wait_run(http, again.run_id))
    for name in ("write-data", "read-data"):
        # KFP reports a cache hit as SKIPPED ("skipped, for example, due to caching") with the outputs
        assert tasks[name]["state"] == "SKIPPED" and tasks[name]["cache_fingerprint"]
        assert tasks[name]["output_parameters"] == first[name]["output_parameters"]
        assert tasks[name]["pod_name"] == ""
    assert tasks["write-data"]["output_artifacts"] == first["write-data"]["output_artifacts"]

    changed = kfp_client.create_run_from_pipeline_func(pset.artifacts, arguments={"text": "other"})
    tasks = fx.tasks_by_name(fx.wait_run(http, changed.run_id))
    assert tasks["write-data"]["state"] == "SUCCEEDED" and tasks["read-data"]["output_parameters"] == {
        "Output": "OTHER/5"
    }

    uncached = kfp_client.create_run_from_pipeline_func(pset.artifacts, arguments={}, enable_caching=False)
    tasks = fx.tasks_by_name(fx.wait_run(http, uncached.run_id))
    assert tasks["write-data"]["state"] == "SUCCEEDED" and "cache_fingerprint" not in tasks["write-data"]

    # the cache lives in the state folder: it survives a restart of the API
    kfp_server.stop()
    kfp_server.start()
    with httpx.Client(base_url=kfp_server.url, timeout=30) as fresh:
        import kfp

        after = kfp.Client(host=kfp_server.url).create_run_from_pipeline_func(pset.hello, arguments={})
        tasks = fx.tasks_by_name(fx.wait_run(fresh, after.run_id))
    assert tasks["add"]["state"] == "SKIPPED" and tasks["add"]["output_parameters"] == {"Output": 3}
    assert Path(kfp_server.state_dir, "cache").is_dir()
