"""Katib Experiment (kubeflow.org/v1beta1) builders; validation in :func:`validate_experiment`.

Dataclasses with ``to_dict()`` build the manifest; :func:`build_experiment` builds and validates.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from kubeflow_bridge.resources._katib_rules import (
    ALGORITHMS,
    API_VERSION,
    COLLECTOR_KINDS,
    DISTRIBUTIONS,
    EARLY_STOPPING_ALGORITHMS,
    FILE_FORMATS,
    JOB_FAILURE_CONDITION,
    JOB_SUCCESS_CONDITION,
    KIND,
    KUBEFLOW_JOB_FAILURE_CONDITION,
    KUBEFLOW_JOB_KINDS,
    KUBEFLOW_JOB_SUCCESS_CONDITION,
    METRIC_STRATEGIES,
    OBJECTIVE_TYPES,
    PARAMETER_TYPES,
    RESUME_POLICIES,
    TRIAL_PARAMETER_RE,
    trial_spec_containers,
    validate_experiment,
)
from kubeflow_bridge.resources.names import object_metadata
from kubeflow_bridge.resources.training import JOB_ROLE_LABEL, PyTorchJobSpec, env_list

__all__ = [
    "ALGORITHMS",
    "API_VERSION",
    "COLLECTOR_KINDS",
    "DISTRIBUTIONS",
    "EARLY_STOPPING_ALGORITHMS",
    "FILE_FORMATS",
    "JOB_FAILURE_CONDITION",
    "JOB_SUCCESS_CONDITION",
    "KIND",
    "KUBEFLOW_JOB_FAILURE_CONDITION",
    "KUBEFLOW_JOB_KINDS",
    "KUBEFLOW_JOB_SUCCESS_CONDITION",
    "METRIC_STRATEGIES",
    "OBJECTIVE_TYPES",
    "PARAMETER_TYPES",
    "RESUME_POLICIES",
    "TRIAL_PARAMETER_RE",
    "Algorithm",
    "EarlyStopping",
    "ExperimentSpec",
    "Objective",
    "Parameter",
    "TrialParameter",
    "TrialTemplate",
    "build_experiment",
    "parameter_types",
    "trainer_trial_template",
    "trial_spec_containers",
    "validate_experiment",
]


@dataclass(kw_only=True)
class Objective:
    """``spec.objective``.

    Args:
        objective_metric_name: The metric to optimise, as the trial prints it (``val_loss``).
        type: ``minimize`` or ``maximize``.
        goal: Stop the experiment once a trial reaches this value.
        additional_metric_names: Other metrics to collect.
        metric_strategies: ``{metric: "min"|"max"|"latest"}`` (how a trial's value is chosen).
    """

    objective_metric_name: str
    type: str = "minimize"
    goal: float | None = None
    additional_metric_names: list[str] = field(default_factory=list)
    metric_strategies: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "objectiveMetricName": self.objective_metric_name}
        if self.goal is not None:
            out["goal"] = self.goal
        if self.additional_metric_names:
            out["additionalMetricNames"] = list(self.additional_metric_names)
        if self.metric_strategies:
            out["metricStrategies"] = [{"name": k, "value": v} for k, v in self.metric_strategies.items()]
        return out


def _settings(settings: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in settings.items()]


@dataclass(kw_only=True)
class Algorithm:
    """``spec.algorithm``: the suggestion algorithm and its settings (values become strings).

    Args:
        name: One of :data:`ALGORITHMS`.
        settings: ``{name: value}``, e.g. ``{"random_state": 10}``.
    """

    name: str = "random"
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"algorithmName": self.name}
        if self.settings:
            out["algorithmSettings"] = _settings(self.settings)
        return out


@dataclass(kw_only=True)
class EarlyStopping:
    """``spec.earlyStopping``.

    Args:
        name: ``medianstop``.
        settings: e.g. ``{"min_trials_required": 3, "start_step": 4}``.
    """

    name: str = "medianstop"
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"algorithmName": self.name}
        if self.settings:
            out["algorithmSettings"] = _settings(self.settings)
        return out


@dataclass(kw_only=True)
class Parameter:
    """One search-space parameter (``spec.parameters[i]``). Katib wants every bound as a string.

    Args:
        name: Parameter name.
        type: ``int``, ``double``, ``categorical`` or ``discrete``.
        min: Lower bound (int/double).
        max: Upper bound (int/double).
        step: Grid step (int/double, optional).
        values: The choices (categorical/discrete).
        distribution: ``uniform``, ``logUniform``, ``normal`` or ``logNormal`` (optional).
    """

    name: str
    type: str
    min: float | int | str | None = None
    max: float | int | str | None = None
    step: float | int | str | None = None
    values: list[Any] | None = None
    distribution: str | None = None

    @classmethod
    def int_(cls, name: str, min: int, max: int, step: int | None = None) -> Parameter:
        return cls(name=name, type="int", min=min, max=max, step=step)

    @classmethod
    def double(
        cls, name: str, min: float, max: float, step: float | None = None, distribution: str | None = None
    ) -> Parameter:
        return cls(name=name, type="double", min=min, max=max, step=step, distribution=distribution)

    @classmethod
    def categorical(cls, name: str, values: list[str]) -> Parameter:
        return cls(name=name, type="categorical", values=list(values))

    @classmethod
    def discrete(cls, name: str, values: list[int | float]) -> Parameter:
        return cls(name=name, type="discrete", values=list(values))

    def to_dict(self) -> dict[str, Any]:
        space: dict[str, Any] = {}
        for key in ("min", "max", "step"):
            value = getattr(self, key)
            if value is not None:
                space[key] = str(value)
        if self.values is not None:
            space["list"] = [str(v) for v in self.values]
        if self.distribution:
            space["distribution"] = self.distribution
        return {"name": self.name, "parameterType": self.type, "feasibleSpace": space}


@dataclass(kw_only=True)
class TrialParameter:
    """``spec.trialTemplate.trialParameters[i]``: a ``${trialParameters.<name>}`` placeholder.

    Args:
        name: Placeholder name used in the trialSpec.
        reference: The search-space parameter (or ``${trialSpec.Name}`` etc.) it takes its value from.
        description: Free text.
    """

    name: str
    reference: str
    description: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"name": self.name, "reference": self.reference}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(kw_only=True)
class TrialTemplate:
    """``spec.trialTemplate``.

    Args:
        trial_spec: The trial's manifest (a batch/v1 Job or a PyTorchJob) with placeholders.
        trial_parameters: The placeholders used in ``trial_spec``.
        primary_container_name: The container whose stdout carries the metrics.
        success_condition: GJSON success condition (Katib's default for the kind when None).
        failure_condition: GJSON failure condition (Katib's default for the kind when None).
        primary_pod_labels: Labels of the pod that carries the metrics (master for PyTorchJob).
        retain: Keep trial resources after they finish.
    """

    trial_spec: dict[str, Any]
    trial_parameters: list[TrialParameter]
    primary_container_name: str
    success_condition: str | None = None
    failure_condition: str | None = None
    primary_pod_labels: dict[str, str] | None = None
    retain: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        kind = self.trial_spec.get("kind")
        success, failure, labels = self.success_condition, self.failure_condition, self.primary_pod_labels
        if kind in KUBEFLOW_JOB_KINDS:
            success = success or KUBEFLOW_JOB_SUCCESS_CONDITION
            failure = failure or KUBEFLOW_JOB_FAILURE_CONDITION
            labels = labels if labels is not None else {JOB_ROLE_LABEL: "master"}
        elif kind == "Job":
            success = success or JOB_SUCCESS_CONDITION
            failure = failure or JOB_FAILURE_CONDITION
        out: dict[str, Any] = {
            "primaryContainerName": self.primary_container_name,
            "trialParameters": [p.to_dict() for p in self.trial_parameters],
            "trialSpec": copy.deepcopy(self.trial_spec),
        }
        if success:
            out["successCondition"] = success
        if failure:
            out["failureCondition"] = failure
        if labels:
            out["primaryPodLabels"] = dict(labels)
        if self.retain is not None:
            out["retain"] = self.retain
        return out


def _placeholder_name(parameter: str) -> str:
    """``learning_rate`` / ``learning-rate`` -> ``learningRate`` (Katib's examples use camelCase)."""
    head, *rest = re.split(r"[-_]", parameter)
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def trainer_trial_template(
    image: str,
    parameters: list[Parameter] | list[str],
    *,
    kind: str = "Job",
    command: list[str] | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | list[dict[str, Any]] | None = None,
    env_from: list[dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
    workers: int = 0,
    container_name: str | None = None,
    backoff_limit: int = 0,
    retain: bool | None = None,
) -> TrialTemplate:
    """A trial template running ``python -m trainer train ...`` with the hyperparameters as placeholders.

    Each search-space parameter ``p`` becomes ``--p=${trialParameters.<camelCase p>}`` on the command
    line (``_`` in the flag name becomes ``-``), after ``args``.

    Args:
        image: The trainer image.
        parameters: The search space (or just its parameter names).
        kind: ``Job`` (batch/v1), ``PyTorchJob`` or ``TrainJob`` (Kubeflow Trainer v2, on the
            ``torch-distributed`` runtime, run by torchrun; its env takes ``valueFrom`` sources, not
            ``env_from``).
        command: Command before the flags (default ``python -m trainer train``; a TrainJob's
            ``torchrun -m trainer train``).
        args: Extra fixed arguments (data URIs, epochs, ``--summary-out`` ...).
        env: Container environment.
        env_from: Container ``envFrom`` (e.g. the storage credentials' Secret).
        resources: Container resources.
        workers: PyTorchJob Worker replicas (0 = master only); a TrainJob's nodes beyond one.
        container_name: Container name for a Job (default ``training-container``); a PyTorchJob's is
            always ``pytorch``.
        backoff_limit: batch Job ``backoffLimit`` (0: a failed trial is not retried).
        retain: Keep trial resources after they finish.
    """
    names = [p.name if isinstance(p, Parameter) else str(p) for p in parameters]
    trial_parameters = [
        TrialParameter(name=_placeholder_name(n), reference=n, description=f"hyperparameter {n}")
        for n in names
    ]
    flags = [
        f"--{n.replace('_', '-')}=${{trialParameters.{tp.name}}}"
        for n, tp in zip(names, trial_parameters, strict=True)
    ]
    full_command = [*(command or ["python", "-m", "trainer", "train"]), *(args or []), *flags]
    if kind == "PyTorchJob":
        job = PyTorchJobSpec(
            name="trial",
            image=image,
            command=full_command,
            env=env,
            env_from=env_from,
            resources=resources,
            workers=workers,
        )
        trial_spec: dict[str, Any] = {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "spec": job.spec_dict(),
        }
        primary = "pytorch"
    elif kind == "Job":
        primary = container_name or "training-container"
        container: dict[str, Any] = {"name": primary, "image": image, "command": full_command}
        if env:
            container["env"] = env_list(env)
        if env_from:
            container["envFrom"] = copy.deepcopy(env_from)
        if resources:
            container["resources"] = copy.deepcopy(resources)
        trial_spec = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "backoffLimit": backoff_limit,
                "template": {
                    # Katib injects its metrics collector sidecar; the sidecar must not keep the pod alive.
                    "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": {"containers": [container], "restartPolicy": "Never"},
                },
            },
        }
    elif kind == "TrainJob":
        return _trainjob_trial_template(
            image, trial_parameters, flags, command, args, env, env_from, resources, workers, retain
        )
    else:
        raise ValueError(f"trial kind must be 'Job', 'PyTorchJob' or 'TrainJob', not {kind!r}")
    return TrialTemplate(
        trial_spec=trial_spec,
        trial_parameters=trial_parameters,
        primary_container_name=primary,
        retain=retain,
    )


def _trainjob_trial_template(
    image: str,
    trial_parameters: list[TrialParameter],
    flags: list[str],
    command: list[str] | None,
    args: list[str] | None,
    env: dict[str, str] | list[dict[str, Any]] | None,
    env_from: list[dict[str, Any]] | None,
    resources: dict[str, Any] | None,
    workers: int,
    retain: bool | None,
) -> TrialTemplate:
    """Each trial a Kubeflow Trainer v2 TrainJob on ``torch-distributed``: ``1 + workers`` torchrun nodes.

    Katib has no defaults for a TrainJob, so the template says them: done at its Complete or Failed
    condition, metrics from node 0's ``node`` container.
    """
    from kubeflow_bridge.resources.trainjob import REPLICATED_JOB_LABEL, TrainJobSpec

    if env_from:
        raise ValueError(
            "env_from: a TrainJob has no envFrom; pass the Secret's keys as env valueFrom sources "
            "(e.g. workflow.storage_env())"
        )
    full_command = [*(command or ["torchrun", "-m", "trainer", "train"]), *(args or []), *flags]
    job = TrainJobSpec(
        name="trial",
        image=image,
        command=full_command,
        env=env,
        num_nodes=1 + workers,
        num_proc_per_node=1,
        resources_per_node=resources,
    ).to_dict()
    return TrialTemplate(
        trial_spec={"apiVersion": job["apiVersion"], "kind": job["kind"], "spec": job["spec"]},
        trial_parameters=trial_parameters,
        primary_container_name="node",
        success_condition=JOB_SUCCESS_CONDITION,
        failure_condition=JOB_FAILURE_CONDITION,
        primary_pod_labels={REPLICATED_JOB_LABEL: "node", "batch.kubernetes.io/job-completion-index": "0"},
        retain=retain,
    )


@dataclass(kw_only=True)
class ExperimentSpec:
    """A Katib Experiment.

    Args:
        name: Object name (DNS-1035; trials are named ``<name>-<8 chars>`` and their pods add more,
            so keep it <= ~40).
        objective: What to optimise.
        parameters: The search space.
        trial_template: What each trial runs.
        namespace: Namespace, if set in the manifest.
        algorithm: Suggestion algorithm (random by default).
        early_stopping: Early stopping (none by default).
        parallel_trial_count: Trials run at once.
        max_trial_count: Trials in all.
        max_failed_trial_count: Failed trials before the experiment fails.
        metrics_collector: Collector kind (``StdOut``: the trainer prints ``name=value`` lines).
        metrics_format: StdOut/File filter regexes (Katib's default when None).
        resume_policy: ``Never``, ``LongRunning`` or ``FromVolume``.
        labels: Object labels.
        annotations: Object annotations.
    """

    name: str
    objective: Objective
    parameters: list[Parameter]
    trial_template: TrialTemplate
    namespace: str | None = None
    algorithm: Algorithm = field(default_factory=Algorithm)
    early_stopping: EarlyStopping | None = None
    parallel_trial_count: int = 2
    max_trial_count: int = 6
    max_failed_trial_count: int = 3
    metrics_collector: str = "StdOut"
    metrics_format: list[str] | None = None
    resume_policy: str | None = "Never"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The Experiment manifest."""
        metadata = object_metadata(self.name, self.namespace, self.labels, self.annotations)
        collector: dict[str, Any] = {"collector": {"kind": self.metrics_collector}}
        if self.metrics_format:
            collector["source"] = {"filter": {"metricsFormat": list(self.metrics_format)}}
        spec: dict[str, Any] = {
            "objective": self.objective.to_dict(),
            "algorithm": self.algorithm.to_dict(),
            "parallelTrialCount": self.parallel_trial_count,
            "maxTrialCount": self.max_trial_count,
            "maxFailedTrialCount": self.max_failed_trial_count,
            "metricsCollectorSpec": collector,
            "parameters": [p.to_dict() for p in self.parameters],
            "trialTemplate": self.trial_template.to_dict(),
        }
        if self.early_stopping:
            spec["earlyStopping"] = self.early_stopping.to_dict()
        if self.resume_policy:
            spec["resumePolicy"] = self.resume_policy
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def build_experiment(**kwargs: Any) -> dict[str, Any]:
    """Build and validate an Experiment manifest; keyword arguments as :class:`ExperimentSpec`."""
    manifest = ExperimentSpec(**kwargs).to_dict()
    validate_experiment(manifest)
    return manifest


def parameter_types(experiment: dict[str, Any]) -> dict[str, str]:
    """``{parameter name: parameterType}`` of an experiment (to type Katib's string assignments)."""
    params: Any = (experiment.get("spec") or {}).get("parameters") or []
    return {p["name"]: p.get("parameterType", "") for p in params if isinstance(p, dict) and "name" in p}
