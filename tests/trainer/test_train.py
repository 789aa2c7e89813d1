"""train: Katib metric lines, hyperparameter validation, determinism, checkpoints, DDP under torchrun."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer import train
from trainer.model import ARTIFACT_FORMAT, load_artifact


def test_epoch_lines_parse_with_katibs_regex(pipeline: Any, tools: Any) -> None:
    lines = [ln for ln in pipeline.train_stdout.splitlines() if " epoch=" in ln]
    assert len(lines) == 3
    for i, line in enumerate(lines, start=1):
        stamp, rest = line.split(" ", 1)
        # Katib's StdOut collector accepts an RFC 3339 timestamp before the metrics.
        assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None
        found = {m[0]: float(m[1]) for m in re.findall(tools.KATIB_REGEX, rest)}
        assert set(found) == {"epoch", "train_loss", "val_loss"}
        assert found["epoch"] == i and found["val_loss"] > 0
    metrics = json.loads(pipeline.train_metrics.read_text())
    assert [h["val_loss"] for h in metrics["history"]] == pytest.approx(
        [float(re.search(r"val_loss=([\d.]+)", ln).group(1)) for ln in lines],
        abs=1e-6,  # type: ignore[union-attr]
    )


def test_artifact_is_self_contained(pipeline: Any) -> None:
    model, artifact = load_artifact(str(pipeline.model))
    scaler = json.loads((pipeline.prep / "scaler.json").read_text())
    assert artifact["format"] == ARTIFACT_FORMAT
    assert artifact["scaler"] == scaler
    assert artifact["config"]["input_dim"] == len(scaler["features"]) == 30
    assert artifact["config"]["hidden_dims"] == [32, 16] and artifact["config"]["latent_dim"] == 4
    assert artifact["threshold_source"] == "val_p99" and artifact["threshold"] > 0
    out, _mu, _lv = model(torch.zeros(2, 30))
    assert out.shape == (2, 30)


def _args(prep: Path, out: Path, **kw: Any) -> argparse.Namespace:
    base = {
        "data": str(prep), "model_out": str(out), "metrics_out": None, "checkpoint_dir": None, "latent_dim": 4,
        "hidden_dims": "32,16", "beta": 0.5, "lr": 2e-3, "batch_size": 128, "epochs": 3, "patience": 0,
        "seed": 0, "device": "cpu", "threads": 1, "score_mix": 0.0,
    }  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"latent_dim": 0}, r"--latent-dim must be in \[1, 512\]"),
        ({"hidden_dims": "64,-1"}, "--hidden-dims must be 1-8 widths"),
        ({"hidden_dims": "wide"}, "--hidden-dims 'wide' must be comma-separated integers"),
        ({"beta": -1.0}, r"--beta must be in \[0, 100\]"),
        ({"lr": 0.0}, r"--lr must be in \(0, 1\]"),
        ({"lr": 3.0}, r"--lr must be in \(0, 1\]"),
        ({"batch_size": 0}, r"--batch-size must be in \[1, 1048576\]"),
        ({"epochs": 0}, r"--epochs must be in \[1, 10000\]"),
        ({"patience": -2}, r"--patience must be in \[0, 10000\]"),
        ({"score_mix": -0.5}, r"--score-mix must be in \[0, 1\]"),
        ({"device": "tpu"}, "--device must be auto, cpu or cuda"),
        ({"data": "gs://b/prep"}, "unsupported scheme 'gs'"),
    ],
)
def test_bad_hyperparameters_fail_before_training(
    pipeline: Any, tmp_path: Path, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        train.run(_args(pipeline.prep, tmp_path / "m.pt", **kw))
    assert not (tmp_path / "m.pt").exists()


def test_cli_reports_bad_input_with_exit_code_and_summary(pipeline: Any, tmp_path: Path, tools: Any) -> None:
    res = tools.run(
        "train", "--data", str(pipeline.prep), "--model-out", str(tmp_path / "m.pt"), "--lr", "-1"
    )
    assert res.returncode == 2
    assert "--lr must be in (0, 1]; got -1.0" in res.stderr
    assert res.summary["status"] == "failed" and "--lr" in res.summary["error"]
    assert not (tmp_path / "m.pt").exists()


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such directory"):
        train.run(_args(tmp_path / "nothing", tmp_path / "m.pt"))


def _fit(prep: Path, tmp_path: Path, name: str, **kw: Any) -> dict[str, Any]:
    metrics = tmp_path / f"{name}.json"
    train.run(_args(prep, tmp_path / f"{name}.pt", metrics_out=str(metrics), **kw))
    return json.loads(metrics.read_text())


def test_deterministic_by_seed_and_resumes_from_checkpoint(pipeline: Any, tmp_path: Path) -> None:
    straight = _fit(pipeline.prep, tmp_path, "straight", epochs=4)
    again = _fit(pipeline.prep, tmp_path, "again", epochs=4)
    other = _fit(pipeline.prep, tmp_path, "other", epochs=4, seed=5)
    assert [h["val_loss"] for h in straight["history"]] == [h["val_loss"] for h in again["history"]]
    assert straight["val_loss"] != other["val_loss"]
    # An interrupted run (2 epochs) resumed to 4 epochs matches the uninterrupted run exactly.
    ckpt = tmp_path / "ckpt"
    _fit(pipeline.prep, tmp_path, "part", epochs=2, checkpoint_dir=str(ckpt))
    assert (ckpt / "checkpoint.pt").exists()
    resumed = _fit(pipeline.prep, tmp_path, "resumed", epochs=4, checkpoint_dir=str(ckpt))
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in straight["history"]]


def test_early_stopping_restores_best_epoch(
    pipeline: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The validation loss is scripted (the seam: train.evaluate_loss), so when early stopping triggers
    # is decided by construction, not by a loss trajectory that depends on the CPU's floating point.
    scripted = [1.0, 0.8, 0.5, 0.6, 0.55, 0.7, 0.4]  # best at epoch 3, then 2 epochs without improving
    seen: list[dict[str, torch.Tensor]] = []

    def scripted_val_loss(model: torch.nn.Module, *_args: Any) -> float:
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return scripted[len(seen) - 1]

    monkeypatch.setattr(train, "evaluate_loss", scripted_val_loss)
    m = _fit(pipeline.prep, tmp_path, "es", epochs=30, patience=2)
    assert m["stopped_early"] is True
    assert m["epochs_run"] == 5 and m["best_epoch"] == 3 and len(seen) == 5
    assert m["best_val_loss"] == 0.5 and [h["val_loss"] for h in m["history"]] == scripted[:5]
    # The artifact holds the weights as they were after epoch 3, not the last epoch's.
    _model, artifact = load_artifact(str(tmp_path / "es.pt"))
    for k, v in artifact["state_dict"].items():
        torch.testing.assert_close(v, seen[2][k], rtol=0, atol=0)
    assert any(not torch.equal(seen[2][k], seen[4][k]) for k in seen[2])  # training did move on


@pytest.mark.parametrize("nproc", [2, 3], ids=["even-split", "uneven-split"])
def test_torchrun_matches_single_process(pipeline: Any, tmp_path: Path, tools: Any, nproc: int) -> None:
    # 3 processes split the global batch of 128 as 43/43/42: still the single-process model.
    common = ["--data", str(pipeline.prep), "--epochs", "3", "--batch-size", "128", "--hidden-dims", "32,16",
              "--latent-dim", "4", "--patience", "0", "--seed", "11", "--device", "cpu"]  # fmt: skip
    single = tools.ok(
        tools.run(
            "train", *common, "--model-out", str(tmp_path / "s.pt"), "--metrics-out", str(tmp_path / "s.json")
        )
    )
    port = tools.free_port()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "trainer", "train", *common,
        "--model-out", str(tmp_path / "d.pt"), "--metrics-out", str(tmp_path / "d.json"),
    ]  # fmt: skip
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dist = json.loads((tmp_path / "d.json").read_text())
    one = json.loads((tmp_path / "s.json").read_text())
    assert dist["world_size"] == nproc and one["world_size"] == 1
    for a, b in zip(one["history"], dist["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    # Only rank 0 reports: one set of epoch lines and one summary.
    assert proc.stdout.count("epoch=3 ") == 1 and proc.stdout.count("TRAINER_SUMMARY") == 1
    assert single.summary["outputs"]["model"] == str(tmp_path / "s.pt")
    _m1, a1 = load_artifact(str(tmp_path / "s.pt"))
    _m2, a2 = load_artifact(str(tmp_path / "d.pt"))
    for k, v in a1["state_dict"].items():
        torch.testing.assert_close(a2["state_dict"][k], v, rtol=1e-3, atol=1e-4)


def test_a_batch_smaller_than_the_world_is_refused() -> None:
    train.Hyperparameters(batch_size=256).validate(world_size=3)  # uneven splits are fine
    with pytest.raises(ValueError, match="--batch-size 2 must be at least the world size 3"):
        train.Hyperparameters(batch_size=2).validate(world_size=3)


def test_the_latent_is_narrower_than_the_input(
    tmp_path: Path, tools: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # One channel gives 3 features; a latent of 8 would let the VAE learn the identity (anomalies then
    # reconstruct as well as normal rows), so it is capped at half the features: 1.
    raw, prep, model = tmp_path / "raw", tmp_path / "prep", tmp_path / "model.pt"
    tools.in_process("ingest", "--source", "nab", "--out", str(raw), "--end", "2013-12-20")
    tools.in_process("preprocess", "--data", str(raw), "--out", str(prep), "--scheduler", "threads")
    tools.in_process(
        "train", "--data", str(prep), "--model-out", str(model), "--epochs", "1", "--latent-dim", "8"
    )
    artifact = torch.load(model, weights_only=True)
    assert artifact["config"]["input_dim"] == 3
    assert artifact["config"]["latent_dim"] == 1 == artifact["hyperparameters"]["latent_dim"]
    assert "--latent-dim 8 capped at 1, half the 3 input features" in caplog.text


def test_the_likelihood_mse_mix_is_stored_and_applied(pipeline: Any, tmp_path: Path, tools: Any) -> None:
    import numpy as np

    from trainer.model import anomaly_scores, load_artifact, score_terms
    from trainer.train import load_split

    model_uri = tmp_path / "mixed.pt"
    tools.in_process(
        "train",
        "--data",
        str(pipeline.prep),
        "--model-out",
        str(model_uri),
        *tools.SMALL_TRAIN,
        "--score-mix",
        "0.25",
    )
    model, artifact = load_artifact(str(model_uri))
    x_val = torch.from_numpy(load_split(str(pipeline.prep), "val", artifact["scaler"])[0])
    mse, kl = score_terms(model, x_val)
    # The scales are the terms' validation medians; the score is their weighted sum.
    assert artifact["score"] == {
        "mix": 0.25,
        "mse_scale": float(np.median(mse)),
        "kl_scale": float(np.median(kl)),
    }
    expected = 0.75 * mse / np.median(mse) + 0.25 * kl / np.median(kl)
    np.testing.assert_allclose(anomaly_scores(model, x_val, artifact["score"]), expected, rtol=1e-5)
    assert artifact["threshold"] == pytest.approx(float(np.quantile(expected, 0.99)), rel=1e-5)
    # Without a mix (older artifacts, or --score-mix 0) the score is the reconstruction error.
    np.testing.assert_array_equal(anomaly_scores(model, x_val, None), mse)
    bad = tools.run(
        "train", "--data", str(pipeline.prep), "--model-out", str(tmp_path / "x.pt"), "--score-mix", "1.5"
    )
    assert bad.returncode == 2 and "--score-mix must be in [0, 1]; got 1.5" in bad.stderr
