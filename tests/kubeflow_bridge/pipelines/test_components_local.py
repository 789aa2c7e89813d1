"""The real components run by kfp.local (SubprocessRunner, as the local runtime runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubeflow_bridge.pipelines import steps


def test_run_trainer_failure_names_the_step_and_the_cause(tmp_path: Path) -> None:
    with pytest.raises(
        steps.StepFailed, match=r"trainer ingest exited 2:[\s\S]*'csv': no such file or folder"
    ):
        steps.run_trainer(["ingest", "--out", str(tmp_path / "raw"), "--source", "csv"])
    assert not (tmp_path / "raw").exists()


@pytest.mark.e2e
def test_ingest_preprocess_evaluate_components_with_kfp_local(tmp_path: Path) -> None:
    from kfp import local

    from kubeflow_bridge.pipelines.pipeline import evaluate, ingest, preprocess

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    art = tmp_path / "art"
    ingested = ingest(
        artifact_root=str(art),
        run_id="run/1",
        source="synthetic",
        rows=6000,
        seed=0,
        window_end="",
        time_column="timestamp",
        feature_columns="",
        label_column="",
        lookback="",
    )
    prefix = ingested.outputs["prefix"]
    assert prefix == f"{art}/run-1"
    assert ingested.outputs["dataset"] == f"{prefix}/raw"
    assert ingested.outputs["compute_seconds"] > 0
    assert (Path(prefix) / "summaries" / "ingest.json").exists()

    prepared = preprocess(prefix=prefix, dataset=ingested.outputs["dataset"], dask_workers=1)
    assert prepared.outputs["features"] == f"{prefix}/features"

    # The Katib/PyTorchJob steps need the runtime; train directly with the trainer, as a replica would.
    subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--data", f"{prefix}/features",
         "--model-out", f"{prefix}/model/model.pt", "--epochs", "1"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    # No service named: nothing serves to re-score (and no cluster is needed).
    evaluated = evaluate(
        prefix=prefix,
        model=f"{prefix}/model/model.pt",
        contamination=0.01,
        seed=0,
        service_name="",
        namespace="",
        run_id="run/1",
        tracking_uri="",  # no tracking: nothing is logged or registered
        tracking_required=False,
        registered_model="anomaly-detector",
    )
    assert evaluated.outputs["registered_version"] == ""
    f_score = float(evaluated.outputs["f_score"])  # text: "" when there is no score
    assert 0.0 <= f_score <= 1.0 and evaluated.outputs["evaluable"] is True
    assert 0.0 <= float(evaluated.outputs["baseline_f_score"]) <= 1.0 and evaluated.outputs["channels"] == 10
    assert evaluated.outputs["serving_f_score"] == ""
    metrics = evaluated.outputs["metrics"]
    assert metrics.metadata["composite_f1"] == pytest.approx(f_score)
    assert "precision" in metrics.metadata
    report = Path(evaluated.outputs["report"].path).read_text()
    assert report.lstrip().lower().startswith("<!doctype html") and "<svg" in report
    assert evaluated.outputs["model"] == f"{prefix}/evaluation/model.pt"


def test_kubernetes_steps_without_a_kubeconfig_name_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    with pytest.raises(steps.StepFailed, match="kubeflow-bridge local up"):
        steps.object_client()
