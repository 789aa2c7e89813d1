"""Trial construction as Katib's experiment and trial controllers do it (pure: dicts in, dicts out).

* ``render_run_spec`` substitutes ``${trialParameters.<name>}`` (through each trialParameter's
  ``reference`` to the assigned parameter value), ``${trialSpec.Name}``, ``${trialSpec.Namespace}``,
  ``${trialSpec.Kind}``, ``${trialSpec.APIVersion}``, ``${trialSpec.Labels[k]}`` and
  ``${trialSpec.Annotations[k]}`` into the experiment's ``trialTemplate.trialSpec``, names the job after
  the trial and puts Katib's labels on the job and on every pod template.
* ``build_trial`` builds the Trial object the experiment owns (``runSpec`` carries the rendered job).
"""

from __future__ import annotations

import copy
import re
import secrets
import string
from typing import Any

EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_LABEL = "katib.kubeflow.org/trial"
KATIB_API_VERSION = "kubeflow.org/v1beta1"
#: Katib's default primary pod labels for Kubeflow training jobs (the Master replica holds the metrics).
DEFAULT_PRIMARY_POD_LABELS_KUBEFLOW_JOB = {"training.kubeflow.org/job-role": "master"}
#: Katib's default success/failure conditions (GJSON), per job kind.
DEFAULT_CONDITIONS: dict[str, tuple[str, str]] = {
    "Job": (
        'status.conditions.#(type=="Complete")#|#(status=="True")#',
        'status.conditions.#(type=="Failed")#|#(status=="True")#',
    ),
    "PyTorchJob": (
        'status.conditions.#(type=="Succeeded")#|#(status=="True")#',
        'status.conditions.#(type=="Failed")#|#(status=="True")#',
    ),
}

_PLACEHOLDER = re.compile(r"\$\{(trialParameters\.[^}]+|trialSpec\.[^}]+)\}")
_META_KEYED = re.compile(r"^trialSpec\.(Labels|Annotations)\[(.+)\]$")


class TemplateError(ValueError):
    """A trial template that cannot be rendered (a placeholder without a value)."""


def trial_name(experiment_name: str, suffix: str | None = None) -> str:
    """Katib's trial name: ``<experiment>-<8 random lowercase letters and digits>``."""
    alphabet = string.ascii_lowercase + string.digits
    tail = suffix or "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{experiment_name}-{tail}"


def _placeholder_values(
    experiment: dict[str, Any], name: str, namespace: str, assignments: dict[str, str]
) -> dict[str, str]:
    template = experiment["spec"]["trialTemplate"]
    trial_spec = template.get("trialSpec") or {}
    values: dict[str, str] = {
        "trialSpec.Name": name,
        "trialSpec.Namespace": namespace,
        "trialSpec.Kind": str(trial_spec.get("kind", "")),
        "trialSpec.APIVersion": str(trial_spec.get("apiVersion", "")),
    }
    for param in template.get("trialParameters") or []:
        reference = param.get("reference", "")
        if reference in assignments:
            values[f"trialParameters.{param['name']}"] = assignments[reference]
    return values


def render_run_spec(
    experiment: dict[str, Any], name: str, namespace: str, assignments: dict[str, str]
) -> dict[str, Any]:
    """The trial's job, rendered from the experiment's trialTemplate.

    Args:
        experiment: The Experiment object.
        name: The trial name (the job gets the same name).
        namespace: The trial's namespace.
        assignments: Parameter name (the search-space name a trialParameter references) -> value string.

    Raises:
        TemplateError: a placeholder has no value (an unknown trialParameter or a reference without assignment).
    """
    template = experiment["spec"]["trialTemplate"]
    job = copy.deepcopy(template.get("trialSpec") or {})
    metadata = job.setdefault("metadata", {})
    values = _placeholder_values(experiment, name, namespace, assignments)

    def substitute(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in values:
                return values[key]
            keyed = _META_KEYED.match(key)
            if keyed:
                source = metadata.get("labels" if keyed.group(1) == "Labels" else "annotations") or {}
                if keyed.group(2) in source:
                    return str(source[keyed.group(2)])
            raise TemplateError(
                f"trial template placeholder ${{{key}}} has no value: declare it in "
                "spec.trialTemplate.trialParameters with a reference to a parameter in spec.parameters"
            )

        return _PLACEHOLDER.sub(one, text)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return substitute(node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return node

    job = walk(job)
    metadata = job.setdefault("metadata", {})
    metadata["name"] = name
    metadata["namespace"] = namespace
    katib_labels = {EXPERIMENT_LABEL: experiment["metadata"]["name"], TRIAL_LABEL: name}
    metadata["labels"] = {**(metadata.get("labels") or {}), **katib_labels}
    for pod_template in _pod_templates(job):
        pod_meta = pod_template.setdefault("metadata", {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **katib_labels}
    return job


def _pod_templates(job: dict[str, Any]) -> list[dict[str, Any]]:
    spec = job.get("spec") or {}
    if job.get("kind") == "PyTorchJob":
        replicas = spec.get("pytorchReplicaSpecs") or {}
        return [r.setdefault("template", {}) for r in replicas.values() if isinstance(r, dict)]
    if "template" in spec:
        return [spec["template"]]
    return []


def primary_pod_labels(experiment: dict[str, Any]) -> dict[str, str]:
    """``trialTemplate.primaryPodLabels``, defaulted as Katib does for Kubeflow training jobs."""
    template = experiment["spec"]["trialTemplate"]
    if template.get("primaryPodLabels"):
        return dict(template["primaryPodLabels"])
    kind = (template.get("trialSpec") or {}).get("kind")
    if kind == "PyTorchJob":
        return dict(DEFAULT_PRIMARY_POD_LABELS_KUBEFLOW_JOB)
    return {}


def metric_names(experiment: dict[str, Any]) -> list[str]:
    """Objective metric first, then the additional metrics (Katib's collector order)."""
    objective = experiment["spec"]["objective"]
    return [objective["objectiveMetricName"], *(objective.get("additionalMetricNames") or [])]


def metric_strategies(experiment: dict[str, Any]) -> list[dict[str, str]]:
    """``objective.metricStrategies`` defaulted as Katib's webhook does (every metric: min for minimize,
    max for maximize, unless given)."""
    objective = experiment["spec"]["objective"]
    given = {s["name"]: s["value"] for s in objective.get("metricStrategies") or []}
    default = "min" if objective.get("type") == "minimize" else "max"
    return [{"name": name, "value": given.get(name, default)} for name in metric_names(experiment)]


def build_trial(
    experiment: dict[str, Any], name: str, assignments: dict[str, str], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The Trial object for one suggestion, owned by the experiment.

    Args:
        experiment: The Experiment object (with metadata.uid).
        name: Trial name (see ``trial_name``).
        assignments: Parameter name -> value string, in any order (written in spec.parameters order).
        labels: Extra labels for the trial (suggestion labels).
    """
    namespace = experiment["metadata"].get("namespace") or "default"
    spec = experiment["spec"]
    template = spec["trialTemplate"]
    kind = (template.get("trialSpec") or {}).get("kind", "Job")
    success, failure = DEFAULT_CONDITIONS.get(kind, DEFAULT_CONDITIONS["PyTorchJob"])
    order = [p["name"] for p in spec.get("parameters") or []]
    ordered = sorted(assignments.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    objective = copy.deepcopy(spec["objective"])
    objective["metricStrategies"] = metric_strategies(experiment)
    trial_spec: dict[str, Any] = {
        "objective": objective,
        "parameterAssignments": [{"name": k, "value": v} for k, v in ordered],
        "runSpec": render_run_spec(experiment, name, namespace, assignments),
        "metricsCollector": copy.deepcopy(
            spec.get("metricsCollectorSpec") or {"collector": {"kind": "StdOut"}}
        ),
        "primaryContainerName": template.get("primaryContainerName", ""),
        "successCondition": template.get("successCondition") or success,
        "failureCondition": template.get("failureCondition") or failure,
        "retainRun": bool(template.get("retain", False)),
    }
    pod_labels = primary_pod_labels(experiment)
    if pod_labels:
        trial_spec["primaryPodLabels"] = pod_labels
    if labels:
        trial_spec["labels"] = dict(labels)
    return {
        "apiVersion": KATIB_API_VERSION,
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(labels or {}), EXPERIMENT_LABEL: experiment["metadata"]["name"]},
            "ownerReferences": [owner_reference(experiment)],
        },
        "spec": trial_spec,
    }


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller owner reference to ``owner`` (as controllerutil.SetControllerReference writes it)."""
    return {
        "apiVersion": owner.get("apiVersion", KATIB_API_VERSION),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"].get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
