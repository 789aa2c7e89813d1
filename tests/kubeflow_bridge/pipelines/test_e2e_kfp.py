"""The compiled pipeline through the official kfp.Client against the local runtime's KFP API.

A threshold nothing clears: every step runs for real (Katib Experiment and PyTorchJob created by the
components through the bridge core, with the KFP identity), the gate says skip, deploy is skipped and
no InferenceService exists. The comparison collector reads the run.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from kubeflow_bridge import workflow
from kubeflow_bridge.compare.analysis import summarize_run
from kubeflow_bridge.compare.kfp_collector import kfp_run_from_details
from kubeflow_bridge.pipelines import steps
from kubeflow_bridge.pipelines.compile import COMPILED_PATH

ARGS = {
    "rows": 5000,
    "max_trials": 2,
    "tune_epochs": 1,
    "epochs": 2,
    "worker_replicas": 1,
    "f_score_threshold": 1.0,
    "window_end": "2026-02-01T00:00:00Z",
    "service_name": "e2e-kfp-vae",
}


@pytest.mark.e2e
def test_pipeline_runs_through_kfp_client(
    runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kfp

    from kubeflow_bridge.clients.kfp import KfpClient
    from kubeflow_bridge.clients.kube import EXPERIMENT, INFERENCESERVICE, KubeflowObjectClient

    for key, value in runtime_env.items():
        monkeypatch.setenv(key, value)
    host = runtime_env["KUBEFLOW_BRIDGE_KFP_ENDPOINT"]
    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
        str(COMPILED_PATH), arguments=ARGS, run_name="e2e", experiment_name="e2e-anomaly"
    )
    finished = client.wait_for_run_completion(result.run_id, timeout=900)
    assert finished.state == "SUCCEEDED", finished

    run: dict[str, Any] = KfpClient(host).get_run(result.run_id)
    collected = kfp_run_from_details(run)
    states = {s.step: s.state for s in collected.steps}
    assert states == {**{s: "succeeded" for s in workflow.STEPS if s != "deploy"}, "deploy": "skipped"}
    summary = summarize_run(collected)
    for step in ("ingest", "preprocess", "tune", "train", "evaluate"):
        assert next(s for s in summary["steps"] if s["step"] == step)["compute_seconds"] > 0, step
    assert collected.outcome.deployed is False
    assert set(collected.outcome.best_params or {}) == {"lr", "latent_dim"}
    assert collected.outcome.f_score is not None and collected.outcome.f_score < 1.0

    ns = workflow.DEFAULTS["namespace"]
    with KubeflowObjectClient.from_kubeconfig(os.environ["KUBECONFIG"]) as kube:
        details = run["run_details"]["task_details"]
        tune = next(d for d in details if d.get("display_name") == "tune")
        experiment = kube.get(EXPERIMENT, tune["output_parameters"]["experiment"], namespace=ns)
        assert experiment is not None
        annotations = experiment["metadata"]["annotations"]
        assert annotations["kubeflow-bridge.io/pipeline"] == "anomaly-pipeline"
        assert annotations["kubeflow-bridge.io/pipeline-task"] == "tune"
        assert experiment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeflow-bridge"
        # The gate said no: nothing was deployed.
        assert kube.get(INFERENCESERVICE, ARGS["service_name"], namespace=ns) is None

        # The deploy step itself, on this run's evaluated model: create, then a canary rollout with a
        # smoke request and promotion (what a second run that beats the first does).
        prefix = next(d for d in details if d.get("display_name") == "ingest")["output_parameters"]["prefix"]
        first = steps.deploy(
            prefix, f_score=0.5, canary_percent=30, service_name="e2e-canary", namespace=ns, run_id="r1"
        )
        assert first["promoted"] is False and first["smoke_status"] == "ok" and first["url"]
        # A second model (a copy under another run's prefix) so the rollout makes a new revision.
        from trainer import io

        other = f"{prefix}-next"
        io.write_bytes(
            workflow.evaluated_model_uri(other), io.read_bytes(workflow.evaluated_model_uri(prefix))
        )
        second = steps.deploy(
            other, f_score=0.6, canary_percent=30, service_name="e2e-canary", namespace=ns, run_id="r2"
        )
        assert second["promoted"] is True and second["smoke_status"] == "ok"
        isvc = kube.get(INFERENCESERVICE, "e2e-canary", namespace=ns)
        assert isvc is not None
        assert isvc["metadata"]["annotations"]["kubeflow-bridge.io/metric.composite_f1"] == "0.6"
        assert isvc["metadata"]["annotations"]["kubeflow-bridge.io/pipeline-run"] == "r2"
        assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]  # promoted
        traffic = isvc["status"]["components"]["predictor"]["traffic"]
        assert traffic == [
            {"latestRevision": True, "percent": 100, "revisionName": "e2e-canary-predictor-00002"}
        ]
