"""The rollout's pure parts: what counts as the canary's answer, and the plan's own checks."""

from __future__ import annotations

import json

import pytest

from kubeflow_bridge.workflow.rollout import Rollout, canary_answered, canary_in_flight

PAYLOAD = {"instances": [[0.0] * 3, [0.0] * 3]}
GOOD = json.dumps({"predictions": [{"score": 0.1}, {"score": 0.2}]})


@pytest.mark.parametrize(
    ("status", "served_by", "body", "direct", "verdict"),
    [
        (200, "svc-00002", GOOD, False, "ok"),
        (200, None, GOOD, False, "ok"),  # the server does not say which revision answered
        (200, "svc-00001", GOOD, False, "other_revision"),  # the old revision answered: ask again
        (200, "svc-00001", GOOD, True, "ok"),  # sent to the new revision's own URL
        (400, "svc-00002", '{"error": "expected 10 values a row"}', False, "bad"),
        (200, "svc-00002", json.dumps({"predictions": [{"score": 0.1}]}), False, "bad"),  # one of two
        (200, "svc-00002", "<html>gateway</html>", False, "bad"),
    ],
)
def test_canary_answered(status: int, served_by: str | None, body: str, direct: bool, verdict: str) -> None:
    found = canary_answered(
        status=status,
        served_by=served_by,
        body=body,
        payload=PAYLOAD,
        expected_revision="svc-00002",
        direct=direct,
    )
    assert found.verdict == verdict, found.message


def test_v2_answers_need_outputs() -> None:
    v2 = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
    args = {"status": 200, "served_by": None, "payload": v2, "expected_revision": None, "direct": False}
    assert canary_answered(body='{"outputs": []}', **args).verdict == "ok"
    assert canary_answered(body='{"predictions": []}', **args).verdict == "bad"


def test_plan_checks_and_canary_in_flight() -> None:
    with pytest.raises(ValueError, match="canary_percent must be an integer from 0 to 100"):
        Rollout(name="svc", namespace="ns", canary_percent=150)
    assert canary_in_flight({"spec": {"predictor": {"canaryTrafficPercent": 0}}}) == 0
    assert canary_in_flight({"spec": {"predictor": {}}}) is None and canary_in_flight(None) is None
