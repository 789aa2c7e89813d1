from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from kubeflow_bridge.operators._base import KubeflowOperatorError
from kubeflow_bridge.operators.gate import ModelGateBranchOperator
from kubeflow_bridge.operators.katib import KatibExperimentOperator
from kubeflow_bridge.operators.kserve import KServeDeployOperator
from kubeflow_bridge.workflow.gate import metric_annotation

from .conftest import FakeObjectClient, FakeStore, FakeTI

IMAGE = "kubeflow-bridge/trainer:latest"


def serve_first(context: dict[str, Any], metrics: dict[str, Any] | None = None) -> Any:
    """The model that serves before a test's deploy: InferenceService ``svc`` with model 1."""
    return KServeDeployOperator(
        task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", metrics=metrics, deferrable=False
    ).execute(context)


def run_context(run_id: str) -> dict[str, Any]:
    """The context of another DAG run's try (a new identity, an empty task state)."""
    return {"ti": FakeTI(run_id=run_id), "task_state_store": FakeStore()}


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


def test_a_deploy_ready_within_the_hold_finishes_on_the_worker_and_a_slow_one_defers_held(
    fake_client: FakeObjectClient,
    context: dict,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The trigger hold (trigger_fire_delay) guards jobs that end within it of their deferral, so the
    # operator waits that long on the worker first: done by then, no deferral and no hold at all.
    monkeypatch.setenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", "3")
    fake_client.progress = ready_isvc
    started = time.monotonic()
    result = KServeDeployOperator(
        task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", deferrable=True, poll_interval=1
    ).execute(context)
    assert result["generation"] == 1 and result["url"] == "http://127.0.0.1:1/anomaly"
    assert time.monotonic() - started < 2  # not held: it returned as soon as the service was Ready
    # The task log says where the service stood, as a trigger's progress line would.
    assert (
        "InferenceService team-a/svc: Ready=True; url http://127.0.0.1:1/anomaly" in capsys.readouterr().out
    )
    # Still not Ready after the wait: deferred, and its trigger held from the deferral on.
    fake_client.progress = None
    waited = time.monotonic()
    with pytest.raises(TaskDeferred) as deferred:
        KServeDeployOperator(
            task_id="d", name="svc", image=IMAGE, model_uri="s3://m/2", deferrable=True, poll_interval=1
        ).execute(run_context("r2"))
    assert 2.5 < time.monotonic() - waited < 10  # the wait on the worker, then the deferral
    fire_not_before = deferred.value.trigger.fire_not_before
    assert fire_not_before is not None and 2 < fire_not_before - time.time() <= 3


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

    ctx = run_context("manual__2")
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
    serve_first(context)

    ctx = run_context("r2")
    with pytest.raises(TaskDeferred) as deferred:
        KServeDeployOperator(
            task_id="d", name="svc", image=IMAGE, model_uri="s3://m/2", deferrable=True
        ).execute(ctx)
    assert deferred.value.trigger.min_generation == 2


def test_kserve_promotion_wait_is_a_second_deferral_and_no_worker_waits(
    fake_client: FakeObjectClient, context: dict
) -> None:
    fake_client.progress = ready_isvc
    serve_first(context)

    ctx = run_context("r2")
    op = KServeDeployOperator(
        task_id="d",
        name="svc",
        image=IMAGE,
        model_uri="s3://m/2",
        canary_traffic_percent=20,
        metrics={"f1": 0.9},
    )
    waits_before = len([c for c in fake_client.calls if c[0] == "wait"])
    with pytest.raises(TaskDeferred) as first:
        op.execute(ctx)
    assert first.value.method_name == "execute_complete" and first.value.trigger.min_generation == 2
    # The trigger (the controller, here) reports generation 2 Ready; the worker resumes, promotes, defers again.
    fake_client.wait(op.kind, "svc", namespace="team-a", timeout=1)
    resumed = KServeDeployOperator(
        task_id="d",
        name="svc",
        image=IMAGE,
        model_uri="s3://m/2",
        canary_traffic_percent=20,
        metrics={"f1": 0.9},
    )
    event = {"status": "succeeded", "reason": "Ready", "message": "", "name": "svc", "namespace": "team-a"}
    with pytest.raises(TaskDeferred) as second:
        resumed.execute_complete(ctx, event)
    assert second.value.method_name == "execute_promoted" and second.value.trigger.min_generation == 3
    assert second.value.trigger.on_kill_action == "rollback"
    live = fake_client.objects[("inferenceservices", "team-a", "svc")]
    assert "canaryTrafficPercent" not in live["spec"]["predictor"]  # promoted
    assert live["metadata"]["annotations"][metric_annotation("f1")] == "0.9"  # recorded on promotion
    fake_client.wait(op.kind, "svc", namespace="team-a", timeout=1)
    result = resumed.execute_promoted(ctx, event)
    assert result["promoted"] and result["generation"] == 3
    # Only the test's own stand-ins for the trigger waited: the worker never did.
    assert len([c for c in fake_client.calls if c[0] == "wait"]) == waits_before + 2


def test_kserve_refuses_if_exists_replace_and_never_deletes_on_kill(fake_client: FakeObjectClient) -> None:
    with pytest.raises(ValueError, match="would delete the serving InferenceService"):
        KServeDeployOperator(task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", if_exists="replace")
    with pytest.raises(ValueError, match="on_kill_action must be one of rollback, keep"):
        KServeDeployOperator(
            task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", on_kill_action="delete"
        )


def test_killing_a_deploy_rolls_back_only_the_canary(fake_client: FakeObjectClient, context: dict) -> None:
    fake_client.progress = ready_isvc
    serve_first(context, metrics={"f1": 0.7})

    op = KServeDeployOperator(
        task_id="d",
        name="svc",
        image=IMAGE,
        model_uri="s3://m/2",
        canary_traffic_percent=30,
        metrics={"f1": 0.9},
    )
    with pytest.raises(TaskDeferred):
        op.execute(run_context("r2"))
    op.on_kill()  # a user killed the task while the canary was being tested
    live = fake_client.objects[("inferenceservices", "team-a", "svc")]
    assert live["spec"]["predictor"]["canaryTrafficPercent"] == 0  # the previous model serves everything
    assert live["metadata"]["annotations"][metric_annotation("f1")] == "0.7"
    assert not [c for c in fake_client.calls if c[0] in ("delete", "cancel")]
    # With nothing in flight (a plain create), a kill changes nothing at all.
    patches = len([c for c in fake_client.calls if c[0] == "patch"])
    first = KServeDeployOperator(task_id="d", name="other", image=IMAGE, model_uri="s3://m/1")
    with pytest.raises(TaskDeferred):
        first.execute(run_context("r3"))
    first.on_kill()
    assert len([c for c in fake_client.calls if c[0] == "patch"]) == patches
    assert ("inferenceservices", "team-a", "other") in fake_client.objects


@contextlib.contextmanager
def predictor(status: int, body: bytes) -> Iterator[tuple[str, list[Any]]]:
    """A real HTTP server standing in for the predictor: answers every POST with ``status`` and ``body``."""
    seen: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None: ...

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


def test_kserve_failed_smoke_test_rolls_back_the_canary(fake_client: FakeObjectClient, context: dict) -> None:
    with predictor(500, b'{"error": "model failed to load"}') as (url, _seen):
        fake_client.progress = lambda obj: {**ready_isvc(obj), "url": url}
        serve_first(context, metrics={"f1": 0.7})

        ctx = run_context("r2")
        op = KServeDeployOperator(
            task_id="d",
            name="svc",
            image=IMAGE,
            model_uri="s3://m/2",
            canary_traffic_percent=10,
            smoke_payload={"instances": [[0.1]]},
            metrics={"f1": 0.9},
            deferrable=False,
        )
        with pytest.raises(KubeflowOperatorError, match=r"answered 500.*rolled back"):
            op.execute(ctx)
    live = fake_client.objects[("inferenceservices", "team-a", "svc")]
    assert live["spec"]["predictor"]["canaryTrafficPercent"] == 0
    # The gate's record still describes the model that serves, not the rolled-back candidate.
    assert live["metadata"]["annotations"][metric_annotation("f1")] == "0.7"


def test_kserve_smoke_request_against_a_real_http_server(
    fake_client: FakeObjectClient, context: dict
) -> None:
    with predictor(200, b'{"predictions": [0.1]}') as (url, seen):
        fake_client.progress = lambda obj: {**ready_isvc(obj), "url": url}
        result = KServeDeployOperator(
            task_id="d",
            name="svc",
            image=IMAGE,
            model_uri="s3://m/1",
            smoke_payload={"instances": [[1.0]]},
            deferrable=False,
        ).execute(context)
    assert result["smoke_status"] == "ok"
    assert seen == [("/v1/models/anomaly-vae:predict", {"instances": [[1.0]]})]


def test_gate_operator_compares_with_the_live_services_annotation(
    fake_client: FakeObjectClient, context: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_client.progress = ready_isvc
    serve_first(context, metrics={"f1": 0.9})
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
    assert context["ti"].xcoms["gate"]["serving_score"] == 0.9
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

    monkeypatch.setenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", "soon")
    ctx = run_context("r1")
    with pytest.raises(AirflowConfigException, match="trigger_fire_delay"):
        KServeDeployOperator(
            task_id="d", name="svc", image=IMAGE, model_uri="s3://m/1", deferrable=True
        ).execute(ctx)
    assert fake_client.creates() == []
