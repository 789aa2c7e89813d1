"""Shared by the two orchestrators' decision tests: the case table, a tiny trained model, the live checks.

Imported by path from both environments' tests (``load_decisions()``), so it may import only the
standard library, httpx and the bridge's core.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from kubeflow_bridge import workflow
from kubeflow_bridge.workflow.gate import metric_annotation

CASES: dict[str, Any] = json.loads(Path(__file__).with_name("decision_cases.json").read_text())
SERVICE = "decide"


def train_tiny_model(trainer_python: str, folder: Path) -> Path:
    """Ingest, preprocess and train a small VAE with the trainer CLI; return the model file."""
    data, features, model = folder / "raw", folder / "features", folder / "model.pt"
    steps = [
        ["ingest", "--out", str(data), "--rows", "2000", "--seed", "3"],
        ["preprocess", "--data", str(data), "--out", str(features), "--scheduler", "threads"],
        ["train", "--data", str(features), "--model-out", str(model), "--epochs", "1",
         "--hidden-dims", "16,8", "--latent-dim", "2", "--device", "cpu"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(
            [trainer_python, "-m", "trainer", *step], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
    return model


def case_prefix(root: Path, index: int, case: dict[str, Any], model: Path) -> str:
    """A run prefix whose evaluated model is the trained one (or absent for a ``missing`` model)."""
    prefix = root / f"case-{index}"
    target = Path(workflow.evaluated_model_uri(str(prefix)))
    target.parent.mkdir(parents=True, exist_ok=True)
    if case["model"] == "good":
        shutil.copy(model, target)
    return str(prefix)


def create_serving_record(api: str, namespace: str, name: str, serving: str) -> None:
    """A live InferenceService carrying a recorded score (it need not serve for the gate to read it)."""
    annotations = {metric_annotation(workflow.F_SCORE_METRIC): serving} if serving else {}
    body = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"predictor": {"containers": [{"name": "kserve-container", "image": "python:3.11",
                                               "command": ["python", "-c", "import time; time.sleep(600)"]}]}},
    }  # fmt: skip
    httpx.post(
        f"{api}/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices",
        json=body,
        timeout=10,
    ).raise_for_status()


def read_service(api: str, namespace: str) -> dict[str, Any]:
    resp = httpx.get(
        f"{api}/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{SERVICE}", timeout=10
    )
    resp.raise_for_status()
    return dict(resp.json())


def check_serving(live: dict[str, Any], case: dict[str, Any], prefix: str, recorded: str) -> None:
    """Who serves after the case: ``this`` case's model on all traffic, or the ``previous`` revision."""
    traffic = live["status"]["components"]["predictor"]["traffic"]
    latest = sum(int(t.get("percent") or 0) for t in traffic if t.get("latestRevision"))
    if case["serving"] == "this":
        assert latest == 100, traffic
        command = live["spec"]["predictor"]["containers"][0]["command"]
        assert workflow.evaluated_model_uri(prefix) in command
        assert "canaryTrafficPercent" not in live["spec"]["predictor"]
    else:
        assert latest == 0 and sum(int(t.get("percent") or 0) for t in traffic) == 100, traffic
        assert live["spec"]["predictor"]["canaryTrafficPercent"] == 0
    # The gate's record always describes the model that serves.
    assert live["metadata"]["annotations"][metric_annotation(workflow.F_SCORE_METRIC)] == recorded


def case_score(index: int) -> float:
    """Each rollout case deploys a distinct score, so the record shows which model it describes."""
    return round(0.5 + index / 100, 2)
