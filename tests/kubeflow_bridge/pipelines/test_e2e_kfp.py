"""The compiled pipeline through the official kfp.Client against the local runtime's KFP API.

On a team's own dataset (daily-partitioned Parquet on the runtime's S3, four of its channels) with a
threshold nothing clears: every step runs for real (Katib Experiment and TrainJob created by the
components through the bridge core, with the KFP identity), the gate says skip, deploy is skipped and
no InferenceService exists. The comparison collector reads the run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kubeflow_bridge import workflow
from kubeflow_bridge.compare.analysis import summarize_run
from kubeflow_bridge.compare.kfp_collector import kfp_run_from_details
from kubeflow_bridge.pipelines import steps
from kubeflow_bridge.pipelines.compile import COMPILED_PATH
from kubeflow_bridge.workflow.tracking import EXPERIMENT as MLFLOW_EXPERIMENT
from kubeflow_bridge.workflow.tracking import MlflowRest

#: Four of the telemetry's channels, under the team's own names for time and label.
CHANNELS = "cabin_temp,cabin_humidity,co2_partial_pressure,o2_partial_pressure"
DATASET = "s3://kubeflow-bridge/datasets/telemetry-parquet/"
ARGS = {
    "source": DATASET,
    "time_column": "time",
    "feature_columns": CHANNELS,
    "label_column": "is_anomaly",
    "lookback": "4D",
    "max_trials": 2,
    "tune_epochs": 1,
    "epochs": 2,
    "worker_replicas": 1,
    "f_score_threshold": 1.0,
    "window_end": "2026-02-01T00:00:00Z",
    "service_name": "e2e-kfp-vae",
}


def put_partitioned_dataset(tmp_path: Path) -> None:
    """Eight days of minutes up to 2026-02-03 as ``date=YYYY-MM-DD/part-0.parquet`` files under DATASET."""
    import pandas as pd

    from trainer import io
    from trainer.__main__ import main

    assert (
        main(["ingest", "--out", str(tmp_path / "raw"), "--rows", str(8 * 1440), "--end", "2026-02-03"]) == 0
    )
    df = pd.concat(pd.read_parquet(f) for f in sorted((tmp_path / "raw").glob("month=*/*.parquet")))
    df = df.rename(columns={"timestamp": "time", "label": "is_anomaly"}).drop(columns=["anomaly_type"])
    for day, rows in df.groupby(df["time"].dt.strftime("%Y-%m-%d")):
        rows.to_parquet(tmp_path / "day.parquet", index=False)
        io.write_bytes(f"{DATASET}date={day}/part-0.parquet", (tmp_path / "day.parquet").read_bytes())


@pytest.mark.e2e
def test_pipeline_runs_through_kfp_client(
    runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import kfp

    from kubeflow_bridge.clients.kfp import KfpClient
    from kubeflow_bridge.clients.kube import EXPERIMENT, INFERENCESERVICE, TRAINJOB, KubeflowObjectClient
    from trainer import io

    for key, value in runtime_env.items():
        monkeypatch.setenv(key, value)
    put_partitioned_dataset(tmp_path)
    host = runtime_env["KUBEFLOW_BRIDGE_KFP_ENDPOINT"]
    # `local up` requires a token, as Kubeflow does: the SDK takes it as a user passes a token in.
    token = Path(runtime_env["KF_PIPELINES_SA_TOKEN_PATH"]).read_text().strip()
    client = kfp.Client(host=host, existing_token=token)
    # The runtime's MLflow server, as the pipeline's tracking_uri input (a KFP run has no Airflow connection).
    tracking = {"tracking_uri": runtime_env["MLFLOW_TRACKING_URI"], "registered_model": "e2e-kfp-detector"}
    result = client.create_run_from_pipeline_package(
        str(COMPILED_PATH), arguments={**ARGS, **tracking}, run_name="e2e", experiment_name="e2e-anomaly"
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
    assert collected.outcome.training_kind == "TrainJob"  # training_api's default

    ns = workflow.DEFAULTS["namespace"]
    with KubeflowObjectClient.from_kubeconfig(os.environ["KUBECONFIG"]) as kube:
        details = run["run_details"]["task_details"]
        tune = next(d for d in details if d.get("display_name") == "tune")
        experiment = kube.get(EXPERIMENT, tune["output_parameters"]["experiment"], namespace=ns)
        assert experiment is not None
        annotations = experiment["metadata"]["annotations"]
        assert annotations["kubeflow-bridge.io/pipeline"] == "anomaly-pipeline"
        assert annotations["kubeflow-bridge.io/pipeline-task"] == "tune"
        # dsl.PIPELINE_JOB_ID_PLACEHOLDER resolved to the run's id, as on KFP (kfp.local makes one up).
        assert annotations["kubeflow-bridge.io/pipeline-run"] == result.run_id
        assert experiment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeflow-bridge"
        # train: a 2-node TrainJob (worker_replicas=1) on Kubeflow Trainer v2, with the run's identity.
        train = next(d for d in details if d.get("display_name") == "train")["output_parameters"]
        assert train["kind"] == "TrainJob"
        job = kube.get(TRAINJOB, train["job"], namespace=ns)
        assert job is not None and job["spec"]["trainer"]["numNodes"] == 2
        assert job["metadata"]["annotations"]["kubeflow-bridge.io/pipeline-task"] == "train"
        # The gate said no: nothing was deployed.
        assert kube.get(INFERENCESERVICE, ARGS["service_name"], namespace=ns) is None
        # MLflow: the KFP run's trials nest under one tune run, train and evaluate share one run, and the
        # candidate is registered; the gate said no, so the champion alias did not move.
        mlflow = MlflowRest(tracking["tracking_uri"])
        runs = mlflow.search_runs(MLFLOW_EXPERIMENT, f"tags.`kubeflow_bridge.run_id` = '{result.run_id}'")
        tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
        assert sorted(t["kubeflow_bridge.step"] for t in tags) == ["train", "trial", "trial", "tune"]
        assert {(t["kubeflow_bridge.orchestrator"], t["kubeflow_bridge.workflow"]) for t in tags} == {
            ("kfp", steps.PIPELINE_NAME)
        }
        evaluated = next(d for d in details if d.get("display_name") == "evaluate")["output_parameters"]
        assert evaluated["registered_version"] == "1"
        assert mlflow.version_by_alias("e2e-kfp-detector", "champion") is None
        # What the deploy step does after a promotion: the alias moves to the deployed version.
        steps.promote_champion({**ARGS, **tracking}, "1", ARGS["service_name"], ns, "")
        champion = mlflow.version_by_alias("e2e-kfp-detector", "champion")
        assert champion is not None and champion["version"] == "1"
        # The window: 4 days before window_end of the 8 days, the 4 channels asked for, labels kept.
        prefix = next(d for d in details if d.get("display_name") == "ingest")["output_parameters"]["prefix"]
        meta = json.loads(io.read_text(f"{workflow.uri(prefix, 'dataset')}/metadata.json"))
        assert meta["rows"] == 4 * 1440 and meta["channels"] == CHANNELS.split(",") and meta["labelled"]
        assert (meta["start"], meta["end"]) == ("2026-01-28T00:00:00", "2026-01-31T23:59:00")
        evaluation = json.loads(io.read_text(f"{workflow.uri(prefix, 'evaluation')}/metrics.json"))
        assert evaluation["channels"] == 4 and set(evaluation["detectors"]) == {"model", "zscore", "iforest"}

        # The deploy step itself, on this run's evaluated model: create, then a canary rollout with a
        # smoke request as wide as the model's channels and promotion (what a run that beats the first does).
        rollout = {"canary_percent": 30, "service_name": "e2e-canary", "namespace": ns, "source": DATASET}
        first = steps.deploy(prefix, f_score=0.5, run_id="r1", channels=4, **rollout)
        assert first["promoted"] is False and first["smoke_status"] == "ok" and first["url"]
        # A second model (a copy under another run's prefix) so the rollout makes a new revision.
        from trainer import io

        other = f"{prefix}-next"
        io.write_bytes(
            workflow.evaluated_model_uri(other), io.read_bytes(workflow.evaluated_model_uri(prefix))
        )
        second = steps.deploy(other, f_score=0.6, run_id="r2", channels=4, **rollout)
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
