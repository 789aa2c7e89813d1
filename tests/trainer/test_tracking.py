"""MLflow tracking from the trainer, against a real ``mlflow server`` (the local runtime's own launcher)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kubeflow_bridge.local.tracking import TrackingServer
from kubeflow_bridge.workflow import tracking as wt

MODEL = "telemetry-detector"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tools: Any) -> Iterator[TrackingServer]:
    srv = TrackingServer(state_dir=tmp_path_factory.mktemp("mlflow"), port=tools.free_port())
    srv.start()
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def env_for(uri: str, run_id: str, *, required: bool = False, **extra: str) -> dict[str, str]:
    """The env the workflow gives a step (its literal values; the Secret refs resolve to nothing here)."""
    tags = wt.run_tags(
        orchestrator="airflow", workflow="anomaly_retraining", run_id=run_id, window_end="2026-03-01"
    )
    env = {
        item["name"]: item["value"]
        for item in wt.tracking_env(uri, tags=tags, registered_model=MODEL, required=required)
        if "value" in item
    }
    if extra:
        settings = json.loads(env[wt.SETTINGS_ENV])
        settings.update(extra)
        env[wt.SETTINGS_ENV] = json.dumps(settings)
    return env


def client(uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def runs_of(uri: str, run_id: str) -> list[Any]:
    c = client(uri)
    experiment = c.get_experiment_by_name(wt.EXPERIMENT)
    return list(c.search_runs([experiment.experiment_id], f"tags.`kubeflow_bridge.run_id` = '{run_id}'"))


def test_trials_nest_under_one_tuning_run(
    server: TrackingServer, pipeline: Any, tools: Any, tmp_path: Path
) -> None:
    def trial(name: str, lr: str) -> Any:
        env = env_for(server.uri, "run-trials", step="tune", trial=name)
        out = tmp_path / name / "model.pt"
        args = [
            "train",
            "--data",
            str(pipeline.prep),
            "--model-out",
            str(out),
            *tools.SMALL_TRAIN,
            "--lr",
            lr,
        ]
        return tools.ok(tools.run(*args, env=env))

    with ThreadPoolExecutor(3) as pool:  # trials start together and race to create the tuning run
        list(pool.map(trial, ["trial-a", "trial-b", "trial-c"], ["0.001", "0.003", "0.01"]))
    runs = runs_of(server.uri, "run-trials")
    parents = [r for r in runs if r.data.tags.get("kubeflow_bridge.step") == "tune"]
    trials = [r for r in runs if r.data.tags.get("kubeflow_bridge.step") == "trial"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    assert sorted(r.info.run_name for r in trials) == ["trial-a", "trial-b", "trial-c"]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    assert {r.data.params["lr"] for r in trials} == {"0.001", "0.003", "0.01"}
    history = client(server.uri).get_metric_history(trials[0].info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert all(r.info.status == "FINISHED" for r in trials)


def test_train_evaluate_register_and_rescore_the_champion(
    server: TrackingServer, pipeline: Any, tools: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import numpy as np
    import pandas as pd

    from trainer.serve import AnomalyScorer

    def workflow_run(run_id: str) -> dict[str, Any]:
        for key, value in env_for(server.uri, run_id).items():
            monkeypatch.setenv(key, value)
        model, out = tmp_path / run_id / "model.pt", tmp_path / run_id / "evaluation"
        tools.in_process("train", "--data", str(pipeline.prep), "--model-out", str(model), *tools.SMALL_TRAIN)
        evaluated = tools.in_process(
            "evaluate", "--data", str(pipeline.prep), "--model", str(model), "--out", str(out)
        )
        return evaluated.summary

    first = workflow_run("run-1")
    assert first["outputs"]["registered_model"] == MODEL
    version = first["outputs"]["registered_version"]
    (run,) = runs_of(server.uri, "run-1")  # train and evaluate share one run
    assert run.info.run_id == first["outputs"]["mlflow_run_id"]
    assert run.data.tags["kubeflow_bridge.orchestrator"] == "airflow"
    assert run.data.tags["kubeflow_bridge.window_end"] == "2026-03-01"
    assert run.data.params["latent_dim"] == "4" and run.data.params["epochs"] == "3"
    assert run.data.metrics["eval_composite_f1"] == pytest.approx(first["metrics"]["composite_f1"])
    assert [m.step for m in client(server.uri).get_metric_history(run.info.run_id, "train_loss")] == [1, 2, 3]
    artifacts = {a.path for a in client(server.uri).list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/report.html", "evaluation/plot.svg", "evaluation/metrics.json"} <= artifacts
    registered = client(server.uri).get_model_version(MODEL, version)
    assert registered.tags[wt.TAG_PREFIX + "model_uri"] == first["outputs"]["model"]
    assert float(registered.tags["metric.composite_f1"]) == pytest.approx(first["metrics"]["composite_f1"])

    # The pyfunc model scores as the KServe predictor does (same scaler, score and threshold).
    rows = np.random.default_rng(0).normal(size=(30, 10))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}").predict(pd.DataFrame(rows))
    scores, flags = AnomalyScorer(first["outputs"]["model"]).score(rows)
    np.testing.assert_allclose(pyfunc["score"].to_numpy(), scores, rtol=1e-6)
    assert (pyfunc["anomaly"].to_numpy() == flags).all()

    # Promote it: the next run re-scores the registry's champion on its own window.
    rest = wt.MlflowRest(server.uri)
    assert (
        wt.promote_champion(rest, model=MODEL, version=version, service="svc", namespace="ns")["previous"]
        is None
    )
    second = workflow_run("run-2")
    assert second["metrics"]["champion"].startswith(f"{MODEL} v{version} (champion)")
    # same data, so the champion re-scores to exactly its own first score
    assert second["metrics"]["champion_composite_f1"] == pytest.approx(first["metrics"]["composite_f1"])
    assert rest.version_by_alias(MODEL, "champion")["version"] == version
    assert (
        client(server.uri).get_model_version(MODEL, version).tags["kubeflow_bridge.inferenceservice"]
        == "ns/svc"
    )

    # The champion's model file is gone: evaluate says so and the gate falls back (no champion score).
    shutil.rmtree(tmp_path / "run-1")
    third = workflow_run("run-3")
    assert third["metrics"].get("champion_composite_f1") is None
    assert f"{MODEL} v{version} (champion)" in third["metrics"]["champion"]


def test_unreachable_server_warns_or_fails_as_asked(pipeline: Any, tools: Any, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{tools.free_port()}"
    args = ["train", "--data", str(pipeline.prep), "--model-out", str(tmp_path / "m.pt"), *tools.SMALL_TRAIN]
    optional = tools.ok(tools.run(*args, env=env_for(nowhere, "run-x")))
    assert "going on without tracking" in optional.stderr
    required = tools.run(*args, env=env_for(nowhere, "run-x", required=True))
    assert required.returncode == 2
    assert "Tracking is required" in required.stderr and nowhere in required.stderr


def test_tracking_env_refuses_bad_input() -> None:
    tags = wt.run_tags(orchestrator="kfp", workflow="p", run_id="r")
    assert wt.tracking_env("", tags=tags, registered_model="x") == []
    with pytest.raises(ValueError, match="registered_model 'a/b' is not allowed"):
        wt.tracking_env("http://mlflow:5000", tags=tags, registered_model="a/b")
    with pytest.raises(ValueError, match="carries a password"):
        wt.tracking_env("http://u:secret@mlflow:5000", tags=tags, registered_model="m")
    env = wt.tracking_env("http://mlflow:5000", tags=tags, registered_model="m")
    token = next(e for e in env if e["name"] == "MLFLOW_TRACKING_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {
        "name": wt.TRACKING_SECRET,
        "key": "MLFLOW_TRACKING_TOKEN",
        "optional": True,
    }
