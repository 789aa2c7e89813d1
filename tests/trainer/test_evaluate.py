"""evaluate: metrics on hand-made cases, the honest threshold protocol, baselines, outputs, bad artifacts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainer import evaluate
from trainer import metrics as m
from trainer.__main__ import build_parser
from trainer.model import load_artifact

#            events:   [---]          [-----]        [-]
LABELS = np.array([0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0])
PREDS = np.array([0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0])


def test_point_and_composite_scores_by_hand() -> None:
    # Flagged: 1, 3, 11, 14; labelled positive: 2, 3, 7, 8, 9, 12 (6 points, 3 events).
    # TP = 1 (index 3) -> Pt = 1/4, point recall = 1/6, F1 = 2*(1/4)(1/6)/(1/4+1/6) = 0.2.
    p, r, f1 = m.point_prf(LABELS, PREDS)
    assert (p, r) == pytest.approx((0.25, 1 / 6))
    assert f1 == pytest.approx(0.2)
    # Events: [2,4) found (index 3), [7,10) missed, [12,13) missed -> Re = 1/3.
    assert m.events(LABELS) == [(2, 4), (7, 10), (12, 13)]
    assert m.event_recall(LABELS, PREDS) == pytest.approx(1 / 3)
    # Fc = 2 * 1/4 * 1/3 / (1/4 + 1/3) = (1/6) / (7/12) = 2/7.
    assert m.composite_f(LABELS, PREDS) == pytest.approx(2 / 7)


def test_one_hit_per_event_gives_full_event_recall() -> None:
    preds = np.zeros_like(PREDS)
    preds[[2, 9, 12]] = 1  # one point in each event, no false positives
    assert m.composite_f(LABELS, preds) == pytest.approx(1.0)
    # Point-wise F1 is much lower: recall 3/6.
    assert m.point_prf(LABELS, preds)[2] == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_degenerate_cases_are_zero_not_nan() -> None:
    assert m.composite_f(LABELS, np.zeros_like(LABELS)) == 0.0
    assert m.composite_f(np.zeros(5), np.ones(5)) == 0.0
    assert m.events(np.array([1, 1, 0, 1])) == [(0, 2), (3, 4)]


def test_sweep_matches_the_direct_definitions() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros(500, dtype=int)
    for s in (50, 200, 320, 450):
        labels[s : s + 10] = 1
    scores = rng.random(500) + 0.8 * labels * rng.random(500)
    table = m.sweep(scores, labels, n_thresholds=50)
    for i in range(0, len(table["threshold"]), 7):
        preds = scores >= table["threshold"][i]
        p, r, f1 = m.point_prf(labels, preds)
        assert table["precision"][i] == pytest.approx(p)
        assert table["recall"][i] == pytest.approx(r)
        assert table["f1"][i] == pytest.approx(f1)
        assert table["event_recall"][i] == pytest.approx(m.event_recall(labels, preds))
        assert table["composite_f1"][i] == pytest.approx(m.composite_f(labels, preds))
    best = m.best_threshold(table)
    assert table["composite_f1"][best] == table["composite_f1"].max()


def test_roc_auc_by_hand() -> None:
    # Positives 0.9, 0.4; negatives 0.5, 0.1: 3 of 4 pairs ordered right.
    assert m.roc_auc(np.array([0.9, 0.4, 0.5, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.75)
    assert m.roc_auc(np.array([0.1, 0.2]), np.array([0, 0])) is None


def _args(pipeline: Any, out: Path, *extra: str) -> argparse.Namespace:
    """evaluate's arguments as its CLI parses them (defaults included)."""
    return build_parser().parse_args(
        ["evaluate", "--data", str(pipeline.prep), "--model", str(pipeline.model), "--out", str(out), *extra]
    )


def test_pr_auc_by_hand() -> None:
    # Ranked 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg): precision 1 at recall 1/2, 2/3 at recall 1.
    assert m.pr_auc(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(
        0.5 + 0.5 * 2 / 3
    )
    # Tied scores are one threshold: both rows flagged together (precision 1/2 at recall 1).
    assert m.pr_auc(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)
    assert m.pr_auc(np.array([0.1, 0.2]), np.array([0, 0])) is None


def test_threshold_from_validation_labels_labelled_rate_or_contamination() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(1000)
    labels = np.zeros(1000, dtype=int)
    peaks = [100, 101, 500, 900]  # three events
    labels[peaks] = 1
    scores[peaks] = 5.0
    chosen = m.choose_threshold(scores, labels, contamination=0.01, labelled_rate=0.2)
    assert chosen.source == m.VAL_BEST_FC and 1.0 < chosen.value <= 5.0
    # Fewer than three events in validation: the quantile that flags the labelled share of rows.
    labels[900] = 0
    chosen = m.choose_threshold(scores, labels, contamination=0.01, labelled_rate=0.2)
    assert chosen.source == m.VAL_LABELLED_RATE
    assert (scores >= chosen.value).mean() == pytest.approx(0.2, abs=0.002)
    # No labels at all: the contamination quantile.
    chosen = m.choose_threshold(scores, None, contamination=0.05)
    assert chosen.source == m.VAL_CONTAMINATION
    assert (scores >= chosen.value).mean() == pytest.approx(0.05, abs=0.002)
    with pytest.raises(ValueError, match=r"contamination must be in \(0, 0.5\]"):
        m.choose_threshold(scores, None, contamination=0.0)


def test_outputs_report_and_thresholded_model(pipeline: Any) -> None:
    ev = pipeline.evaluation
    assert (ev / "_SUCCESS").exists()
    metrics = json.loads((ev / "metrics.json").read_text())
    for key in (
        "composite_f1",
        "precision",
        "recall",
        "f1",
        "event_recall",
        "threshold",
        "roc_auc",
        "pr_auc",
    ):
        assert key in metrics
    assert metrics["evaluable"] and metrics["test_events"] >= 1 and metrics["val_events"] >= 1
    expected = "val_best_fc" if metrics["val_events"] >= 3 else "val_labelled_rate"
    assert metrics["threshold_source"] == expected
    # The reported score is the test score at the validation-chosen threshold; the oracle is at least it.
    assert 0 <= metrics["composite_f1"] <= metrics["oracle_composite_f1"] <= 1
    assert set(metrics["detectors"]) == {"model", "zscore", "iforest"}
    for name in ("zscore", "iforest"):
        assert metrics[f"baseline_{name}_composite_f1"] == metrics["detectors"][name]["composite_f1"]
    best = max(metrics["detectors"][n]["composite_f1"] for n in ("zscore", "iforest"))
    assert metrics["baseline_composite_f1"] == best
    assert metrics["channels"] == 10
    kfp = json.loads((ev / "kfp_metrics.json").read_text())
    names = {m["name"]: m["numberValue"] for m in kfp["metrics"]}
    assert names["composite_f1"] == pytest.approx(metrics["composite_f1"])
    html = (ev / "report.html").read_text()
    assert "<svg" in html and "<polyline" in html and "threshold" in html
    assert "zscore" in html and "iforest" in html and "oracle_composite_f1" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN or network
    _model, artifact = load_artifact(str(ev / "model.pt"))
    assert artifact["threshold"] == pytest.approx(metrics["threshold"])
    assert artifact["threshold_source"] == metrics["threshold_source"]
    assert "oracle_composite_f1" not in artifact["evaluation"]  # a diagnostic, never written into the model
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
    args = _args(pipeline, tmp_path / "ev", "--thresholds", "50")
    args.model = str(bad)
    with pytest.raises(ValueError, match=message) as exc:
        evaluate.run(args)
    assert "--model" in str(exc.value)
    assert not (tmp_path / "ev").exists()


def test_model_trained_on_other_features_is_rejected(pipeline: Any, tmp_path: Path) -> None:
    good = torch.load(pipeline.model, weights_only=True)
    good["scaler"] = {**good["scaler"], "features": [f"x{i}" for i in range(30)]}
    torch.save(good, tmp_path / "other.pt")
    args = _args(pipeline, tmp_path / "ev")
    args.model = str(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="evaluate with the data the model was trained on"):
        evaluate.run(args)
    assert not (tmp_path / "ev").exists()


def test_threshold_count_out_of_range(pipeline: Any, tmp_path: Path) -> None:
    args = _args(pipeline, tmp_path / "ev", "--thresholds", "1")
    with pytest.raises(ValueError, match=r"--thresholds must be in \[2, 100000\]"):
        evaluate.run(args)
    assert not (tmp_path / "ev").exists()


def _with_test_labels(pipeline: Any, dest: Path, relabel: Any) -> Path:
    """A copy of the preprocessed data whose test split's labels are ``relabel(labels)``."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(pipeline.prep, dest)
    for part in sorted((dest / "test").glob("*.parquet")):
        table = pq.read_table(part)
        labels = relabel(table.column("label").to_numpy())
        table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.int8()))
        pq.write_table(table, part)
    return dest


def test_thresholds_never_read_the_test_labels(pipeline: Any, tmp_path: Path) -> None:
    # Move every test label by half the split: a threshold chosen on test labels would change with them.
    moved = _with_test_labels(pipeline, tmp_path / "prep", lambda y: np.roll(y, y.size // 2))
    runs = {}
    for name, prep in (("real", pipeline.prep), ("moved", moved)):
        in_process_args = ["--data", str(prep), "--model", str(pipeline.model), "--out", str(tmp_path / name)]
        evaluate.run(build_parser().parse_args(["evaluate", *in_process_args]))
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    for detector in ("model", "zscore", "iforest"):
        real, moved_run = runs["real"]["detectors"][detector], runs["moved"]["detectors"][detector]
        assert real["threshold"] == moved_run["threshold"], detector
        assert real["threshold_source"] == moved_run["threshold_source"], detector
    # ... while the measurements, which do read test labels, see the change.
    assert runs["real"]["oracle_composite_f1"] != runs["moved"]["oracle_composite_f1"]
    _model, artifact = load_artifact(str(tmp_path / "moved" / "model.pt"))
    assert artifact["threshold"] == runs["real"]["threshold"]


def test_no_labelled_event_in_test_is_not_evaluable(pipeline: Any, tmp_path: Path) -> None:
    prep = _with_test_labels(pipeline, tmp_path / "prep", np.zeros_like)
    summary = evaluate.run(_args(pipeline, tmp_path / "ev", "--contamination", "0.02"))
    assert summary["metrics"]["evaluable"]  # the real split has events
    result = evaluate.run(
        build_parser().parse_args(
            ["evaluate", "--data", str(prep), "--model", str(pipeline.model), "--out", str(tmp_path / "none")]
        )
    )["metrics"]
    assert result["evaluable"] is False
    assert result["not_evaluable"] == "no labelled anomaly in the test split"
    assert "composite_f1" not in result and "baseline_composite_f1" not in result  # no F = 0 to misread
    assert result["threshold_source"] == summary["metrics"]["threshold_source"]  # validation is unchanged
    html = (tmp_path / "none" / "report.html").read_text()
    assert "Not evaluable: no labelled anomaly in the test split" in html


def test_rolling_zscore_by_hand() -> None:
    from trainer import baselines

    scaler = {
        "features": ["a", "a__rmean", "a__rstd"],
        "channels": ["a"],
        "mean": [10.0, 10.0, 1.0],
        "std": [2.0, 2.0, 0.5],
    }
    raw = np.array([[10.0, 10.0, 1.0], [16.0, 11.0, 2.5], [10.0, 10.0, 0.0]], dtype=np.float32)
    scaled = (raw - np.array(scaler["mean"], np.float32)) / np.array(scaler["std"], np.float32)
    # |x - mean| / std per row; a flat window (std 0) is floored at a thousandth of the channel's spread.
    assert baselines.zscore_scores(scaled, scaler) == pytest.approx([0.0, 2.0, 0.0])


def test_the_serving_model_is_rescored_on_the_same_splits(pipeline: Any, tmp_path: Path) -> None:
    # The serving model is the evaluated one itself: re-scored on the same window, it scores the same.
    same = evaluate.run(_args(pipeline, tmp_path / "same", "--champion-model", str(pipeline.model)))[
        "metrics"
    ]
    assert same["champion_composite_f1"] == same["composite_f1"]
    assert same["champion"].startswith("re-scored ") and same["best_baseline"] in ("zscore", "iforest")
    report = json.loads((tmp_path / "same" / "metrics.json").read_text())
    assert report["detectors"]["champion"]["threshold"] == report["detectors"]["model"]["threshold"]
    # A serving model trained on other features, or one that cannot be read, is reported, not fatal.
    other = torch.load(pipeline.model, weights_only=True)
    other["scaler"] = {**other["scaler"], "features": [f"x{i}" for i in range(30)]}
    torch.save(other, tmp_path / "other.pt")
    for champion, note in (
        (tmp_path / "other.pt", "trained on other features"),
        (tmp_path / "no.pt", "no such"),
    ):
        result = evaluate.run(_args(pipeline, tmp_path / champion.stem, "--champion-model", str(champion)))
        assert "champion_composite_f1" not in result["metrics"], champion
        assert (
            result["metrics"]["champion"].startswith("not re-scored")
            and note in result["metrics"]["champion"]
        )


def test_detection_benchmark_runs_quick(tmp_path: Path) -> None:
    # bench/detection_quality.py (the README's table) as a user runs it, in its quick form; no timing.
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[2] / "bench" / "detection_quality.py"
    run = subprocess.run(
        [sys.executable, str(bench), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads((tmp_path / "detection_quality.json").read_text())
    nab = doc["series"]["nab_machine_temperature"]
    assert set(nab) >= {"model", "zscore", "iforest", "runs"} and len(nab["runs"]) == 1
    assert nab["runs"][0]["threshold_source"] in ("val_best_fc", "val_labelled_rate")
    assert doc["table"][0].startswith("| series |") and "nab_machine_temperature" in doc["table"][2]
