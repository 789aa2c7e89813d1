"""The deploy gate's rules (pure), on the decision table both orchestrators are tested against."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from kubeflow_bridge.workflow import gate

CASES = json.loads((Path(__file__).with_name("decision_cases.json")).read_text())


def live_service(serving: str | None) -> dict[str, Any] | None:
    """The live InferenceService a case describes (None: nothing serves)."""
    if serving is None:
        return None
    annotations = {gate.metric_annotation("composite_f1"): serving} if serving else {}
    return {"metadata": {"name": "svc", "annotations": annotations}}


@pytest.mark.parametrize("case", CASES["gate"], ids=[c["case"] for c in CASES["gate"]])
def test_gate_table(case: dict[str, Any]) -> None:
    live = live_service(case["serving"])
    if "error" in case:
        with pytest.raises(ValueError, match=case["error"]):
            gate.serving_to_beat(live, "composite_f1", None)
        return
    score = gate.as_score("score", case["score"])
    decision = gate.decide(
        score,
        case["threshold"],
        gate.serving_to_beat(live, "composite_f1", case.get("rescored")),
        baseline=gate.as_score("baseline", case.get("baseline")),
        baseline_margin=case.get("margin", 0.0),
        evaluable=case.get("evaluable", True),
        no_labels_policy=case.get("policy", "if_nothing_serves"),
        serving_exists=live is not None,
    )
    assert (decision.deploy, decision.decided_by) == (case["deploy"], case["decided_by"])
    json.dumps(decision.as_dict(), allow_nan=False)  # XCom- and KFP-safe even for a NaN score


def test_lower_is_better_and_reasons() -> None:
    assert gate.decide(0.1, 0.2, 0.15, higher_is_better=False).deploy
    assert gate.decide(0.18, 0.2, 0.15, higher_is_better=False).decided_by == "serving_model"
    assert gate.decide(0.3, 0.2, higher_is_better=False).decided_by == "threshold"
    decision = gate.decide(0.85, 0.5, 0.8, metric="composite_f1")
    assert decision.reason == "composite_f1 0.85 clears 0.5 and beats the serving model's 0.8"
    assert gate.decide(math.inf, 0.5).decided_by == "no_score"


@pytest.mark.parametrize("bad", ["-inf", "nan", None, "high", True])
def test_a_threshold_must_be_a_finite_number(bad: Any) -> None:
    with pytest.raises(ValueError, match="threshold must be"):
        gate.as_threshold(bad)


def test_a_score_that_is_not_a_number_is_bad_input_not_a_decision() -> None:
    with pytest.raises(ValueError, match="metric_value must be a number"):
        gate.as_score("metric_value", "abc")
    with pytest.raises(ValueError, match="must be a number"):
        gate.as_score("metric_value", False)
    assert gate.as_score("metric_value", "") is None and gate.as_score("x", "0.5") == 0.5


def test_bad_margin_or_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="baseline_margin must be a finite number >= 0"):
        gate.decide(0.8, 0.5, baseline=0.5, baseline_margin=-0.1)
    with pytest.raises(ValueError, match="no_labels_policy must be one of"):
        gate.decide(None, 0.5, evaluable=False, no_labels_policy="maybe")
    assert gate.as_flag("evaluable", "False") is False and gate.as_flag("evaluable", True) is True
    with pytest.raises(ValueError, match="evaluable must be true or false"):
        gate.as_flag("evaluable", "perhaps")


def test_reasons_name_the_baseline_and_the_policy() -> None:
    decision = gate.decide(0.8, 0.5, baseline=0.82, metric="composite_f1")
    assert decision.reason == "composite_f1 0.8 does not beat the best baseline's 0.82 by more than 0"
    assert decision.as_dict()["baseline_score"] == 0.82
    kept = gate.decide(None, 0.5, 0.9, evaluable=False)
    assert kept.reason.endswith("no_labels_policy=if_nothing_serves and a model serves: keeps what serves")


def test_serving_model_uri_of_a_custom_or_a_runtime_predictor() -> None:
    trainer = {"spec": {"predictor": {"containers": [{"command": ["python", "-m", "trainer", "serve", "--model",
                                                                   "s3://b/r1/evaluation/model.pt", "--port", "8080"]}]}}}  # fmt: skip
    assert gate.serving_model_uri(trainer) == "s3://b/r1/evaluation/model.pt"
    as_arg = {"spec": {"predictor": {"containers": [{"args": ["--model=s3://b/m.pt"]}]}}}
    assert gate.serving_model_uri(as_arg) == "s3://b/m.pt"
    runtime = {"spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://m"}}}}
    assert gate.serving_model_uri(runtime) == "gs://m"
    assert gate.serving_model_uri(None) is None
    assert gate.serving_model_uri({"spec": {"predictor": {"containers": [{"image": "x"}]}}}) is None


def test_the_rescore_replaces_the_record_only_when_a_model_serves() -> None:
    live = live_service("0.9")
    assert gate.serving_to_beat(live, "composite_f1", 0.7) == 0.7
    assert gate.serving_to_beat(live, "composite_f1", None) == 0.9  # not re-scored: the record
    assert gate.serving_to_beat(live, "composite_f1", math.nan) == 0.9
    assert gate.serving_to_beat(None, "composite_f1", 0.7) is None


def test_metric_record_is_empty_for_no_score() -> None:
    # One rule for the KServe operator and the KFP deploy step: no score clears the previous record.
    assert [gate.metric_record(v) for v in (None, "", math.nan, "nan", math.inf)] == [""] * 5
    assert gate.metric_record(0.83) == "0.83" and gate.metric_record("0.5") == "0.5"
    assert gate.metric_record("v2") == "v2"  # a metric that is no number is recorded as given
