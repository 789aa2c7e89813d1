"""The trained detector as an MLflow pyfunc model (``mlflow models serve``, KServe's MLflow format).

It wraps the same scorer the KServe predictor uses (:class:`trainer.serve.AnomalyScorer`): rows of raw
channels or of features in, one anomaly score and flag per row out, with the model's own scaler and
threshold. Imported only when a run logs its model (it imports mlflow).
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc


class AnomalyDetectorModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Scores rows with the artifact logged as ``artifacts["detector"]`` (``model.pt``)."""

    def load_context(self, context: Any) -> None:
        from trainer.serve import AnomalyScorer

        self.scorer = AnomalyScorer(context.artifacts["detector"])

    # No type hints here: MLflow reads them as the model's input schema (rows are a DataFrame).
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import pandas as pd

        rows = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
        scores, flags = self.scorer.score(rows)
        return pd.DataFrame({"score": scores, "anomaly": flags})
