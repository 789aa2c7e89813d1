"""Katib Experiment validation: the rules of Katib's admission webhook, in our own words (internal).

Katib's CRDs carry no schema: the rules live in its webhook (pkg/webhook/v1beta1/experiment/validator).
This module encodes them, plus a few checks the suggestion and early-stopping services make only once the
experiment runs (numeric bounds, medianstop settings), so a bad experiment is rejected before it is sent.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from kubeflow_bridge.resources._checks import (
    Causes,
    check_container,
    check_object_header,
    expect,
    expect_enum,
    expect_min,
)
from kubeflow_bridge.resources.errors import FieldCause, raise_if_any
from kubeflow_bridge.resources.training import check_pytorchjob_spec

API_VERSION = "kubeflow.org/v1beta1"
KIND = "Experiment"
OBJECTIVE_TYPES = ("minimize", "maximize")
METRIC_STRATEGIES = ("min", "max", "latest")
#: Algorithms served by Katib v0.19's default suggestion services (katib-config).
ALGORITHMS = (
    "random",
    "grid",
    "bayesianoptimization",
    "tpe",
    "multivariate-tpe",
    "cmaes",
    "sobol",
    "hyperband",
    "pbt",
    "enas",
    "darts",
)
EARLY_STOPPING_ALGORITHMS = ("medianstop",)
PARAMETER_TYPES = ("int", "double", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
RESUME_POLICIES = ("Never", "LongRunning", "FromVolume")
COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Push")
#: Kinds whose success/failure conditions Katib's defaulter fills in (Kubeflow training jobs).
KUBEFLOW_JOB_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "PaddleJob", "JAXJob", "MXJob")
FILE_FORMATS = ("TEXT", "JSON")
#: Katib's default success/failure conditions (GJSON) for batch Jobs and Kubeflow training jobs.
JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
TRIAL_PARAMETER_RE = re.compile(r"\$\{trialParameters\.([^}]*)\}")
#: Trial metadata a trialParameter may reference instead of a search-space parameter.
_META_REFERENCE_RE = re.compile(
    r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[[^\]]+\]|Annotations\[[^\]]+\])\}$"
)


def validate_experiment(obj: dict[str, Any]) -> None:
    """Check an Experiment as Katib's admission webhook would (plus numeric bounds).

    Raises:
        ValidationError: listing every problem found, each saying what to fix.
    """
    causes: Causes = []
    if not isinstance(obj, dict):
        raise_if_any(KIND, "", [FieldCause("", "an Experiment must be an object")])
        return
    name = check_object_header(causes, obj, kind=KIND, api_version=API_VERSION)
    spec: Any = obj.get("spec")
    if expect(causes, "spec", spec, dict, required=True):
        _check_counts(causes, spec)
        expect_enum(causes, "spec.resumePolicy", spec.get("resumePolicy") or None, RESUME_POLICIES)
        _check_objective(causes, spec.get("objective"))
        _check_algorithm(causes, spec.get("algorithm"))
        _check_early_stopping(causes, spec.get("earlyStopping"))
        param_names = _check_parameters(causes, spec)
        _check_trial_template(causes, spec.get("trialTemplate"), param_names)
        _check_metrics_collector(causes, spec.get("metricsCollectorSpec"))
    raise_if_any(KIND, name, causes)


def _check_counts(causes: Causes, spec: dict[str, Any]) -> None:
    parallel: Any = spec.get("parallelTrialCount")
    max_trials: Any = spec.get("maxTrialCount")
    max_failed: Any = spec.get("maxFailedTrialCount")
    parallel_ok = expect_min(causes, "spec.parallelTrialCount", parallel, 1)
    max_ok = expect_min(causes, "spec.maxTrialCount", max_trials, 1)
    failed_ok = expect_min(causes, "spec.maxFailedTrialCount", max_failed, 0)
    if max_ok and failed_ok and max_failed > max_trials:
        causes.append(
            FieldCause(
                "spec.maxFailedTrialCount", f"must be <= spec.maxTrialCount ({max_failed} > {max_trials})"
            )
        )
    if max_ok and parallel_ok and parallel > max_trials:
        causes.append(
            FieldCause(
                "spec.parallelTrialCount", f"must be <= spec.maxTrialCount ({parallel} > {max_trials})"
            )
        )


def _check_objective(causes: Causes, objective: Any) -> set[str]:
    if not expect(causes, "spec.objective", objective, dict, required=True):
        return set()
    expect_enum(causes, "spec.objective.type", objective.get("type"), OBJECTIVE_TYPES, required=True)
    metric = objective.get("objectiveMetricName")
    if not metric or not isinstance(metric, str):
        causes.append(
            FieldCause(
                "spec.objective.objectiveMetricName",
                "is required: the metric name the trials print",
                "FieldValueRequired",
            )
        )
        metric = None
    goal = objective.get("goal")
    if goal is not None and (isinstance(goal, bool) or not isinstance(goal, (int, float))):
        causes.append(FieldCause("spec.objective.goal", f"must be a number, not {goal!r}"))
    names = {metric} if metric else set()
    additional: Any = objective.get("additionalMetricNames")
    if expect(causes, "spec.objective.additionalMetricNames", additional, list):
        for i, extra in enumerate(additional):
            path = f"spec.objective.additionalMetricNames[{i}]"
            if not expect(causes, path, extra, str):
                continue
            if extra == metric:
                causes.append(
                    FieldCause(
                        path, f"{extra!r} is the objective metric: remove it from additionalMetricNames"
                    )
                )
            names.add(extra)
    strategies: Any = objective.get("metricStrategies")
    if expect(causes, "spec.objective.metricStrategies", strategies, list):
        for i, strategy in enumerate(strategies):
            path = f"spec.objective.metricStrategies[{i}]"
            if not expect(causes, path, strategy, dict):
                continue
            if strategy.get("name") not in names:
                causes.append(
                    FieldCause(
                        f"{path}.name",
                        f"{strategy.get('name')!r} is neither the objective nor an additional metric",
                    )
                )
            expect_enum(causes, f"{path}.value", strategy.get("value"), METRIC_STRATEGIES, required=True)
    return names


def _check_settings(causes: Causes, path: str, settings: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    if expect(causes, path, settings, list):
        for i, setting in enumerate(settings):
            spath = f"{path}[{i}]"
            if expect(causes, spath, setting, dict):
                ok_name = expect(causes, f"{spath}.name", setting.get("name"), str, required=True)
                ok_value = expect(causes, f"{spath}.value", setting.get("value"), str)
                if ok_name and ok_value:
                    found[setting["name"]] = setting["value"]
    return found


def _check_algorithm(causes: Causes, algorithm: Any) -> None:
    if not expect(causes, "spec.algorithm", algorithm, dict, required=True):
        return
    expect_enum(
        causes,
        "spec.algorithm.algorithmName",
        algorithm.get("algorithmName") or None,
        ALGORITHMS,
        required=True,
    )
    _check_settings(causes, "spec.algorithm.algorithmSettings", algorithm.get("algorithmSettings"))


def _check_early_stopping(causes: Causes, early: Any) -> None:
    if not expect(causes, "spec.earlyStopping", early, dict):
        return
    path = "spec.earlyStopping"
    expect_enum(
        causes,
        f"{path}.algorithmName",
        early.get("algorithmName") or None,
        EARLY_STOPPING_ALGORITHMS,
        required=True,
    )
    settings: Any = _check_settings(causes, f"{path}.algorithmSettings", early.get("algorithmSettings"))
    # The medianstop service rejects these at experiment start; say so now.
    for key, minimum in (("min_trials_required", 1), ("start_step", 1)):
        if key in settings and not (re.fullmatch(r"\d+", settings[key]) and int(settings[key]) >= minimum):
            causes.append(
                FieldCause(
                    f"{path}.algorithmSettings",
                    f"{key} must be an integer >= {minimum} (got {settings[key]!r})",
                )
            )
    unknown = set(settings) - {"min_trials_required", "start_step"}
    if early.get("algorithmName") == "medianstop" and unknown:
        causes.append(
            FieldCause(
                f"{path}.algorithmSettings",
                f"unknown medianstop settings {sorted(unknown)}: use min_trials_required, start_step",
            )
        )


def _number(text: Any) -> float | None:
    if isinstance(text, bool):
        return None
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _check_parameters(causes: Causes, spec: dict[str, Any]) -> set[str]:
    params: Any = spec.get("parameters")
    nas: Any = spec.get("nasConfig")
    if params and nas:
        causes.append(FieldCause("spec.parameters", "set only one of spec.parameters and spec.nasConfig"))
    if not params:
        if not nas:
            causes.append(
                FieldCause("spec.parameters", "is required: list the search space", "FieldValueRequired")
            )
        return set()
    if not expect(causes, "spec.parameters", params, list):
        return set()
    names: set[str] = set()
    for i, param in enumerate(params):
        path = f"spec.parameters[{i}]"
        if not expect(causes, path, param, dict):
            continue
        name = param.get("name")
        if expect(causes, f"{path}.name", name, str, required=True):
            if name in names:
                causes.append(
                    FieldCause(f"{path}.name", f"parameter name {name!r} is duplicated: names must be unique")
                )
            names.add(name)
        ptype = param.get("parameterType")
        expect_enum(causes, f"{path}.parameterType", ptype, PARAMETER_TYPES, required=True)
        space: Any = param.get("feasibleSpace")
        if not expect(causes, f"{path}.feasibleSpace", space, dict, required=True):
            continue
        _check_feasible_space(causes, f"{path}.feasibleSpace", ptype, space)
    return names


def _check_feasible_space(causes: Causes, path: str, ptype: Any, space: dict[str, Any]) -> None:
    for key in ("min", "max", "step", "distribution"):
        expect(causes, f"{path}.{key}", space.get(key), str)
    if ptype in ("int", "double"):
        if space.get("list"):
            causes.append(
                FieldCause(f"{path}.list", f"is not allowed for parameterType {ptype}: use min and max")
            )
        parse = (
            (lambda t: int(t) if re.fullmatch(r"[+-]?\d+", str(t)) else None) if ptype == "int" else _number
        )
        bounds = {}
        for key in ("min", "max"):
            if space.get(key) in (None, ""):
                causes.append(
                    FieldCause(
                        f"{path}.{key}", f"is required for parameterType {ptype}", "FieldValueRequired"
                    )
                )
                continue
            bounds[key] = parse(space[key])
            if bounds[key] is None:
                causes.append(FieldCause(f"{path}.{key}", f"{space[key]!r} is not a valid {ptype}"))
        lo, hi = bounds.get("min"), bounds.get("max")
        if lo is not None and hi is not None and lo >= hi:
            causes.append(
                FieldCause(f"{path}.max", f"must be greater than min ({space['min']} >= {space['max']})")
            )
        if space.get("step") not in (None, ""):
            step = parse(space["step"])
            if step is None or step <= 0:
                causes.append(
                    FieldCause(f"{path}.step", f"must be a positive {ptype} (got {space['step']!r})")
                )
        distribution = space.get("distribution") or None
        expect_enum(causes, f"{path}.distribution", distribution, DISTRIBUTIONS)
        if distribution in ("logUniform", "logNormal") and lo is not None and lo <= 0:
            causes.append(FieldCause(f"{path}.min", f"must be > 0 for distribution {distribution}"))
    elif ptype in ("categorical", "discrete"):
        for key in ("min", "max", "step"):
            if space.get(key) not in (None, ""):
                causes.append(
                    FieldCause(f"{path}.{key}", f"is not allowed for parameterType {ptype}: use list")
                )
        values: Any = space.get("list")
        if not isinstance(values, list) or not values:
            causes.append(
                FieldCause(
                    f"{path}.list",
                    f"must be a non-empty list for parameterType {ptype}",
                    "FieldValueRequired",
                )
            )
            return
        for j, value in enumerate(values):
            if not isinstance(value, str):
                causes.append(
                    FieldCause(
                        f"{path}.list[{j}]", f"must be a string (Katib compares strings), not {value!r}"
                    )
                )
            elif ptype == "discrete" and _number(value) is None:
                causes.append(
                    FieldCause(
                        f"{path}.list[{j}]", f"{value!r} is not a number: discrete values must be numeric"
                    )
                )
        if len({str(v) for v in values}) != len(values):
            causes.append(FieldCause(f"{path}.list", "contains duplicate values"))


def trial_spec_containers(trial_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a trialSpec (a Job's pod template, or each replica's of a Kubeflow job)."""
    found: list[dict[str, Any]] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            containers: Any = node.get("containers")
            if isinstance(containers, list):
                found.extend(c for c in containers if isinstance(c, dict))
            for key, value in node.items():
                if key != "containers":
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(trial_spec.get("spec"))
    return found


def _check_trial_template(causes: Causes, template: Any, param_names: set[str]) -> None:
    path = "spec.trialTemplate"
    if not expect(causes, path, template, dict, required=True):
        return
    trial_spec: Any = template.get("trialSpec")
    if trial_spec is not None and template.get("configMap") is not None:
        causes.append(FieldCause(path, "set only one of trialSpec and configMap"))
    if trial_spec is None and template.get("configMap") is None:
        causes.append(
            FieldCause(
                f"{path}.trialSpec",
                "is required: the Job or PyTorchJob each trial runs",
                "FieldValueRequired",
            )
        )
    config_map: Any = template.get("configMap")
    if expect(causes, f"{path}.configMap", config_map, dict):
        missing = [
            k for k in ("configMapName", "configMapNamespace", "templatePath") if not config_map.get(k)
        ]
        if missing:
            causes.append(
                FieldCause(f"{path}.configMap", f"needs {', '.join(missing)}", "FieldValueRequired")
            )
    if not template.get("primaryContainerName"):
        causes.append(
            FieldCause(
                f"{path}.primaryContainerName",
                "is required: the container that prints the metrics",
                "FieldValueRequired",
            )
        )
    trial_text = json.dumps(trial_spec) if isinstance(trial_spec, dict) else ""
    declared: set[str] = set()
    references: set[str] = set()
    tparams: Any = template.get("trialParameters")
    if expect(causes, f"{path}.trialParameters", tparams, list, required=True):
        for i, tp in enumerate(tparams):
            tpath = f"{path}.trialParameters[{i}]"
            if not expect(causes, tpath, tp, dict):
                continue
            tname, ref = tp.get("name"), tp.get("reference")
            if not tname or not ref or not isinstance(tname, str) or not isinstance(ref, str):
                causes.append(FieldCause(tpath, "name and reference are both required", "FieldValueRequired"))
                continue
            if "{" in tname or "}" in tname:
                causes.append(FieldCause(f"{tpath}.name", f"{tname!r} must not contain '{{' or '}}'"))
                continue
            if tname in declared:
                causes.append(FieldCause(f"{tpath}.name", f"trial parameter name {tname!r} is duplicated"))
            if ref in references:
                causes.append(
                    FieldCause(
                        f"{tpath}.reference",
                        f"reference {ref!r} is duplicated: each parameter is referenced once",
                    )
                )
            declared.add(tname)
            references.add(ref)
            if param_names and ref not in param_names and not _META_REFERENCE_RE.match(ref):
                causes.append(
                    FieldCause(
                        f"{tpath}.reference",
                        f"{ref!r} is not a parameter in spec.parameters (known: {sorted(param_names)}) "
                        "nor trial metadata like ${trialSpec.Name}",
                    )
                )
            if trial_text and f"${{trialParameters.{tname}}}" not in trial_text:
                causes.append(
                    FieldCause(f"{tpath}.name", f"${{trialParameters.{tname}}} is not used in trialSpec")
                )
    if isinstance(trial_spec, dict):
        for used in sorted(set(TRIAL_PARAMETER_RE.findall(trial_text)) - declared):
            causes.append(
                FieldCause(
                    f"{path}.trialSpec",
                    f"${{trialParameters.{used}}} is used but not declared in trialParameters",
                )
            )
        _check_trial_spec(causes, f"{path}.trialSpec", trial_spec, template)
    elif trial_spec is not None:
        causes.append(FieldCause(f"{path}.trialSpec", "must be an object (a Job or PyTorchJob manifest)"))
    for key in ("successCondition", "failureCondition"):
        expect(causes, f"{path}.{key}", template.get(key), str)
    labels: Any = template.get("primaryPodLabels")
    if expect(causes, f"{path}.primaryPodLabels", labels, dict):
        for key, value in labels.items():
            expect(causes, f"{path}.primaryPodLabels[{key}]", value, str)
    expect(causes, f"{path}.retain", template.get("retain"), bool)


def _check_trial_spec(
    causes: Causes, path: str, trial_spec: dict[str, Any], template: dict[str, Any]
) -> None:
    kind = trial_spec.get("kind")
    if not trial_spec.get("apiVersion") or not kind:
        causes.append(
            FieldCause(path, "apiVersion and kind are required (e.g. batch/v1 Job)", "FieldValueRequired")
        )
    metadata: Any = trial_spec.get("metadata")
    if isinstance(metadata, dict) and (metadata.get("name") or metadata.get("namespace")):
        causes.append(
            FieldCause(
                f"{path}.metadata", "omit name and namespace: Katib names each trial's job after the trial"
            )
        )
    if kind not in ("Job", *KUBEFLOW_JOB_KINDS) and not (
        template.get("successCondition") and template.get("failureCondition")
    ):
        causes.append(
            FieldCause(
                path,
                f"kind {kind!r} has no default success/failure condition: set successCondition and failureCondition",
            )
        )
    if kind == "PyTorchJob" and isinstance(trial_spec.get("spec"), dict):
        check_pytorchjob_spec(causes, f"{path}.spec", trial_spec["spec"])
    if kind == "Job" and trial_spec.get("apiVersion") == "batch/v1":
        _check_batch_job(causes, path, trial_spec)
    primary = template.get("primaryContainerName")
    if not primary:
        return
    names = [c.get("name") for c in trial_spec_containers(trial_spec)]
    if names and primary not in names:  # none: the containers are elsewhere (a TrainJob's runtime)
        causes.append(
            FieldCause(
                "spec.trialTemplate.primaryContainerName",
                f"{primary!r} is not a container of the trialSpec (containers: {names})",
            )
        )


def _check_batch_job(causes: Causes, path: str, job: dict[str, Any]) -> None:
    """The parts of a batch/v1 Job trialSpec Kubernetes would reject."""
    spec: Any = job.get("spec")
    if not expect(causes, f"{path}.spec", spec, dict, required=True):
        return
    template: Any = spec.get("template")
    if not expect(causes, f"{path}.spec.template", template, dict, required=True):
        return
    pod: Any = template.get("spec")
    if not expect(causes, f"{path}.spec.template.spec", pod, dict, required=True):
        return
    containers: Any = pod.get("containers")
    if expect(causes, f"{path}.spec.template.spec.containers", containers, list, required=True):
        for i, container in enumerate(containers):
            check_container(causes, f"{path}.spec.template.spec.containers[{i}]", container)
    # Kubernetes accepts only these for a Job's pods (the default, Always, is rejected).
    expect_enum(
        causes,
        f"{path}.spec.template.spec.restartPolicy",
        pod.get("restartPolicy"),
        ("Never", "OnFailure"),
        required=True,
    )


def _check_metrics_collector(causes: Causes, collector_spec: Any) -> None:
    path = "spec.metricsCollectorSpec"
    if not expect(causes, path, collector_spec, dict):
        return
    collector: Any = collector_spec.get("collector")
    kind = collector.get("kind") if isinstance(collector, dict) else None
    if expect(causes, f"{path}.collector", collector, dict):
        expect_enum(causes, f"{path}.collector.kind", kind, COLLECTOR_KINDS, required=True)
    source: Any = collector_spec.get("source")
    if not expect(causes, f"{path}.source", source, dict):
        source = {}
    fs_path: Any = source.get("fileSystemPath")
    if not expect(causes, f"{path}.source.fileSystemPath", fs_path, dict):
        fs_path = None
    fs = f"{path}.source.fileSystemPath"
    # Katib's defaulter gives StdOut a fileSystemPath (it tees stdout to a file), so it is allowed there.
    if kind in ("File", "TensorFlowEvent"):
        want = "File" if kind == "File" else "Directory"
        if fs_path is None or not str(fs_path.get("path", "")).startswith("/"):
            causes.append(
                FieldCause(
                    f"{fs}.path", f"an absolute path is required for collector {kind}", "FieldValueRequired"
                )
            )
        elif fs_path.get("kind") != want:
            causes.append(FieldCause(f"{fs}.kind", f"must be {want!r} for collector {kind}"))
        fmt_value = (fs_path or {}).get("format")
        if kind == "File":
            # Katib's defaulter sets TEXT when format is empty.
            expect_enum(causes, f"{fs}.format", fmt_value or None, FILE_FORMATS)
            if fmt_value == "JSON" and source.get("filter") is not None:
                causes.append(
                    FieldCause(f"{path}.source.filter", "must be omitted when the metrics file is JSON")
                )
        elif fmt_value:
            causes.append(FieldCause(f"{fs}.format", f"must be empty for collector {kind}"))
    if kind == "PrometheusMetric":
        http_get: Any = source.get("httpGet") if isinstance(source.get("httpGet"), dict) else {}
        port = http_get.get("port")
        if not (str(port).isdigit() and int(str(port)) > 0):
            causes.append(
                FieldCause(f"{path}.source.httpGet.port", f"must be a positive port number (got {port!r})")
            )
        if not str(http_get.get("path", "")).startswith("/"):
            causes.append(
                FieldCause(f"{path}.source.httpGet.path", "must be an absolute URL path like '/metrics'")
            )
    if kind == "Custom":
        if not (isinstance(collector, dict) and collector.get("customCollector")):
            causes.append(
                FieldCause(
                    f"{path}.collector.customCollector",
                    "is required for collector Custom",
                    "FieldValueRequired",
                )
            )
        if fs_path is not None and (
            not str(fs_path.get("path", "")).startswith("/")
            or fs_path.get("kind") not in ("File", "Directory")
        ):
            causes.append(FieldCause(fs, "needs an absolute path and kind File or Directory"))
    filt: Any = source.get("filter")
    fmt: Any = filt.get("metricsFormat") if isinstance(filt, dict) else None
    if expect(causes, f"{path}.source.filter.metricsFormat", fmt, list):
        for i, pattern in enumerate(fmt):
            fpath = f"{path}.source.filter.metricsFormat[{i}]"
            try:
                compiled = re.compile(pattern)
            except (re.error, TypeError) as exc:
                causes.append(FieldCause(fpath, f"is not a valid regular expression: {exc}"))
                continue
            if compiled.groups < 2:
                causes.append(FieldCause(fpath, "needs two capture groups: the metric name and its value"))
