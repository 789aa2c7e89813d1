"""Katib search spaces and algorithms as Ray Tune search spaces and search algorithms.

Supported algorithm names (the local runtime's katib-config):

* ``random``: Ray's BasicVariantGenerator over tune.uniform / loguniform / quniform / randint /
  qrandint / choice (``random_state`` setting seeds it);
* ``grid``: tune.grid_search over every parameter (int: min..max by step, default 1; double: needs
  ``step``; categorical and discrete: their lists);
* ``bayesianoptimization``, ``tpe``, ``multivariate-tpe``: OptunaSearch with Optuna's TPE sampler
  (settings ``random_state``, ``n_startup_trials``/``n_initial_points``);
* early stopping ``medianstop``: Ray's MedianStoppingRule (``min_trials_required`` default 3,
  ``start_step`` default 4, as Katib's medianstop service).

Not supported locally (Invalid at create, saying so): cmaes, sobol, hyperband, pbt, enas, darts.
Ray is imported inside the functions: the controller imports this module for the name lists only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SUPPORTED_ALGORITHMS = ("random", "grid", "bayesianoptimization", "tpe", "multivariate-tpe")
UNSUPPORTED_ALGORITHMS = ("cmaes", "sobol", "hyperband", "pbt", "enas", "darts")
SUPPORTED_EARLY_STOPPING = ("medianstop",)
OBJECTIVE_KEY = "objective"


class SearchSpaceError(ValueError):
    """A search space the chosen algorithm cannot use (e.g. a double without step under grid)."""


def settings_of(spec: dict[str, Any] | None) -> dict[str, str]:
    """``algorithmSettings`` as a dict."""
    return {s["name"]: str(s.get("value", "")) for s in (spec or {}).get("algorithmSettings") or []}


def local_problems(experiment: dict[str, Any]) -> list[tuple[str, str]]:
    """What this local runtime cannot run, as (field, message) pairs; empty when it can."""
    spec = experiment.get("spec") or {}
    out: list[tuple[str, str]] = []
    name = (spec.get("algorithm") or {}).get("algorithmName")
    if name in UNSUPPORTED_ALGORITHMS:
        out.append(
            (
                "spec.algorithm.algorithmName",
                f"algorithm {name!r} is not served by the local runtime; use one of {list(SUPPORTED_ALGORITHMS)}",
            )
        )
    if name == "grid":
        for index, param in enumerate(spec.get("parameters") or []):
            space = param.get("feasibleSpace") or {}
            if param.get("parameterType") == "double" and not space.get("step"):
                out.append(
                    (
                        f"spec.parameters[{index}].feasibleSpace.step",
                        f"grid search needs a step for double parameter {param.get('name')!r}: set feasibleSpace.step",
                    )
                )
    collector = spec.get("metricsCollectorSpec") or {}
    kind = (collector.get("collector") or {}).get("kind", "StdOut")
    if kind not in ("StdOut", "None", "File"):
        out.append(
            (
                "spec.metricsCollectorSpec.collector.kind",
                f"metrics collector {kind!r} is not supported by the local runtime; use StdOut or File",
            )
        )
    if kind == "File":
        path = (collector.get("source") or {}).get("fileSystemPath") or {}
        if not str(path.get("path") or "").startswith("/") or str(
            path.get("format") or "TEXT"
        ).upper() not in ("TEXT", "JSON"):
            out.append(
                (
                    "spec.metricsCollectorSpec.source.fileSystemPath",
                    "the File collector needs an absolute path and format TEXT or JSON",
                )
            )
    return out


def _decimals(step: str) -> int:
    return max(0, -math.floor(math.log10(abs(float(step))))) + 2 if float(step) else 6


def format_value(param: dict[str, Any], value: Any) -> str:
    """A suggested value as Katib writes it in parameterAssignments (a string)."""
    ptype = param.get("parameterType")
    if ptype == "int":
        return str(round(float(value)))
    if ptype == "double":
        step = (param.get("feasibleSpace") or {}).get("step")
        number = float(value)
        if step:
            number = round(number, _decimals(step))
        return repr(number)
    return str(value)


def _grid_values(param: dict[str, Any]) -> list[Any]:
    space = param.get("feasibleSpace") or {}
    ptype = param.get("parameterType")
    if ptype in ("categorical", "discrete"):
        return list(space.get("list") or [])
    if ptype == "int":
        return list(range(int(space["min"]), int(space["max"]) + 1, int(space.get("step") or 1)))
    low, high, step = float(space["min"]), float(space["max"]), float(space["step"])
    count = math.floor((high - low) / step + 1e-9) + 1
    return [round(low + i * step, _decimals(space["step"])) for i in range(count)]


def _random_domain(param: dict[str, Any]) -> Any:
    from ray import tune

    space = param.get("feasibleSpace") or {}
    ptype = param.get("parameterType")
    if ptype in ("categorical", "discrete"):
        return tune.choice(list(space.get("list") or []))
    step = space.get("step")
    if ptype == "int":
        low, high = int(space["min"]), int(space["max"])
        return tune.qrandint(low, high, int(step)) if step else tune.randint(low, high + 1)
    low_f, high_f = float(space["min"]), float(space["max"])
    log = space.get("distribution") in ("logUniform", "logNormal")
    if step:
        return (
            tune.qloguniform(low_f, high_f, float(step)) if log else tune.quniform(low_f, high_f, float(step))
        )
    return tune.loguniform(low_f, high_f) if log else tune.uniform(low_f, high_f)


@dataclass
class TuneSetup:
    """What the suggestion process hands to ``tune.Tuner``.

    Args:
        param_space: Parameter name -> Ray Tune domain (or grid_search).
        search_alg: A Ray search algorithm, or None for Ray's default (random/grid).
        scheduler: A Ray trial scheduler (MedianStoppingRule), or None (FIFO).
        num_samples: Ray's num_samples.
        mode: ``min`` or ``max``.
        max_concurrent: parallelTrialCount.
    """

    param_space: dict[str, Any]
    search_alg: Any
    scheduler: Any
    num_samples: int
    mode: str
    max_concurrent: int


def _tolerant_median_stop(base: Any) -> Any:
    class TolerantMedianStoppingRule(base):  # type: ignore[misc,valid-type]
        """Ray's MedianStoppingRule, minus its crash on a trial that ended without metrics.

        A Failed or MetricsUnavailable Katib trial completes with an empty result; Ray's rule would
        store it and fail the whole suggestion (KeyError: 'training_iteration'). Katib's medianstop
        just leaves such a trial out of the median.
        """

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
            if result and self._time_attr in result and self._metric in result:
                super().on_trial_complete(tune_controller, trial, result)

    return TolerantMedianStoppingRule


def build_tune_setup(experiment: dict[str, Any]) -> TuneSetup:
    """Translate an Experiment into Ray Tune objects (imports ray and, for TPE, optuna).

    Raises:
        SearchSpaceError: the algorithm is not supported or the space does not fit it.
    """
    from ray.tune.schedulers import MedianStoppingRule
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    spec = experiment["spec"]
    problems = local_problems(experiment)
    if problems:
        raise SearchSpaceError("; ".join(message for _, message in problems))
    algorithm = (spec.get("algorithm") or {}).get("algorithmName", "random")
    settings = settings_of(spec.get("algorithm"))
    seed = int(settings["random_state"]) if settings.get("random_state", "").isdigit() else None
    mode = "min" if spec["objective"].get("type") == "minimize" else "max"
    parallel = int(spec.get("parallelTrialCount") or 3)
    max_trials = int(spec.get("maxTrialCount") or 0)
    params = spec.get("parameters") or []
    search_alg: Any
    if algorithm == "grid":
        from ray import tune

        space: dict[str, Any] = {p["name"]: tune.grid_search(_grid_values(p)) for p in params}
        search_alg = BasicVariantGenerator(max_concurrent=parallel)
        num_samples = 1
    elif algorithm == "random":
        space = {p["name"]: _random_domain(p) for p in params}
        search_alg = BasicVariantGenerator(max_concurrent=parallel, random_state=seed)
        num_samples = max_trials or 100
    else:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        startup = settings.get("n_startup_trials") or settings.get("n_initial_points") or "3"
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=int(startup), multivariate=algorithm == "multivariate-tpe"
        )
        space = {p["name"]: _random_domain(p) for p in params}
        searcher = OptunaSearch(space=space, metric=OBJECTIVE_KEY, mode=mode, sampler=sampler)
        search_alg = ConcurrencyLimiter(searcher, max_concurrent=parallel)
        space = {}
        num_samples = max_trials or 100
    scheduler = None
    early = spec.get("earlyStopping") or {}
    if early.get("algorithmName") == "medianstop":
        early_settings = settings_of(early)
        scheduler = _tolerant_median_stop(MedianStoppingRule)(
            time_attr="training_iteration",
            grace_period=float(early_settings.get("start_step", "4")),
            min_samples_required=int(early_settings.get("min_trials_required", "3")),
            min_time_slice=0,
        )
    return TuneSetup(space, search_alg, scheduler, num_samples, mode, parallel)
