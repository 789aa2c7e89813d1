"""Katib search spaces and algorithms, served in-process with Optuna (as Katib's own suggestion services).

Supported algorithm names (the local runtime's katib-config):

* ``random``: Optuna's RandomSampler (``random_state`` seeds it);
* ``grid``: every point of the grid, in order (int: min..max by step, default 1; double: needs
  ``step``; categorical and discrete: their lists); the search ends when every point has a trial;
* ``bayesianoptimization``, ``tpe``, ``multivariate-tpe``: Optuna's TPE sampler (settings
  ``random_state``, ``n_startup_trials``/``n_initial_points``), told each finished trial's objective.

Not supported locally (Invalid at create, saying so): cmaes, sobol, hyperband, pbt, enas, darts.
No Ray and no server: nothing listens (Ray 2.60 cannot be bound to loopback). Optuna is imported inside
the functions: the controller imports this module for the name lists only.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

SUPPORTED_ALGORITHMS = ("random", "grid", "bayesianoptimization", "tpe", "multivariate-tpe")
UNSUPPORTED_ALGORITHMS = ("cmaes", "sobol", "hyperband", "pbt", "enas", "darts")
SUPPORTED_EARLY_STOPPING = ("medianstop",)
#: The trial kinds this runtime runs (Katib's ``trialResources``).
TRIAL_KINDS = ("Job", "PyTorchJob", "TrainJob")
DEFAULT_MAX_TRIALS = 100  # a search with no maxTrialCount stops here unless its goal is reached first


log = logging.getLogger("kubeflow_bridge.local.katib.search")


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
    template = spec.get("trialTemplate") or {}
    trial_kind = (template.get("trialSpec") or {}).get("kind")
    if trial_kind is not None and trial_kind not in TRIAL_KINDS:
        out.append(
            (
                "spec.trialTemplate.trialSpec.kind",
                f"trial kind {trial_kind!r} is not run by the local runtime; use one of {list(TRIAL_KINDS)}",
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


def _number(param: dict[str, Any], key: str) -> float:
    return float((param.get("feasibleSpace") or {})[key])


def _distribution(param: dict[str, Any]) -> Any:
    """The Optuna distribution of a Katib parameter (a log scale with a step is sampled on the log scale
    and snapped to the step by :func:`_snap`)."""
    import optuna

    space = param.get("feasibleSpace") or {}
    ptype = param.get("parameterType")
    if ptype in ("categorical", "discrete"):
        return optuna.distributions.CategoricalDistribution(list(space.get("list") or []))
    step = space.get("step")
    if ptype == "int":
        return optuna.distributions.IntDistribution(
            int(space["min"]), int(space["max"]), step=int(step) if step else 1
        )
    log = space.get("distribution") in ("logUniform", "logNormal")
    return optuna.distributions.FloatDistribution(
        _number(param, "min"), _number(param, "max"), log=log, step=float(step) if step and not log else None
    )


def _snap(param: dict[str, Any], value: Any) -> Any:
    step = (param.get("feasibleSpace") or {}).get("step")
    if param.get("parameterType") != "double" or not step:
        return value
    low, high = _number(param, "min"), _number(param, "max")
    return min(high, max(low, low + round((float(value) - low) / float(step)) * float(step)))


def _parsed(param: dict[str, Any], text: str) -> Any:
    """A parameterAssignments string back as the value Optuna sampled."""
    ptype = param.get("parameterType")
    if ptype == "int":
        return int(float(text))
    if ptype == "double":
        return float(text)
    return text


class Searcher:
    """Proposes parameter assignments for new Trials and learns from finished ones (Katib's
    GetSuggestions, in-process).

    Args:
        experiment: The Experiment object.
    """

    def __init__(self, experiment: dict[str, Any]) -> None:
        spec = experiment["spec"]
        problems = local_problems(experiment)
        if problems:
            raise SearchSpaceError("; ".join(message for _, message in problems))
        self.params = {p["name"]: p for p in spec.get("parameters") or []}
        self.algorithm = (spec.get("algorithm") or {}).get("algorithmName", "random")
        settings = settings_of(spec.get("algorithm"))
        seed = int(settings["random_state"]) if settings.get("random_state", "").isdigit() else None
        self._taken: set[tuple[str, ...]] = set()
        self._asked: dict[str, Any] = {}
        self._study: Any = None
        if self.algorithm == "grid":
            self._grid = itertools.product(*(_grid_values(p) for p in self.params.values()))
            return
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler: Any
        if self.algorithm == "random":
            sampler = optuna.samplers.RandomSampler(seed=seed)
        else:
            startup = settings.get("n_startup_trials") or settings.get("n_initial_points") or "3"
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=int(startup), multivariate=self.algorithm == "multivariate-tpe"
            )
        minimize = spec["objective"].get("type") == "minimize"
        self._study = optuna.create_study(sampler=sampler, direction="minimize" if minimize else "maximize")
        self._distributions = {name: _distribution(p) for name, p in self.params.items()}

    def _key(self, assignments: dict[str, str]) -> tuple[str, ...]:
        return tuple(assignments.get(name, "") for name in self.params)

    def note(self, assignments: dict[str, str]) -> None:
        """An existing Trial's assignments: grid search skips its point."""
        self._taken.add(self._key(assignments))

    def ask(self, trial_name: str) -> dict[str, str] | None:
        """The next Trial's assignments as Katib writes them, or None when the search space is exhausted."""
        if self._study is None:
            for point in self._grid:
                assignments = {
                    name: format_value(p, value)
                    for (name, p), value in zip(self.params.items(), point, strict=True)
                }
                if self._key(assignments) not in self._taken:
                    self.note(assignments)
                    return assignments
            return None
        trial = self._study.ask(self._distributions)
        self._asked[trial_name] = trial
        return {name: format_value(p, _snap(p, trial.params[name])) for name, p in self.params.items()}

    def tell(self, trial_name: str, assignments: dict[str, str], value: float | None) -> None:
        """A finished Trial's objective value (None: failed or no metric)."""
        if self._study is None:
            return
        import optuna

        asked = self._asked.pop(trial_name, None)
        if asked is not None:
            if value is None:
                self._study.tell(asked, state=optuna.trial.TrialState.FAIL)
            else:
                self._study.tell(asked, value)
            return
        if value is None:
            return
        try:  # a trial this process did not propose (it restarted): learn from it all the same
            params = {name: _parsed(p, assignments[name]) for name, p in self.params.items()}
            self._study.add_trial(
                optuna.trial.create_trial(params=params, distributions=self._distributions, value=value)
            )
        except (KeyError, ValueError) as exc:
            log.warning("trial %s not used by the searcher: %s", trial_name, exc)
