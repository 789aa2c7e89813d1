from __future__ import annotations

import time
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from kubeflow_bridge.operators._base import KubeflowOperatorError
from kubeflow_bridge.operators.gate import ModelGateBranchOperator, gate_decision
from kubeflow_bridge.operators.katib import KatibExperimentOperator
from kubeflow_bridge.operators.kserve import KServeDeployOperator, SmokeTestError, metric_annotation
from kubeflow_bridge.triggers.kubeflow import FIRE_DELAY_SECONDS

from .conftest import FakeObjectClient

IMAGE = "kubeflow-bridge/trainer:latest"


def katib_done(obj: dict) -> dict:
    return {
        "conditions": [
            {"type": "Succeeded", "status": "True", "reason": "ExperimentGoalReached", "message": "ok"}
        ],
        "currentOptimalTrial": {
            "bestTrialName": "t-1",
            "parameterAssignments": [{"name": "lr", "value": "0.005"}, {"name": "hidden", "value": "32"}],
            "observation": {"metrics": [{"name": "val_loss", "min": "0.12", "max": "0.5", "latest": "0.2"}]},
        },
        "trials": 4,
        "trialsSucceeded": 3,
        "trialsFailed": 1,
    }


def test_katib_builds_experiment_and_returns_typed_best_trial(
    fake_client: FakeObjectClient, context: dict
) -> None:
    fake_client.progress = katib_done
    op = KatibExperimentOperator(
        task_id="tune",
        image=IMAGE,
        objective_metric="val_loss",
        search_space=[
            {"name": "lr", "type": "double", "min": "0.0001", "max": "0.01"},
            {"name": "hidden", "type": "int", "min": "8", "max": "64"},
        ],
        trial_args=["--data", "s3://data/x"],
        max_trial_count="4",
        deferrable=False,
    )
    result = op.execute(context)
    assert result["best_parameters"] == {"lr": 0.005, "hidden": 32}
    assert isinstance(result["best_parameters"]["hidden"], int)
    assert result["objective_value"] == 0.12
    assert result["trial_counts"]["trialsSucceeded"] == 3
    (exp,) = fake_client.objects.values()
    assert exp["spec"]["maxTrialCount"] == 4 and exp["spec"]["objective"]["objectiveMetricName"] == "val_loss"
    assert (
        context["ti"].xcoms["_link_KatibExperimentLink"]
        == f"http://dash.example/_/katib/experiment/team-a/{exp['metadata']['name']}"
    )


def ready_isvc(obj: dict) -> dict:
    return {
        "observedGeneration": obj["metadata"]["generation"],
        "url": "http://127.0.0.1:1/anomaly",
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {"traffic": [{"revisionName": "r2", "percent": 100, "latestRevision": True}]}
        },
    }


def test_kserve_creates_then_patches_with_canary_and_promotes(
    fake_client: FakeObjectClient, context: dict
) -> None:
    fake_client.progress = ready_isvc
    first = KServeDeployOperator(
        task_id="deploy",
        name="anomaly-vae",
        image=IMAGE,
        model_uri="s3://m/1",
        metrics={"f1": 0.8},
        deferrable=False,
    )
    result = first.execute(context)
    assert (
        result["url"] == "http://127.0.0.1:1/anomaly" and result["generation"] == 1 and not result["promoted"]
    )
    obj = fake_client.objects[("inferenceservices", "team-a", "anomaly-vae")]
    assert obj["metadata"]["annotations"][metric_annotation("f1")] == "0.8"

    from .conftest import FakeStore, FakeTI

    ctx = {"ti": FakeTI(run_id="manual__2"), "task_state_store": FakeStore()}
    second = KServeDeployOperator(
        task_id="deploy",
        name="anomaly-vae",
        image=IMAGE,
        model_uri="s3://m/2",
        canary_traffic_percent="20",
        deferrable=False,
    )
    result = second.execute(ctx)
    patches = [c for c in fake_client.calls if c[0] == "patch"]
    assert len(patches) == 2  # the new spec with the canary, then the promotion
    assert result["promoted"] and result["generation"] == 3
    obj = fake_client.objects[("inferenceservices", "team-a", "anomaly-vae")]
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert "s3://m/2" in obj["spec"]["predictor"]["containers"][0]["command"]
    assert fake_client.creates() == ["anomaly-vae"]


def test_kserve_waits_for_the_new_generation_in_the_trigger(
    fake_client: FakeObjectClient, context: dict
) -> None:
    fake_client.progress = ready_isvc
    KServeDeployOperator(
        task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", deferrable=False
    ).execute(context)
    from .conftest import FakeStore, FakeTI

    ctx = {"ti": FakeTI(run_id="r2"), "task_state_store": FakeStore()}
    with pytest.raises(TaskDeferred) as deferred:
        KServeDeployOperator(
            task_id="d", name="svc", image=IMAGE, model_uri="s3://m/2", deferrable=True
        ).execute(ctx)
    assert deferred.value.trigger.min_generation == 2
    fire_not_before = deferred.value.trigger.fire_not_before
    assert fire_not_before is not None and 0 < fire_not_before - time.time() <= FIRE_DELAY_SECONDS


def test_kserve_failed_smoke_test_rolls_back_the_canary(
    fake_client: FakeObjectClient, context: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_client.progress = ready_isvc
    KServeDeployOperator(
        task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", deferrable=False
    ).execute(context)

    def broken(self: Any, url: str | None, *args: Any) -> str:
        raise SmokeTestError("smoke request answered 500")

    monkeypatch.setattr(KServeDeployOperator, "_smoke", broken)
    from .conftest import FakeStore, FakeTI

    ctx = {"ti": FakeTI(run_id="r2"), "task_state_store": FakeStore()}
    op = KServeDeployOperator(
        task_id="d",
        name="svc",
        image=IMAGE,
        model_uri="s3://m/2",
        canary_traffic_percent=10,
        smoke_payload={"instances": [[0.1]]},
        deferrable=False,
    )
    with pytest.raises(SmokeTestError, match="answered 500"):
        op.execute(ctx)
    assert (
        fake_client.objects[("inferenceservices", "team-a", "svc")]["spec"]["predictor"][
            "canaryTrafficPercent"
        ]
        == 0
    )


def test_kserve_smoke_request_against_a_real_http_server(
    fake_client: FakeObjectClient, context: dict
) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"predictions": [0.1]}')

        def log_message(self, *args: Any) -> None: ...

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        fake_client.progress = lambda obj: {**ready_isvc(obj), "url": url}
        result = KServeDeployOperator(
            task_id="d",
            name="svc",
            image=IMAGE,
            model_uri="s3://m/1",
            smoke_payload={"instances": [[1.0]]},
            deferrable=False,
        ).execute(context)
    finally:
        server.shutdown()
    assert result["smoke_status"] == "ok"
    assert seen == [("/v1/models/anomaly-vae:predict", {"instances": [[1.0]]})]


@pytest.mark.parametrize(
    ("metric", "threshold", "serving", "higher", "deploy"),
    [
        (0.9, 0.8, None, True, True),
        (0.7, 0.8, None, True, False),
        (0.9, 0.8, 0.95, True, False),
        (0.96, 0.8, 0.95, True, True),
        (0.1, 0.2, 0.15, False, True),
        (0.18, 0.2, 0.15, False, False),
    ],
)
def test_gate_decision(
    metric: float, threshold: float, serving: float | None, higher: bool, deploy: bool
) -> None:
    assert gate_decision(metric, threshold, serving, higher_is_better=higher)[0] is deploy


def test_gate_operator_compares_with_the_live_services_annotation(
    fake_client: FakeObjectClient, context: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_client.progress = ready_isvc
    KServeDeployOperator(
        task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", metrics={"f1": 0.9}, deferrable=False
    ).execute(context)
    monkeypatch.setattr(ModelGateBranchOperator, "object_client", lambda self: fake_client)

    def gate(value: Any) -> Any:
        return ModelGateBranchOperator(
            task_id="gate",
            metric_value=value,
            threshold="0.5",
            metric_name="f1",
            service_name="svc",
            deploy_task_ids="deploy",
            skip_task_ids=["skip"],
        ).choose_branch(context)

    assert gate("0.95") == "deploy"
    assert gate("0.85") == ["skip"]
    assert context["ti"].xcoms["gate"]["serving_metric"] == 0.9
    with pytest.raises(ValueError, match="metric_value must be a number"):
        gate("None")


def test_katib_failed_experiment_is_a_clear_error(fake_client: FakeObjectClient, context: dict) -> None:
    fake_client.progress = lambda obj: {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "ExperimentMaxFailedTrialsReached",
                "message": "3 trials failed",
            }
        ]
    }
    with pytest.raises(
        KubeflowOperatorError,
        match=r"Experiment team-a/.* failed: ExperimentMaxFailedTrialsReached 3 trials failed",
    ):
        KatibExperimentOperator(
            task_id="tune",
            image=IMAGE,
            objective_metric="val_loss",
            search_space=[{"name": "lr", "type": "double", "min": "0.1", "max": "0.2"}],
            deferrable=False,
        ).execute(context)


def test_katib_algorithm_settings_are_templated(fake_client: FakeObjectClient, context: dict) -> None:
    # A DAG seeds the search from a param, so two runs of the same inputs try the same trials.
    fake_client.progress = katib_done
    op = KatibExperimentOperator(
        task_id="tune",
        image=IMAGE,
        objective_metric="val_loss",
        search_space=[{"name": "lr", "type": "double", "min": "0.0001", "max": "0.01"}],
        algorithm_settings={"random_state": "{{ params.seed }}"},
        deferrable=False,
    )
    op.render_template_fields({**context, "params": {"seed": 7}})
    op.execute(context)
    (exp,) = fake_client.objects.values()
    assert exp["spec"]["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "7"}]


def test_a_bad_fire_delay_setting_fails_before_the_object_is_created(
    fake_client: FakeObjectClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.exceptions import AirflowConfigException

    from .conftest import FakeStore, FakeTI

    monkeypatch.setenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", "soon")
    ctx = {"ti": FakeTI(run_id="r1"), "task_state_store": FakeStore()}
    with pytest.raises(AirflowConfigException, match="trigger_fire_delay"):
        KServeDeployOperator(
            task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", deferrable=True
        ).execute(ctx)
    assert fake_client.creates() == []
