"""Katib search spaces as Ray Tune objects (real Ray Tune / Optuna classes, no cluster started)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeflow_bridge.local.katib import search
from kubeflow_bridge.local.katib.validation import validate_experiment
from kubeflow_bridge.resources.errors import ValidationError


def _exp(
    algorithm: str = "random", params: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "e", "namespace": "default"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": algorithm},
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


def test_grid_respects_steps_and_lists() -> None:
    setup = search.build_tune_setup(_exp("grid"))
    assert setup.param_space["lr"] == {"grid_search": [0.01, 0.02, 0.03, 0.04, 0.05]}
    assert setup.param_space["layers"] == {"grid_search": [1, 2, 3]}
    assert setup.param_space["opt"] == {"grid_search": ["sgd", "adam"]}
    assert setup.num_samples == 1 and setup.mode == "min" and setup.max_concurrent == 2


def test_random_and_tpe_and_medianstop() -> None:
    from ray.tune.schedulers import MedianStoppingRule
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.sample import Categorical, Float, Integer

    setup = search.build_tune_setup(_exp("random"))
    assert isinstance(setup.param_space["lr"], Float)
    assert isinstance(setup.param_space["layers"], Integer)
    assert isinstance(setup.param_space["opt"], Categorical)
    assert setup.num_samples == 6 and setup.scheduler is None
    tpe = search.build_tune_setup(
        _exp(
            "tpe",
            earlyStopping={
                "algorithmName": "medianstop",
                "algorithmSettings": [{"name": "min_trials_required", "value": "2"}],
            },
        )
    )
    assert isinstance(tpe.search_alg, ConcurrencyLimiter)
    assert isinstance(tpe.search_alg.searcher, OptunaSearch)
    assert isinstance(tpe.scheduler, MedianStoppingRule)
    assert tpe.scheduler._min_samples_required == 2


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
