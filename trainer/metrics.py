"""Detection metrics and the threshold protocol that ``evaluate`` applies to every detector.

The composite F-score (Garg et al. 2021, "An Evaluation of Anomaly Detection and Diagnosis in Multivariate
Time Series") combines point-wise precision ``Pt`` with event-wise recall ``Re`` (an event, a run of
labelled points, counts as found when any of its points is flagged): ``Fc = 2 Pt Re / (Pt + Re)``.

The protocol (:func:`choose_threshold`, then :func:`assess`): a detector's threshold is chosen on the
validation split only, then applied unchanged to the test split. Test labels are read only to measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: Where a threshold came from (recorded in the model artifact and the evaluation).
VAL_BEST_FC = "val_best_fc"
VAL_LABELLED_RATE = "val_labelled_rate"
VAL_CONTAMINATION = "val_contamination"
#: Labelled events validation needs before its best composite F picks the threshold: with one or two,
#: the best threshold just isolates their peaks and flags nothing on the next window.
MIN_VAL_EVENTS = 3


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


def best_threshold(table: dict[str, np.ndarray]) -> int:
    """Index of the threshold with the highest composite F-score (the highest threshold among ties)."""
    import numpy as np

    fc = table["composite_f1"]
    best = np.flatnonzero(fc == fc.max())
    return int(best[-1])


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


def pr_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the point-wise precision-recall curve (average precision); None with one class only."""
    import numpy as np

    y = np.asarray(labels).astype(bool)
    if not y.any() or y.all():
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    s, hits = np.asarray(scores, dtype=np.float64)[order], y[order]
    tp = np.cumsum(hits)
    # Tied scores form one threshold: evaluate precision/recall at the last index of each tie group.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    precision, recall = tp[last] / (last + 1), tp[last] / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class Threshold:
    """A detector's threshold, chosen on validation data.

    Attributes:
        value: Flag a row when its score is at or above this.
        source: ``val_best_fc`` (the best composite F on validation labels, when validation holds at
            least :data:`MIN_VAL_EVENTS` events), ``val_labelled_rate`` (the validation-score quantile that
            flags the labelled share of training and validation rows, when it holds fewer) or
            ``val_contamination`` (the ``1 - contamination`` quantile, when there are no labels).
    """

    value: float
    source: str


def choose_threshold(
    val_scores: np.ndarray,
    val_labels: np.ndarray | None,
    *,
    contamination: float,
    labelled_rate: float | None = None,
    n_thresholds: int = 400,
) -> Threshold:
    """The protocol's threshold from validation scores and labels (never the test split's).

    Args:
        val_scores: The detector's scores on the validation split.
        val_labels: Validation labels (None: the data is unlabelled).
        contamination: The share of rows to flag without labels, in (0, 0.5].
        labelled_rate: The anomalous share of the training and validation labels (None: unlabelled).
        n_thresholds: Candidate thresholds for the validation sweep.

    Raises:
        ValueError: No validation scores, or ``contamination`` outside (0, 0.5].
    """
    import numpy as np

    if not 0 < contamination <= 0.5:
        raise ValueError(f"contamination must be in (0, 0.5]; got {contamination}")
    s = np.asarray(val_scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("the validation split is empty: no threshold can be chosen; widen the data window")
    if val_labels is not None and len(events(val_labels)) >= MIN_VAL_EVENTS:
        table = sweep(s, val_labels, n_thresholds)
        return Threshold(float(table["threshold"][best_threshold(table)]), VAL_BEST_FC)
    if labelled_rate is not None and 0 < labelled_rate < 1:
        return Threshold(float(np.quantile(s, 1.0 - labelled_rate)), VAL_LABELLED_RATE)
    return Threshold(float(np.quantile(s, 1.0 - contamination)), VAL_CONTAMINATION)


def assess(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """Metrics of flagging ``scores >= threshold`` against ``labels`` (the test split)."""
    import numpy as np

    preds = np.asarray(scores) >= threshold
    precision, recall, f1 = point_prf(labels, preds)
    return {
        "composite_f1": composite_f(labels, preds),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "event_recall": event_recall(labels, preds),
        "roc_auc": roc_auc(scores, labels),
        "pr_auc": pr_auc(scores, labels),
        "flagged_rows": int(preds.sum()),
    }
