"""The local KFP API in Kubeflow's multi-user mode (``--multi-user``; ``local up --kfp-multi-user``):
experiments live in profile namespaces, runs in their experiment's, and list calls name a namespace,
as KFP answers them. Driven with kfp.Client(namespace=...) and the bridge's KfpClient."""

# No `from __future__ import annotations` here: kfp reads the components' annotations as types.
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kubeflow_bridge.clients.kfp import KfpClient

from . import kfp_fixtures as fx
from . import kfp_pipeline_set as pset

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fx.KfpServer]:
    state = tmp_path_factory.mktemp("kfp-multi") / "state"
    state.mkdir()
    srv = fx.KfpServer(state, "--multi-user").start()
    yield srv
    srv.stop()


def test_namespaces_scope_experiments_and_runs(server: fx.KfpServer) -> None:
    import kfp

    team_a = kfp.Client(host=server.url, namespace="team-a")
    team_b = kfp.Client(host=server.url, namespace="team-b")
    run_a = team_a.create_run_from_pipeline_func(
        pset.hello, arguments={"a": 2}, experiment_name="tuning", namespace="team-a"
    )
    run_b = team_b.create_run_from_pipeline_func(
        pset.hello, arguments={"a": 5}, experiment_name="tuning", namespace="team-b"
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/apis/v2beta1/healthz").json()["multi_user"] is True
        for run in (run_a, run_b):
            assert fx.wait_run(http, run.run_id)["state"] == "SUCCEEDED"
        exp_a = team_a.get_experiment(experiment_name="tuning", namespace="team-a")
        exp_b = team_b.get_experiment(experiment_name="tuning", namespace="team-b")
        assert exp_a.experiment_id != exp_b.experiment_id and exp_a.namespace == "team-a"
        assert [r.run_id for r in team_a.list_runs(namespace="team-a").runs] == [run_a.run_id]
        assert [r.run_id for r in team_b.list_runs(experiment_id=exp_b.experiment_id).runs] == [run_b.run_id]
        assert [e.display_name for e in team_b.list_experiments(namespace="team-b").experiments] == ["tuning"]

        # what KFP refuses in multi-user mode, with its words
        def refused(response: httpx.Response, words: str) -> None:
            assert response.status_code == 400 and words in response.json()["message"], response.text

        refused(http.get("/apis/v2beta1/experiments"), "empty namespace and experiment id in multi-user mode")
        refused(http.get("/apis/v2beta1/runs"), "empty namespace and experiment id in multi-user mode")
        refused(
            http.post("/apis/v2beta1/experiments", json={"display_name": "x"}),
            "empty namespace in multi-user mode",
        )
        spec: dict[str, Any] = http.get(f"/apis/v2beta1/runs/{run_a.run_id}").json()["pipeline_spec"]
        refused(
            http.post("/apis/v2beta1/runs", json={"display_name": "r", "pipeline_spec": spec}),
            "Experiment id can not be empty in multi-user mode",
        )

    # the bridge's own client passes the namespace where KFP needs it
    with KfpClient(server.url, namespace="team-c") as bridge:
        exp = bridge.get_or_create_experiment("bridge-exp", namespace="team-c")
        assert exp["namespace"] == "team-c"
        assert (
            bridge.get_or_create_experiment("bridge-exp", namespace="team-c")["experiment_id"]
            == exp["experiment_id"]
        )
