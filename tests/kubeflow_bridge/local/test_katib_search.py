"""Katib search spaces served in-process (real Optuna samplers) and Katib's medianstop rule."""

from __future__ import annotations

from typing import Any

import pytest

from kubeflow_bridge.local.katib import search
from kubeflow_bridge.local.katib.validation import validate_experiment
from kubeflow_bridge.resources.errors import ValidationError


def _exp(
    algorithm: str = "random",
    params: list[dict[str, Any]] | None = None,
    settings: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "e", "namespace": "default"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {
                "algorithmName": algorithm,
                "algorithmSettings": [{"name": k, "value": v} for k, v in (settings or {}).items()],
            },
            "parallelTrialCount": 2,
            "maxTrialCount": 6,
            "maxFailedTrialCount": 2,
            "parameters": params
            or [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.01", "max": "0.05", "step": "0.01"},
                },
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
                {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "lr", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "main",
                                        "image": "python:3.11",
                                        "command": ["echo", "${trialParameters.lr}"],
                                    }
                                ],
                                "restartPolicy": "Never",
                            }
                        }
                    },
                },
            },
            **extra,
        },
    }


def test_grid_walks_every_point_once_and_skips_existing_trials() -> None:
    searcher = search.Searcher(_exp("grid"))
    searcher.note({"lr": "0.01", "layers": "1", "opt": "sgd"})  # a trial from before a restart
    points = []
    while (point := searcher.ask(f"t{len(points)}")) is not None:
        points.append(point)
    assert len(points) == 5 * 3 * 2 - 1
    assert {"lr": "0.01", "layers": "1", "opt": "sgd"} not in points
    assert {p["lr"] for p in points} == {"0.01", "0.02", "0.03", "0.04", "0.05"}
    assert {p["layers"] for p in points} == {"1", "2", "3"} and {p["opt"] for p in points} == {"sgd", "adam"}
    assert len({tuple(p.values()) for p in points}) == len(points)


@pytest.mark.parametrize("algorithm", ["random", "tpe", "multivariate-tpe", "bayesianoptimization"])
def test_samplers_stay_in_the_feasible_space(algorithm: str) -> None:
    params = [
        {
            "name": "lr",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"},
        },
        {
            "name": "drop",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.1", "max": "0.5", "step": "0.1"},
        },
        {"name": "units", "parameterType": "int", "feasibleSpace": {"min": "8", "max": "64", "step": "8"}},
        {"name": "opt", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2"]}},
    ]
    exp = _exp(
        algorithm,
        params,
        settings={"random_state": "3", "n_startup_trials": "2"},
    )
    searcher = search.Searcher(exp)
    for index in range(8):
        point = searcher.ask(f"t{index}")
        assert point is not None
        assert 0.0001 <= float(point["lr"]) <= 0.1
        assert point["drop"] in {"0.1", "0.2", "0.3", "0.4", "0.5"}
        assert int(point["units"]) in range(8, 65, 8) and point["opt"] in {"1", "2"}
        searcher.tell(f"t{index}", point, None if index == 3 else float(point["lr"]))


def test_tpe_learns_from_told_trials_including_ones_it_did_not_propose() -> None:
    params = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "10"}}]
    exp = _exp(
        "tpe",
        params,
        settings={"random_state": "1", "n_startup_trials": "5"},
    )
    searcher = search.Searcher(exp)
    # five trials a restarted suggestion finds finished, then its own 25: loss (x - 7)^2, minimized
    for index, x in enumerate(["0.5", "2.0", "4.0", "6.5", "9.5"]):
        searcher.tell(f"old{index}", {"x": x}, (float(x) - 7) ** 2)
    asked = []
    for index in range(25):
        point = searcher.ask(f"t{index}")
        assert point is not None
        asked.append(float(point["x"]))
        searcher.tell(f"t{index}", point, (float(point["x"]) - 7) ** 2)
    # TPE concentrates around the optimum; uniform sampling puts 1/5 of the points within 1 of it
    # (3 of 15 expected; 7 or more has probability 0.018)
    near = sum(abs(x - 7) < 1 for x in asked[-15:])
    assert near >= 7, asked


def test_searcher_refuses_what_it_cannot_search() -> None:
    no_step = [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}}]
    with pytest.raises(search.SearchSpaceError, match="grid search needs a step"):
        search.Searcher(_exp("grid", no_step))


def test_medianstop_is_katibs_rule() -> None:
    from kubeflow_bridge.local.katib.suggestion import median_stop_of

    exp = _exp(
        "random",
        earlyStopping={
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"},
                {"name": "start_step", "value": "3"},
            ],
        },
    )
    rule = median_stop_of(exp)
    assert rule is not None and not rule.maximize
    assert (rule.min_trials_required, rule.start_step) == (2, 3)
    rule.succeeded("a", [1.0, 0.5, 0.3])  # average 0.6
    assert not rule.should_stop([5.0, 5.0, 5.0])  # one succeeded trial < min_trials_required
    rule.succeeded("b", [0.4, 0.2])  # average 0.3: median 0.45
    assert not rule.should_stop([5.0, 5.0])  # before start_step
    assert rule.should_stop([5.0, 5.0, 5.0])
    assert not rule.should_stop([5.0, 5.0, 0.44])  # the latest value counts
    exp["spec"]["objective"]["type"] = "maximize"
    maximize = median_stop_of(exp)
    assert maximize is not None
    maximize.succeeded("a", [0.8]), maximize.succeeded("b", [0.9])
    assert maximize.should_stop([0.1, 0.2, 0.3]) and not maximize.should_stop([0.1, 0.2, 0.86])
    assert median_stop_of(_exp("random")) is None


def test_format_values_as_katib_strings() -> None:
    double = {"parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.01"}}
    assert search.format_value(double, 0.30000000000000004) == "0.3"
    assert search.format_value({"parameterType": "int"}, 3.0) == "3"
    assert search.format_value({"parameterType": "categorical"}, "adam") == "adam"


def test_local_validation_rejects_unsupported_and_grid_without_step() -> None:
    validate_experiment(_exp("tpe"))
    with pytest.raises(ValidationError, match="not served by the local runtime"):
        validate_experiment(_exp("hyperband"))
    no_step = [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}}]
    with pytest.raises(ValidationError, match="grid search needs a step"):
        validate_experiment(_exp("grid", no_step))
    with pytest.raises(ValidationError, match=r"algorithmName"):
        validate_experiment(_exp("no-such-algorithm"))


def test_katib_defaults_are_filled_in_like_the_webhook() -> None:
    exp = _exp("random")
    exp["spec"].pop("parallelTrialCount")
    exp["spec"]["objective"]["additionalMetricNames"] = ["acc"]
    exp["spec"]["objective"]["metricStrategies"] = [{"name": "acc", "value": "latest"}]
    validate_experiment(exp)
    spec = exp["spec"]
    assert spec["parallelTrialCount"] == 3
    assert spec["resumePolicy"] == "Never"
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert spec["objective"]["metricStrategies"] == [
        {"name": "acc", "value": "latest"},
        {"name": "loss", "value": "min"},
    ]
    assert (
        spec["trialTemplate"]["successCondition"]
        == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    )
    assert (
        spec["trialTemplate"]["failureCondition"] == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    )
    assert "primaryPodLabels" not in spec["trialTemplate"]


def test_suggestion_api_calls_retry_transient_errors_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubeflow_bridge.local.katib import suggestion

    monkeypatch.setattr(suggestion.time, "sleep", lambda _s: None)

    class Flaky(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(f"HTTP {status}")
            self.status = status

    class Api:  # the seam: a kubernetes API object whose server answers 503, 429, then 200
        def __init__(self, statuses: list[int]) -> None:
            self.statuses = statuses
            self.calls = 0

        def get(self, name: str) -> str:
            self.calls += 1
            if self.statuses:
                raise Flaky(self.statuses.pop(0))
            return f"got {name}"

    flaky = Api([503, 429])
    assert suggestion._Retrying(flaky).get("t") == "got t"
    assert flaky.calls == 3
    not_found = Api([404])
    with pytest.raises(Flaky):
        suggestion._Retrying(not_found).get("t")
    assert not_found.calls == 1
    down = Api([500] * 10)
    with pytest.raises(Flaky):
        suggestion._Retrying(down).get("t")
    assert down.calls == suggestion.RETRIES


def test_the_searcher_learns_the_strategy_value_of_succeeded_and_early_stopped_trials() -> None:
    from kubeflow_bridge.local.katib import status as katib_status
    from kubeflow_bridge.local.katib.suggestion import _final_value

    def trial(mark: Any, latest: str = "0.9") -> dict[str, Any]:
        status: dict[str, Any] = {
            "observation": {"metrics": [{"name": "loss", "min": "0.2", "max": "1.5", "latest": latest}]}
        }
        katib_status.mark_trial_running(status)
        mark(status)
        objective = {"objectiveMetricName": "loss", "metricStrategies": [{"name": "loss", "value": "min"}]}
        return {"spec": {"objective": objective}, "status": status}

    assert _final_value(trial(katib_status.mark_trial_succeeded)) == 0.2
    assert _final_value(trial(katib_status.mark_trial_early_stopped)) == 0.2
    assert _final_value(trial(katib_status.mark_trial_failed)) is None
    assert _final_value(trial(lambda status: None)) is None  # still running
