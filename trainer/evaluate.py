"""``evaluate``: the model and two baselines under one honest protocol on the test split, and a report.

The protocol (:mod:`trainer.metrics`): each detector's threshold is chosen on the validation split and
applied unchanged to the test split: the best composite F-score on validation labels when validation
holds at least three labelled events; with fewer, the validation-score quantile that flags the labelled
share of the training and validation rows; without labels, the ``1 - --contamination`` quantile. Test
labels are read only to measure. The detectors: the model, a rolling z-score and an IsolationForest
(:mod:`trainer.baselines`), on the same split and features.

With ``--champion-model`` (the model that serves now) evaluate re-scores it the same way on the same
splits: ``champion_composite_f1`` is then the number the candidate must beat, measured on the same window
(``champion`` says why it is missing: unreadable, or trained on other features).

The gate's number is the model's ``composite_f1`` at its validation-chosen threshold. It is None when the
test split cannot be evaluated (no labels, or no labelled event in it): ``evaluable`` is false and
``not_evaluable`` says why. ``oracle_composite_f1``, the best F any threshold reaches on the test labels,
is a diagnostic upper bound: it decides nothing and is never written into the model.

Writes to ``--out`` (a directory, published atomically): ``metrics.json``, ``kfp_metrics.json`` (KFP
Metrics shape ``{"metrics": [{"name", "numberValue", "format"}]}``), ``report.html`` (inline SVG, no
network) and ``model.pt``, a copy of the artifact with the validation-chosen threshold (or to
``--model-out``).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.metrics import events

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("trainer.evaluate")

#: The model's fields in metrics.json that each baseline also reports (as ``baseline_<name>_<field>``).
COMPARED = ("composite_f1", "roc_auc", "pr_auc")


def svg_plot(
    ts: np.ndarray, scores: np.ndarray, labels: np.ndarray, threshold: float, width: int = 1000
) -> str:
    """An inline SVG of score over time (log scale, max-pooled per pixel), threshold and labelled events."""
    import numpy as np

    height, pad = 320, 40
    n = scores.size
    if n == 0:
        return "<p>No test rows.</p>"
    buckets = min(n, width - 2 * pad)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    pooled = np.maximum.reduceat(scores, edges[:-1])
    ly = np.log10(np.maximum(pooled, 1e-6))
    lt = np.log10(max(threshold, 1e-6))
    lo, hi = float(min(ly.min(), lt)), float(max(ly.max(), lt))
    hi = hi if hi > lo else lo + 1

    def yy(v: float) -> float:
        return pad + (height - 2 * pad) * (1 - (v - lo) / (hi - lo))

    def xx(i: float) -> float:
        return pad + (width - 2 * pad) * i / n

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>')
    for s, e in events(labels):
        parts.append(
            f'<rect x="{xx(s):.1f}" y="{pad}" width="{max(xx(e) - xx(s), 1.5):.1f}" '
            f'height="{height - 2 * pad}" fill="#f4a6a6" opacity="0.6"><title>labelled anomaly</title></rect>'
        )
    pts = " ".join(f"{xx((edges[i] + edges[i + 1]) / 2):.1f},{yy(v):.1f}" for i, v in enumerate(ly))
    parts.append(f'<polyline fill="none" stroke="#1f5fa8" stroke-width="1" points="{pts}"/>')
    parts.append(
        f'<line x1="{pad}" x2="{width - pad}" y1="{yy(lt):.1f}" y2="{yy(lt):.1f}" stroke="#d62728" '
        f'stroke-dasharray="6,4"><title>threshold {threshold:.4g}</title></line>'
    )
    first, last = str(ts[0])[:16], str(ts[-1])[:16]
    parts.append(f'<text x="{pad}" y="{height - 12}" font-size="12">{html.escape(first)}</text>')
    parts.append(
        f'<text x="{width - pad}" y="{height - 12}" font-size="12" text-anchor="end">{html.escape(last)}</text>'
    )
    parts.append(
        f'<text x="{pad}" y="{pad - 12}" font-size="12">log10 score (blue), threshold (red dashed), '
        "labelled anomalies (shaded)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


def render_report(metrics: dict[str, Any], svg: str, detectors: dict[str, dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}"
        return html.escape("n/a" if value is None else str(value))

    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{cell(v)}</td></tr>"
        for k, v in metrics.items()
        if not isinstance(v, dict | list)
    )
    fields = (
        "composite_f1",
        "precision",
        "event_recall",
        "roc_auc",
        "pr_auc",
        "threshold",
        "threshold_source",
    )
    head = "".join(f"<th>{f}</th>" for f in ("detector", *fields))
    body = "".join(
        f"<tr><th>{html.escape(name)}</th>" + "".join(f"<td>{cell(d.get(f))}</td>" for f in fields) + "</tr>"
        for name, d in detectors.items()
    )
    verdict = (
        "Every detector's threshold was chosen on the validation split and applied unchanged to test."
        if metrics["evaluable"]
        else f"Not evaluable: {html.escape(str(metrics['not_evaluable']))}."
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>VAE anomaly detector: evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        "<h1>VAE anomaly detector: evaluation on the test split</h1>"
        f"<p>{verdict}</p>{svg}<h2>Model and baselines</h2><table><tr>{head}</tr>{body}</table>"
        "<h2>Model metrics</h2><p>oracle_composite_f1 is the best any threshold reaches on the test labels: "
        f"an upper bound for diagnosis, never used to decide.</p><table>{rows}</table></body></html>"
    )


def score_detectors(
    model: Any, artifact: dict[str, Any], splits: dict[str, tuple[Any, Any, Any]], seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(validation scores, test scores) of the model and each baseline."""
    import torch

    from trainer import baselines
    from trainer.model import anomaly_scores

    x_train, x_val, x_test = (splits[s][0] for s in ("train", "val", "test"))
    forest = baselines.iforest_scorer(x_train, seed)
    scaler = artifact["scaler"]
    return {
        "model": (
            anomaly_scores(model, torch.from_numpy(x_val), artifact.get("score")),
            anomaly_scores(model, torch.from_numpy(x_test), artifact.get("score")),
        ),
        "zscore": (baselines.zscore_scores(x_val, scaler), baselines.zscore_scores(x_test, scaler)),
        "iforest": (forest.score(x_val), forest.score(x_test)),
    }


def champion_scores(uri: str, artifact: dict[str, Any], splits: dict[str, Any]) -> tuple[Any, str]:
    """(validation and test scores of the serving model, or None; what happened) for ``--champion-model``.

    The serving model is re-scored on this run's splits through its own scaler, so both models are
    measured on the same window. A model that cannot be read or was trained on other features is
    reported, not fatal: the gate then falls back to the score recorded on the InferenceService.
    """
    import torch

    from trainer.model import anomaly_scores, load_artifact, scale, unscale

    try:
        champion, stored = load_artifact(uri, arg="--champion-model")
    except (ValueError, FileNotFoundError, OSError) as exc:
        return None, f"not re-scored: {exc}"
    if stored["scaler"]["features"] != artifact["scaler"]["features"]:
        return None, "not re-scored: the serving model was trained on other features"
    out = []
    for split in ("val", "test"):
        # Back to raw values, then through the champion's own scaler.
        raw = unscale(splits[split][0], artifact["scaler"])
        out.append(
            anomaly_scores(champion, torch.from_numpy(scale(raw, stored["scaler"])), stored.get("score"))
        )
    return (out[0], out[1]), f"re-scored {uri} on this run's splits"


def not_evaluable_reason(labelled: bool, test_labels: np.ndarray) -> str | None:
    """Why the test split cannot be scored against labels (None when it can)."""
    if not labelled:
        return "no labels: the dataset has no label column"
    if not events(test_labels):
        return "no labelled anomaly in the test split"
    return None


def evaluate_detectors(
    scores: dict[str, tuple[np.ndarray, np.ndarray]],
    val_labels: np.ndarray | None,
    test_labels: np.ndarray,
    *,
    evaluable: bool,
    contamination: float,
    labelled_rate: float | None,
    n_thresholds: int,
) -> dict[str, dict[str, Any]]:
    """Each detector's validation-chosen threshold and, when evaluable, its test metrics."""
    from trainer import metrics as m

    out: dict[str, dict[str, Any]] = {}
    for name, (val_scores, test_scores) in scores.items():
        threshold = m.choose_threshold(
            val_scores,
            val_labels,
            contamination=contamination,
            labelled_rate=labelled_rate,
            n_thresholds=n_thresholds,
        )
        result: dict[str, Any] = {"threshold": threshold.value, "threshold_source": threshold.source}
        if evaluable:
            result.update(m.assess(test_scores, test_labels, threshold.value))
        else:
            result["flagged_rows"] = int((test_scores >= threshold.value).sum())
        out[name] = result
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from trainer import io
    from trainer import metrics as m
    from trainer.model import artifact_bytes, load_artifact
    from trainer.train import load_split

    io.parse_uri(args.data, arg="--data")
    io.parse_uri(args.model, arg="--model")
    io.parse_uri(args.out, arg="--out")
    if args.model_out:
        io.parse_uri(args.model_out, arg="--model-out")
    if not 2 <= args.thresholds <= 100_000:
        raise ValueError(f"--thresholds must be in [2, 100000]; got {args.thresholds}")
    if not 0 < args.contamination <= 0.5:
        raise ValueError(f"--contamination must be in (0, 0.5]; got {args.contamination}")
    model, artifact = load_artifact(args.model, arg="--model")
    with io.local_input_dir(args.data, arg="--data") as prep:
        scaler = json.loads(Path(os.path.join(prep, "scaler.json")).read_text())
        if scaler["features"] != artifact["scaler"]["features"]:
            raise ValueError(
                f"--model {args.model!r} was trained on features {artifact['scaler']['features'][:3]}..., "
                f"--data has {scaler['features'][:3]}...: evaluate with the data the model was trained on"
            )
        splits = {s: load_split(prep, s, artifact["scaler"]) for s in ("train", "val", "test")}
    # Data preprocessed before labels were optional is labelled.
    labelled = bool(scaler.get("labelled", True))
    x_test, y_test, ts = splits["test"]
    if x_test.shape[0] == 0 or splits["val"][0].shape[0] == 0:
        raise ValueError("the validation or test split is empty; widen the data window")
    reason = not_evaluable_reason(labelled, y_test)
    scores = score_detectors(model, artifact, splits, args.seed)
    from trainer import tracking

    champion_note = None
    # The registry's champion, when tracking is on and it has one, else the model the service runs now.
    registry_champion, registry_note = tracking.champion_model_uri()
    if registry_champion is None and tracking.settings() is not None:
        log.info("evaluate: registry: %s", registry_note)
    champion_model = registry_champion or args.champion_model
    if champion_model:
        rescored, champion_note = champion_scores(champion_model, artifact, splits)
        if registry_champion:
            champion_note = f"{registry_note}: {champion_note}"
        if rescored is not None:
            scores["champion"] = rescored
        log.info("evaluate: serving model %s", champion_note)
    seen = [splits["train"][1], splits["val"][1]]
    rate = float(sum(y.sum() for y in seen) / sum(y.size for y in seen)) if labelled else None
    detectors = evaluate_detectors(
        scores,
        splits["val"][1] if labelled else None,
        y_test,
        evaluable=reason is None,
        contamination=args.contamination,
        labelled_rate=rate,
        n_thresholds=args.thresholds,
    )
    mine = detectors["model"]
    baseline_fc = {n: d.get("composite_f1") for n, d in detectors.items() if n not in ("model", "champion")}
    best_baseline = max(baseline_fc, key=lambda n: baseline_fc[n] or 0.0) if reason is None else None
    oracle = None
    if reason is None:
        table = m.sweep(scores["model"][1], y_test, args.thresholds)
        oracle = float(table["composite_f1"][m.best_threshold(table)])
    metrics: dict[str, Any] = {
        "evaluable": reason is None,
        "not_evaluable": reason,
        "composite_f1": mine.get("composite_f1"),
        "precision": mine.get("precision"),
        "recall": mine.get("recall"),
        "f1": mine.get("f1"),
        "event_recall": mine.get("event_recall"),
        "roc_auc": mine.get("roc_auc"),
        "pr_auc": mine.get("pr_auc"),
        "threshold": mine["threshold"],
        "threshold_source": mine["threshold_source"],
        "oracle_composite_f1": oracle,
        "baseline_composite_f1": baseline_fc[best_baseline] if best_baseline else None,
        "best_baseline": best_baseline,
        **{
            f"baseline_{name}_{field}": detectors[name].get(field)
            for name in baseline_fc
            for field in COMPARED
        },
        "champion_composite_f1": (detectors.get("champion") or {}).get("composite_f1"),
        "champion": champion_note,
        "flagged_rows": mine["flagged_rows"],
        "test_rows": int(x_test.shape[0]),
        "test_events": len(events(y_test)) if labelled else None,
        "val_events": len(events(splits["val"][1])) if labelled else None,
        "anomalous_rows": int(y_test.sum()) if labelled else None,
        "channels": len(scaler["channels"]),
    }
    if reason:
        log.warning("evaluate: not evaluable (%s); the gate applies its no-labels policy", reason)
    kfp = {
        "metrics": [
            {"name": k, "numberValue": float(v), "format": "RAW"}
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
    }
    artifact = {
        **artifact,
        "threshold": mine["threshold"],
        "threshold_source": mine["threshold_source"],
        # The oracle is a diagnostic of this test split, not a property of the model.
        "evaluation": {k: v for k, v in metrics.items() if v is not None and k != "oracle_composite_f1"},
    }
    doc = {**metrics, "detectors": detectors}
    plot = svg_plot(ts, scores["model"][1].astype(np.float64), y_test, mine["threshold"])
    report = render_report(metrics, plot, detectors)
    with io.output_dir(args.out, arg="--out") as staging:
        with open(os.path.join(staging, "metrics.json"), "w") as fh:
            json.dump(doc, fh, indent=2)
        with open(os.path.join(staging, "kfp_metrics.json"), "w") as fh:
            json.dump(kfp, fh, indent=2)
        with open(os.path.join(staging, "report.html"), "w") as fh:
            fh.write(report)
        if not args.model_out:
            with open(os.path.join(staging, "model.pt"), "wb") as fb:
                fb.write(artifact_bytes(artifact))
    model_uri = args.model_out or f"{args.out.rstrip('/')}/model.pt"
    if args.model_out:
        io.write_bytes(args.model_out, artifact_bytes(artifact), arg="--model-out")
    for name, d in detectors.items():
        fc = d.get("composite_f1")
        print(
            f"{name}: composite_f1={'n/a' if fc is None else f'{fc:.6f}'} threshold={d['threshold']:.6g}",
            flush=True,
        )
    base = args.out.rstrip("/")
    outputs = {
        "metrics": f"{base}/metrics.json",
        "kfp_metrics": f"{base}/kfp_metrics.json",
        "report": f"{base}/report.html",
        "model": model_uri,
    }
    files = {"metrics.json": json.dumps(doc, indent=2), "report.html": report, "plot.svg": plot}
    outputs.update(track_evaluation(metrics, files, artifact, model_uri))
    return {"outputs": outputs, "metrics": {k: v for k, v in metrics.items() if v is not None}}


def track_evaluation(
    metrics: dict[str, Any], files: dict[str, str], artifact: dict[str, Any], model_uri: str
) -> dict[str, str]:
    """Log the evaluation (metrics, ``files`` under ``evaluation/``) into the train run and register the
    model; ``{}`` when tracking is off."""
    import tempfile

    from trainer import tracking
    from trainer.model import artifact_bytes

    run = tracking.resume_train_run()
    if not run.active:
        return {}
    with tracking.finishing(run), tempfile.TemporaryDirectory() as tmp:
        run.log_metrics({f"eval_{k}": v for k, v in metrics.items()})
        for name, text in files.items():
            Path(tmp, name).write_text(text)
        run.log_artifacts(tmp, "evaluation")
        run.set_tags({tracking.MODEL_URI_TAG: model_uri})
        detector = Path(tmp, "detector", "model.pt")
        detector.parent.mkdir()
        detector.write_bytes(artifact_bytes(artifact))
        version = tracking.register(run, str(detector), model_uri, metrics)
    out = {"mlflow_run_id": run.run_id or ""}
    if version:
        out.update(registered_model=run.settings.registered_model, registered_version=version)
    return {k: v for k, v in out.items() if v}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="preprocess output URI")
    p.add_argument("--model", required=True, help="trained artifact URI")
    p.add_argument("--out", required=True, help="report directory URI")
    p.add_argument(
        "--model-out", default=None, help="where to write the thresholded artifact (default <out>/model.pt)"
    )
    p.add_argument("--thresholds", type=int, default=400, help="thresholds swept on validation (default 400)")
    p.add_argument(
        "--contamination",
        type=float,
        default=0.01,
        help="share of rows flagged when validation has no labelled event (default 0.01)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the IsolationForest baseline (default 0)")
    p.add_argument(
        "--champion-model",
        default=None,
        help="the model serving now: re-scored on the same splits for the gate (optional)",
    )
