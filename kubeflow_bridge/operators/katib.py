"""``KatibExperimentOperator``: tune hyperparameters with a Katib Experiment and return the best trial."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kubeflow_bridge.hooks.kubeflow import resolve_kind
from kubeflow_bridge.links.katib import KatibExperimentLink
from kubeflow_bridge.operators._base import KubeflowObjectOperator, as_command, as_int

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context


def _parameter(entry: Any) -> Any:
    """A ``resources.katib.Parameter`` from one search-space entry (a dict or a Parameter)."""
    from kubeflow_bridge.resources.katib import Parameter

    if isinstance(entry, Parameter):
        return entry
    if not isinstance(entry, dict):
        raise ValueError(
            f"each search_space entry must be a dict like {{'name': 'lr', 'type': 'double', 'min': 1e-4, "
            f"'max': 1e-2}}, not {entry!r}"
        )
    unknown = set(entry) - {
        "name",
        "type",
        "parameterType",
        "min",
        "max",
        "step",
        "values",
        "list",
        "distribution",
    }
    if unknown:
        raise ValueError(f"search_space entry {entry.get('name')!r} has unknown keys {sorted(unknown)}")
    name = entry.get("name")
    # the name becomes a command-line flag and a ${trialParameters.<name>} reference
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][-A-Za-z0-9_.]*", name):
        raise ValueError(
            f"search_space entry {entry!r}: 'name' must be a parameter name such as 'lr' or 'batch_size' "
            "(letters, digits, '_', '-', '.', starting with a letter)"
        )
    return Parameter(
        name=entry.get("name"),  # type: ignore[arg-type]
        type=entry.get("type") or entry.get("parameterType"),  # type: ignore[arg-type]
        min=entry.get("min"),
        max=entry.get("max"),
        step=entry.get("step"),
        values=entry.get("values", entry.get("list")),
        distribution=entry.get("distribution"),
    )


class KatibExperimentOperator(KubeflowObjectOperator):
    """Create a Katib Experiment whose trials run the trainer image, wait, and return the best trial.

    Args:
        experiment: A full Experiment manifest instead of the fields below (name and identity are set).
        image: The trainer image the trials run.
        search_space: Parameters, e.g. ``[{"name": "lr", "type": "double", "min": 1e-4, "max": 1e-2}]``.
        objective_metric: The metric Katib optimizes (printed by the trainer as ``name=value``).
        objective_type: ``minimize`` or ``maximize``.
        goal: Stop when the objective reaches this value.
        additional_metrics: Other metrics to collect.
        algorithm: ``random``, ``grid``, ``bayesianoptimization``, ``tpe``, ...
        algorithm_settings: Algorithm settings.
        trial_command: Trial command (default ``python -m trainer train``).
        trial_args: Fixed trial arguments (data URIs, epochs, ...).
        trial_env: Trial environment: a mapping, or a list of ``{name, value|valueFrom}`` (templated).
        trial_env_from: The trial container's ``envFrom`` (e.g. the storage credentials' Secret).
        trial_kind: ``Job``, ``PyTorchJob`` or ``TrainJob`` trials (a TrainJob has no ``envFrom``: pass
            the Secret's keys in ``trial_env`` as ``{"secretKeyRef": ...}`` sources).
        parallel_trial_count: Trials at once.
        max_trial_count: Trials in all.
        max_failed_trial_count: Failed trials before the Experiment fails (default: min(3, max_trial_count)).
        early_stopping: ``medianstop`` or None.
        **kwargs: See :class:`KubeflowObjectOperator`.

    Returns:
        ``{"name", "namespace", "best_trial", "best_parameters", "objective_metric", "objective_value",
        "metrics", "trial_counts"}``; parameters typed by the search space (int, float, str).
    """

    template_fields: Sequence[str] = (
        *KubeflowObjectOperator.template_fields,
        "experiment",
        "image",
        "search_space",
        "objective_metric",
        "goal",
        "algorithm_settings",
        "trial_args",
        "trial_env",
        "trial_env_from",
        "parallel_trial_count",
        "max_trial_count",
    )
    template_fields_renderers = {"experiment": "json", "search_space": "json"}
    kind_name: ClassVar[str] = "Experiment"
    link_class = KatibExperimentLink
    operator_extra_links = (KatibExperimentLink(),)

    def __init__(
        self,
        *,
        experiment: dict[str, Any] | None = None,
        image: str | None = None,
        search_space: list[dict[str, Any]] | None = None,
        objective_metric: str | None = None,
        objective_type: str = "minimize",
        goal: float | str | None = None,
        additional_metrics: list[str] | None = None,
        algorithm: str = "random",
        algorithm_settings: dict[str, Any] | None = None,
        trial_command: list[str] | None = None,
        trial_args: list[str] | None = None,
        trial_env: dict[str, str] | list[dict[str, Any]] | str | None = None,
        trial_env_from: list[dict[str, Any]] | None = None,
        trial_kind: str = "Job",
        parallel_trial_count: int | str = 2,
        max_trial_count: int | str = 6,
        max_failed_trial_count: int | str | None = None,
        early_stopping: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        self.image = image
        self.search_space = search_space
        self.objective_metric = objective_metric
        self.objective_type = objective_type
        self.goal = goal
        self.additional_metrics = additional_metrics
        self.algorithm = algorithm
        self.algorithm_settings = algorithm_settings
        self.trial_command = trial_command
        self.trial_args = trial_args
        self.trial_env = trial_env
        self.trial_env_from = trial_env_from
        self.trial_kind = trial_kind
        self.parallel_trial_count = parallel_trial_count
        self.max_trial_count = max_trial_count
        self.max_failed_trial_count = max_failed_trial_count
        self.early_stopping = early_stopping

    def _trial_env(self) -> dict[str, str] | list[dict[str, Any]]:
        env = self.trial_env or {}
        if isinstance(env, dict):
            return dict(env)
        if isinstance(env, list) and all(isinstance(e, dict) and e.get("name") for e in env):
            return list(env)
        raise ValueError(
            f"trial_env must render to a mapping or a list of {{name, value}} entries, not {env!r}"
        )

    def build_manifest(self, context: Context, name: str, namespace: str) -> dict[str, Any]:
        from kubeflow_bridge.resources import katib

        if self.experiment is not None:
            manifest = self.given_manifest(self.experiment, "experiment", name, namespace)
            katib.validate_experiment(manifest)
            return manifest
        if not self.image:
            raise ValueError("image is required: the trainer image the trials run (or pass experiment=)")
        if not self.objective_metric:
            raise ValueError("objective_metric is required: the metric the trials print, e.g. 'val_loss'")
        if not isinstance(self.search_space, list) or not self.search_space:
            raise ValueError(
                "search_space must be a non-empty list of parameters, e.g. [{'name': 'lr', 'type': 'double', 'min': 0.0001, 'max': 0.01}]"
            )
        parameters = [_parameter(entry) for entry in self.search_space]
        try:
            goal = None if self.goal in (None, "") else float(self.goal)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            goal = math.nan
        if goal is not None and not math.isfinite(goal):
            raise ValueError(f"goal must be a finite number, not {self.goal!r}")
        metrics = self.additional_metrics
        if metrics is not None and (
            not isinstance(metrics, (list, tuple)) or not all(isinstance(m, str) and m for m in metrics)
        ):
            raise ValueError(
                f"additional_metrics must be a list of metric names (e.g. ['f1']), not {metrics!r}"
            )
        max_trials = as_int("max_trial_count", self.max_trial_count, minimum=1)
        template = katib.trainer_trial_template(
            self.image,
            parameters,
            kind=self.trial_kind,
            command=as_command("trial_command", self.trial_command),
            args=as_command("trial_args", self.trial_args),
            env=self._trial_env(),
            env_from=self.trial_env_from,
        )
        return katib.build_experiment(
            name=name,
            namespace=namespace,
            objective=katib.Objective(
                objective_metric_name=self.objective_metric,
                type=self.objective_type,
                goal=goal,
                additional_metric_names=list(metrics or []),
            ),
            parameters=parameters,
            trial_template=template,
            algorithm=katib.Algorithm(name=self.algorithm, settings=dict(self.algorithm_settings or {})),
            early_stopping=katib.EarlyStopping(name=self.early_stopping) if self.early_stopping else None,
            parallel_trial_count=as_int("parallel_trial_count", self.parallel_trial_count, minimum=1),
            max_trial_count=max_trials,
            max_failed_trial_count=(
                min(3, max_trials)
                if self.max_failed_trial_count in (None, "")
                else as_int("max_failed_trial_count", self.max_failed_trial_count, minimum=0)
            ),
        )

    def after_wait(self, context: Context, name: str, namespace: str) -> None:
        """Log the final trial table (name, state, parameters, objective)."""
        from kubeflow_bridge.clients.kube.results import trial_states, trial_table

        try:
            client = self.object_client()
            experiment = client.get(self.kind, name, namespace=namespace)
            if experiment is None:
                return
            trial_kind = resolve_kind("Trial")
            trials = [
                t
                for t in (client.get(trial_kind, n, namespace=namespace) for n in trial_states(experiment))
                if t
            ]
        except Exception as err:  # the table is a courtesy; the outcome is what matters
            self.log.warning("could not read the trials of %s/%s: %s", namespace, name, err)
            return
        for row in trial_table(experiment, trials):
            self.log.info("%s", row)

    def build_result(self, obj: dict[str, Any], context: Context) -> dict[str, Any]:
        from kubeflow_bridge.clients.kube.results import best_trial
        from kubeflow_bridge.resources.katib import parameter_types

        best = best_trial(obj, parameter_types(obj))
        return {
            "name": (obj.get("metadata") or {}).get("name", ""),
            "namespace": (obj.get("metadata") or {}).get("namespace", ""),
            "best_trial": best.name,
            "best_parameters": best.parameters,
            "objective_metric": best.objective_metric,
            "objective_value": best.objective_value,
            "metrics": best.metrics,
            "trial_counts": best.counts,
        }
