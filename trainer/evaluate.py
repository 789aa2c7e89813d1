"""``evaluate``: scores on the test split, a threshold sweep, point-wise and composite F-scores, a report.

The composite F-score (Garg et al. 2021, "An Evaluation of Anomaly Detection and Diagnosis in Multivariate
Time Series") combines point-wise precision ``Pt`` with event-wise recall ``Re`` (an event, a run of
labelled points, counts as found when any of its points is flagged): ``Fc = 2 Pt Re / (Pt + Re)``.

Writes to ``--out`` (a directory, published atomically): ``metrics.json``, ``kfp_metrics.json`` (KFP
Metrics shape ``{"metrics": [{"name", "numberValue", "format"}]}``), ``report.html`` (inline SVG, no
network) and ``model.pt``, a copy of the artifact with the best threshold recorded (or to ``--model-out``).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("trainer.evaluate")


def events(labels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of positive labels as half-open index ranges ``[start, end)``."""
    import numpy as np

    lab = np.asarray(labels).astype(bool).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.r_[0, lab, 0]))
    return [(int(edges[i]), int(edges[i + 1])) for i in range(0, len(edges), 2)]


def point_prf(labels: np.ndarray, preds: np.ndarray) -> tuple[float, float, float]:
    """Point-wise (precision, recall, F1); 0 where undefined."""
    import numpy as np

    y, p = np.asarray(labels).astype(bool), np.asarray(preds).astype(bool)
    tp = int((y & p).sum())
    prec = tp / int(p.sum()) if p.any() else 0.0
    rec = tp / int(y.sum()) if y.any() else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return prec, rec, f1


def event_recall(labels: np.ndarray, preds: np.ndarray) -> float:
    """Share of labelled events with at least one flagged point; 0 when there are no events."""
    import numpy as np

    evs = events(labels)
    p = np.asarray(preds).astype(bool)
    return sum(bool(p[s:e].any()) for s, e in evs) / len(evs) if evs else 0.0


def composite_f(labels: np.ndarray, preds: np.ndarray) -> float:
    """Fc = 2 Pt Re / (Pt + Re) with point-wise precision Pt and event-wise recall Re."""
    pt, _r, _f = point_prf(labels, preds)
    re = event_recall(labels, preds)
    return 2 * pt * re / (pt + re) if pt + re > 0 else 0.0


def sweep(scores: np.ndarray, labels: np.ndarray, n_thresholds: int = 400) -> dict[str, np.ndarray]:
    """Every metric at each candidate threshold (flag = score >= threshold), vectorised."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    qs = np.unique(np.quantile(s, np.linspace(0.5, 1.0, n_thresholds))) if s.size else np.zeros(0)
    all_sorted = np.sort(s)
    pos_sorted = np.sort(s[y])
    n_pred = s.size - np.searchsorted(all_sorted, qs, side="left")
    tp = pos_sorted.size - np.searchsorted(pos_sorted, qs, side="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
        recall = tp / pos_sorted.size if pos_sorted.size else np.zeros_like(qs)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        evs = events(y)
        ev_max = np.sort(np.array([s[a:b].max() for a, b in evs])) if evs else np.zeros(0)
        ev_rec = (ev_max.size - np.searchsorted(ev_max, qs, side="left")) / ev_max.size if evs else 0 * qs
        fc = np.where(precision + ev_rec > 0, 2 * precision * ev_rec / (precision + ev_rec), 0.0)
    return {
        "threshold": qs,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "event_recall": ev_rec,
        "composite_f1": fc,
    }


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC via ranks (ties averaged); None with one class only."""
    import numpy as np
    import pandas as pd

    y = np.asarray(labels).astype(bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return None
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def best_threshold(table: dict[str, np.ndarray]) -> int:
    """Index of the threshold with the highest composite F-score (the highest threshold among ties)."""
    import numpy as np

    fc = table["composite_f1"]
    best = np.flatnonzero(fc == fc.max())
    return int(best[-1])


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


def render_report(metrics: dict[str, Any], svg: str, table: dict[str, np.ndarray]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in metrics.items()
        if not isinstance(v, dict | list)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>VAE anomaly detector: evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        "<h1>VAE anomaly detector: evaluation on the test split</h1>"
        f"{svg}<h2>Metrics (best threshold by composite F-score)</h2><table>{rows}</table>"
        f"<p>{len(table['threshold'])} thresholds swept.</p></body></html>"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from trainer import io
    from trainer.model import anomaly_scores, artifact_bytes, load_artifact
    from trainer.train import load_split

    io.parse_uri(args.data, arg="--data")
    io.parse_uri(args.model, arg="--model")
    io.parse_uri(args.out, arg="--out")
    if args.model_out:
        io.parse_uri(args.model_out, arg="--model-out")
    if not 2 <= args.thresholds <= 100_000:
        raise ValueError(f"--thresholds must be in [2, 100000]; got {args.thresholds}")
    model, artifact = load_artifact(args.model, arg="--model")
    with io.local_input_dir(args.data, arg="--data") as prep:
        scaler = json.loads(Path(os.path.join(prep, "scaler.json")).read_text())
        if scaler["features"] != artifact["scaler"]["features"]:
            raise ValueError(
                f"--model {args.model!r} was trained on features {artifact['scaler']['features'][:3]}..., "
                f"--data has {scaler['features'][:3]}...: evaluate with the data the model was trained on"
            )
        x, y, ts = load_split(prep, "test", artifact["scaler"])
    if x.shape[0] == 0:
        raise ValueError("the test split is empty; widen the data window")
    scores = anomaly_scores(model, torch.from_numpy(x))
    table = sweep(scores, y, args.thresholds)
    i = best_threshold(table)
    threshold = float(table["threshold"][i])
    n_events = len(events(y))
    metrics: dict[str, Any] = {
        "composite_f1": float(table["composite_f1"][i]),
        "precision": float(table["precision"][i]),
        "recall": float(table["recall"][i]),
        "f1": float(table["f1"][i]),
        "event_recall": float(table["event_recall"][i]),
        "threshold": threshold,
        "roc_auc": roc_auc(scores, y),
        "test_rows": int(x.shape[0]),
        "test_events": n_events,
        "anomalous_rows": int(y.sum()),
    }
    if n_events == 0:
        log.warning("evaluate: the test split has no labelled anomalies; F-scores are 0 by definition")
    kfp = {
        "metrics": [
            {"name": k, "numberValue": float(v), "format": "RAW"}
            for k, v in metrics.items()
            if isinstance(v, int | float) and v is not None
        ]
    }
    artifact = {
        **artifact,
        "threshold": threshold,
        "threshold_source": "evaluate_best_fc",
        "evaluation": {k: v for k, v in metrics.items() if v is not None},
    }
    doc = {**metrics, "sweep": {k: [float(v) for v in vals] for k, vals in table.items()}}
    with io.output_dir(args.out, arg="--out") as staging:
        with open(os.path.join(staging, "metrics.json"), "w") as fh:
            json.dump(doc, fh, indent=2)
        with open(os.path.join(staging, "kfp_metrics.json"), "w") as fh:
            json.dump(kfp, fh, indent=2)
        with open(os.path.join(staging, "report.html"), "w") as fh:
            fh.write(render_report(metrics, svg_plot(ts, scores.astype(np.float64), y, threshold), table))
        if not args.model_out:
            with open(os.path.join(staging, "model.pt"), "wb") as fb:
                fb.write(artifact_bytes(artifact))
    model_uri = args.model_out or f"{args.out.rstrip('/')}/model.pt"
    if args.model_out:
        io.write_bytes(args.model_out, artifact_bytes(artifact), arg="--model-out")
    for k in ("composite_f1", "precision", "recall", "f1", "threshold"):
        print(f"{k}={metrics[k]:.6f}", flush=True)
    base = args.out.rstrip("/")
    return {
        "outputs": {
            "metrics": f"{base}/metrics.json",
            "kfp_metrics": f"{base}/kfp_metrics.json",
            "report": f"{base}/report.html",
            "model": model_uri,
        },
        "metrics": {k: v for k, v in metrics.items() if v is not None},
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="preprocess output URI")
    p.add_argument("--model", required=True, help="trained artifact URI")
    p.add_argument("--out", required=True, help="report directory URI")
    p.add_argument(
        "--model-out", default=None, help="where to write the thresholded artifact (default <out>/model.pt)"
    )
    p.add_argument("--thresholds", type=int, default=400, help="number of thresholds to sweep (default 400)")
