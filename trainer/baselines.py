"""Simple detectors every evaluation scores beside the model, on the same split, features and protocol.

- ``zscore``: the rolling z-score, per channel ``|x - rolling mean| / rolling std`` over preprocess's
  window (the features already hold both), the largest over channels.
- ``iforest``: scikit-learn's IsolationForest fitted on the training split's scaled features.

A model that does not beat them has not earned its place; the gate holds it to the better one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: Baselines in report order.
NAMES = ("zscore", "iforest")
#: Rows IsolationForest is fitted on at most (a seeded sample of the training split): its trees use 256.
IFOREST_FIT_ROWS = 100_000


def zscore_scores(x: np.ndarray, scaler: dict[str, Any]) -> np.ndarray:
    """Rolling z-score of scaled features ``x`` (rows x features in the scaler's order)."""
    import numpy as np

    from trainer.model import unscale

    raw = unscale(x, scaler)
    col = {name: i for i, name in enumerate(scaler["features"])}
    channels = scaler["channels"]
    value = raw[:, [col[c] for c in channels]]
    mean = raw[:, [col[f"{c}__rmean"] for c in channels]]
    std = raw[:, [col[f"{c}__rstd"] for c in channels]]
    # A flat window (std 0) would divide by zero: floor it at a thousandth of the channel's train spread.
    floor = 1e-3 * np.asarray(scaler["std"], dtype=np.float32)[[col[c] for c in channels]]
    return np.asarray((np.abs(value - mean) / np.maximum(std, floor)).max(axis=1), dtype=np.float64)


def iforest_scorer(train_x: np.ndarray, seed: int) -> Any:
    """An IsolationForest fitted on (a seeded sample of) ``train_x``; call ``score(x)`` on other splits."""
    import numpy as np
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(seed)
    sample = train_x
    if train_x.shape[0] > IFOREST_FIT_ROWS:
        sample = train_x[rng.choice(train_x.shape[0], IFOREST_FIT_ROWS, replace=False)]
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(sample)

    class Scorer:
        @staticmethod
        def score(x: np.ndarray) -> np.ndarray:
            # score_samples is higher for normal rows; negate so that higher means more anomalous.
            return np.asarray(-forest.score_samples(x), dtype=np.float64)

    return Scorer()
