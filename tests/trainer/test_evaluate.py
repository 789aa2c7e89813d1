"""evaluate: F-scores on hand-made cases, the sweep, outputs, and bad artifacts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainer import evaluate
from trainer.model import load_artifact

#            events:   [---]          [-----]        [-]
LABELS = np.array([0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0])
PREDS = np.array([0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0])


def test_point_and_composite_scores_by_hand() -> None:
    # Flagged: 1, 3, 11, 14; labelled positive: 2, 3, 7, 8, 9, 12 (6 points, 3 events).
    # TP = 1 (index 3) -> Pt = 1/4, point recall = 1/6, F1 = 2*(1/4)(1/6)/(1/4+1/6) = 0.2.
    p, r, f1 = evaluate.point_prf(LABELS, PREDS)
    assert (p, r) == pytest.approx((0.25, 1 / 6))
    assert f1 == pytest.approx(0.2)
    # Events: [2,4) found (index 3), [7,10) missed, [12,13) missed -> Re = 1/3.
    assert evaluate.events(LABELS) == [(2, 4), (7, 10), (12, 13)]
    assert evaluate.event_recall(LABELS, PREDS) == pytest.approx(1 / 3)
    # Fc = 2 * 1/4 * 1/3 / (1/4 + 1/3) = (1/6) / (7/12) = 2/7.
    assert evaluate.composite_f(LABELS, PREDS) == pytest.approx(2 / 7)


def test_one_hit_per_event_gives_full_event_recall() -> None:
    preds = np.zeros_like(PREDS)
    preds[[2, 9, 12]] = 1  # one point in each event, no false positives
    assert evaluate.composite_f(LABELS, preds) == pytest.approx(1.0)
    # Point-wise F1 is much lower: recall 3/6.
    assert evaluate.point_prf(LABELS, preds)[2] == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_degenerate_cases_are_zero_not_nan() -> None:
    assert evaluate.composite_f(LABELS, np.zeros_like(LABELS)) == 0.0
    assert evaluate.composite_f(np.zeros(5), np.ones(5)) == 0.0
    assert evaluate.events(np.array([1, 1, 0, 1])) == [(0, 2), (3, 4)]


def test_sweep_matches_the_direct_definitions() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros(500, dtype=int)
    for s in (50, 200, 320, 450):
        labels[s : s + 10] = 1
    scores = rng.random(500) + 0.8 * labels * rng.random(500)
    table = evaluate.sweep(scores, labels, n_thresholds=50)
    for i in range(0, len(table["threshold"]), 7):
        preds = scores >= table["threshold"][i]
        p, r, f1 = evaluate.point_prf(labels, preds)
        assert table["precision"][i] == pytest.approx(p)
        assert table["recall"][i] == pytest.approx(r)
        assert table["f1"][i] == pytest.approx(f1)
        assert table["event_recall"][i] == pytest.approx(evaluate.event_recall(labels, preds))
        assert table["composite_f1"][i] == pytest.approx(evaluate.composite_f(labels, preds))
    best = evaluate.best_threshold(table)
    assert table["composite_f1"][best] == table["composite_f1"].max()


def test_roc_auc_by_hand() -> None:
    # Positives 0.9, 0.4; negatives 0.5, 0.1: 3 of 4 pairs ordered right.
    assert evaluate.roc_auc(np.array([0.9, 0.4, 0.5, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.75)
    assert evaluate.roc_auc(np.array([0.1, 0.2]), np.array([0, 0])) is None


def test_outputs_report_and_thresholded_model(pipeline: Any) -> None:
    ev = pipeline.evaluation
    assert (ev / "_SUCCESS").exists()
    metrics = json.loads((ev / "metrics.json").read_text())
    for key in ("composite_f1", "precision", "recall", "f1", "event_recall", "threshold", "roc_auc"):
        assert key in metrics
    assert 0 <= metrics["composite_f1"] <= 1 and metrics["test_events"] >= 1
    i = int(np.argmax(np.array(metrics["sweep"]["composite_f1"])))
    assert metrics["composite_f1"] == max(metrics["sweep"]["composite_f1"])
    assert metrics["sweep"]["composite_f1"][i] == metrics["composite_f1"]
    kfp = json.loads((ev / "kfp_metrics.json").read_text())
    names = {m["name"]: m["numberValue"] for m in kfp["metrics"]}
    assert names["composite_f1"] == pytest.approx(metrics["composite_f1"])
    html = (ev / "report.html").read_text()
    assert "<svg" in html and "<polyline" in html and "threshold" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN or network
    _model, artifact = load_artifact(str(ev / "model.pt"))
    assert artifact["threshold"] == pytest.approx(metrics["threshold"])
    assert artifact["threshold_source"] == "evaluate_best_fc"
    assert artifact["evaluation"]["composite_f1"] == pytest.approx(metrics["composite_f1"])


def test_trained_model_beats_chance_on_injected_anomalies(pipeline: Any) -> None:
    metrics = json.loads((pipeline.evaluation / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.6


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a torch file", "is not a readable model artifact"),
        ("dict", "is not a kubeflow-bridge/vae-anomaly artifact"),
        ("version", "has artifact version 99"),
        ("weights", "weights do not match the stored config"),
    ],
)
def test_corrupt_or_mismatched_artifact(pipeline: Any, tmp_path: Path, content: Any, message: str) -> None:
    bad = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        good = torch.load(pipeline.model, weights_only=True)
        if content == "dict":
            good = {"something": "else"}
        elif content == "version":
            good["version"] = 99
        else:
            good["config"]["input_dim"] = 12
        torch.save(good, bad)
    args = argparse.Namespace(
        data=str(pipeline.prep), model=str(bad), out=str(tmp_path / "ev"), model_out=None, thresholds=50
    )
    with pytest.raises(ValueError, match=message) as exc:
        evaluate.run(args)
    assert "--model" in str(exc.value)
    assert not (tmp_path / "ev").exists()


def test_model_trained_on_other_features_is_rejected(pipeline: Any, tmp_path: Path) -> None:
    good = torch.load(pipeline.model, weights_only=True)
    good["scaler"] = {**good["scaler"], "features": [f"x{i}" for i in range(30)]}
    torch.save(good, tmp_path / "other.pt")
    args = argparse.Namespace(
        data=str(pipeline.prep),
        model=str(tmp_path / "other.pt"),
        out=str(tmp_path / "ev"),
        model_out=None,
        thresholds=50,
    )
    with pytest.raises(ValueError, match="evaluate with the data the model was trained on"):
        evaluate.run(args)
    assert not (tmp_path / "ev").exists()


def test_threshold_count_out_of_range(pipeline: Any, tmp_path: Path) -> None:
    args = argparse.Namespace(
        data=str(pipeline.prep),
        model=str(pipeline.model),
        out=str(tmp_path / "ev"),
        model_out=None,
        thresholds=1,
    )
    with pytest.raises(ValueError, match=r"--thresholds must be in \[2, 100000\]"):
        evaluate.run(args)
    assert not (tmp_path / "ev").exists()
