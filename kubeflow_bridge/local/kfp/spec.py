"""Checks of compiled pipeline specs and run parameters, before anything is stored or started."""

from __future__ import annotations

from typing import Any

import yaml

from kubeflow_bridge.local.kfp.platform import PLATFORM_KEY, executors, platform_problems
from kubeflow_bridge.local.kfp.query import bad_request


def parse_package(data: bytes, filename: str = "pipeline.yaml") -> dict[str, Any]:
    """Reads an uploaded pipeline package (YAML or JSON; the first document is the pipeline spec)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"{filename}: not UTF-8 text; upload the compiled pipeline YAML") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise bad_request(f"{filename}: not valid YAML/JSON: {exc}") from exc
    if not docs:
        raise bad_request(f"{filename}: empty pipeline package")
    spec = unwrap_spec(docs[0])
    if len(docs) > 1 and isinstance(docs[1], dict) and executors(docs[1]):
        spec[PLATFORM_KEY] = docs[1]  # kfp-kubernetes settings, compiled as the second document
    return spec


def unwrap_spec(spec: Any) -> dict[str, Any]:
    """Accepts a bare PipelineSpec or the {pipeline_spec, platform_spec} wrapper the SDK may send."""
    if isinstance(spec, str):
        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError as exc:
            raise bad_request(f"pipeline_spec: not valid YAML/JSON: {exc}") from exc
    if isinstance(spec, dict):
        for key in ("pipeline_spec", "pipelineSpec"):
            if isinstance(spec.get(key), dict) and "root" not in spec:
                inner = unwrap_spec(spec[key])
                platform = spec.get("platform_spec") or spec.get("platformSpec")
                if isinstance(platform, dict) and executors(platform):
                    inner[PLATFORM_KEY] = platform
                return inner
    if not isinstance(spec, dict):
        raise bad_request("pipeline_spec must be an object: the compiled pipeline (kfp.compiler output)")
    return spec


_SCHEMA_VERSIONS = ("2.0.0", "2.1.0")  # what the KFP 2.x compilers write

# Field names of the PipelineSpec protos (pipeline_spec.proto), checked even where kfp is not installed
# (the control-plane env): unknown fields are what the real API's protojson parse rejects.
_FIELDS = {
    "PipelineSpec": {"components", "defaultPipelineRoot", "deploymentSpec", "pipelineInfo", "root", "schemaVersion", "sdkVersion"},
    "ComponentSpec": {"dag", "executorLabel", "inputDefinitions", "outputDefinitions", "singlePlatformSpecs", "taskConfigPassthroughs"},
    "PipelineTaskSpec": {
        "artifactIterator", "cachingOptions", "componentRef", "dependentTasks", "inputs", "iteratorPolicy",
        "parameterIterator", "retryPolicy", "taskInfo", "triggerPolicy",
    },
    "DagSpec": {"outputs", "tasks"},
    "ComponentRef": {"name"},
    "PipelineTaskInfo": {"name"},
    "PipelineInfo": {"description", "displayName", "name"},
}  # fmt: skip


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _check_object(obj: Any, message: str, where: str, problems: list[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        problems.append(f"{where} must be an object, not {type(obj).__name__}")
        return {}
    unknown = sorted(k for k in obj if _camel(str(k)) not in _FIELDS[message])
    if unknown:
        problems.append(
            f"{where} has unknown field(s) {unknown} ({message} accepts {sorted(_FIELDS[message])})"
        )
    return obj


def _structure_problems(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    _check_object(spec, "PipelineSpec", "pipeline_spec", problems)
    _check_object(spec.get("pipelineInfo", {}), "PipelineInfo", "pipelineInfo", problems)
    components = spec.get("components") or {}
    if not isinstance(components, dict):
        return [*problems, "components must be an object of {name: ComponentSpec}"]
    for comp_name, comp in [("root", spec.get("root", {})), *components.items()]:
        comp = _check_object(comp, "ComponentSpec", f"component {comp_name!r}", problems)
        dag = _check_object(comp.get("dag", {}), "DagSpec", f"component {comp_name!r} dag", problems)
        tasks = dag.get("tasks") or {}
        if not isinstance(tasks, dict):
            problems.append(f"component {comp_name!r} dag.tasks must be an object of {{name: task}}")
            continue
        for task_name, task in tasks.items():
            where = f"task {task_name!r} in {comp_name!r}"
            task = _check_object(task, "PipelineTaskSpec", where, problems)
            ref = _check_object(
                task.get("componentRef", {}), "ComponentRef", f"{where} componentRef", problems
            )
            if not isinstance(ref.get("name", ""), str):
                problems.append(f"{where} componentRef.name must be a string")
            _check_object(task.get("taskInfo", {}), "PipelineTaskInfo", f"{where} taskInfo", problems)
    return problems


def validate_spec(spec: dict[str, Any]) -> None:
    """Raises a 400 ApiError unless `spec` is a compiled PipelineSpec this runtime can execute."""
    problems = platform_problems(spec.get(PLATFORM_KEY))
    if problems:
        raise bad_request("pipeline platform_spec: " + "; ".join(problems))
    spec = {k: v for k, v in spec.items() if k != PLATFORM_KEY}
    for key in ("pipelineInfo", "root", "deploymentSpec", "schemaVersion"):
        if key not in spec:
            problems.append(f"missing {key!r}")
    if problems:
        raise bad_request(
            "malformed pipeline_spec: "
            + "; ".join(problems)
            + " (compile the pipeline with kfp.compiler.Compiler)"
        )
    if spec["schemaVersion"] not in _SCHEMA_VERSIONS:
        raise bad_request(
            f"malformed pipeline_spec: schemaVersion {spec['schemaVersion']!r} is not one this API runs "
            f"({', '.join(_SCHEMA_VERSIONS)}); compile with a KFP 2.x SDK"
        )
    problems = _structure_problems(spec)
    if problems:
        raise bad_request("malformed pipeline_spec: " + "; ".join(problems))
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except Exception as exc:
        raise bad_request(f"malformed pipeline_spec: {exc}") from exc
    if not spec.get("pipelineInfo", {}).get("name"):
        problems.append("pipelineInfo.name is empty")
    components = spec.get("components", {}) or {}
    executors = (spec.get("deploymentSpec", {}) or {}).get("executors", {}) or {}
    if "dag" not in spec.get("root", {}):
        problems.append("root has no dag")
    for comp_name, comp in [("root", spec.get("root", {})), *components.items()]:
        for task_name, task in ((comp.get("dag") or {}).get("tasks") or {}).items():
            ref = (task.get("componentRef") or {}).get("name")
            if ref not in components:
                problems.append(f"task {task_name!r} in {comp_name!r} refers to unknown component {ref!r}")
        label = comp.get("executorLabel")
        if label is not None and label not in executors:
            problems.append(f"component {comp_name!r} refers to unknown executor {label!r}")
    if problems:
        raise bad_request("malformed pipeline_spec: " + "; ".join(problems))


def validate_parameters(spec: dict[str, Any], params: Any) -> dict[str, Any]:
    """Checks run parameters against root.inputDefinitions with the bridge's shared validator.

    Returns them typed; a 400 ApiError lists every problem (unknown, missing, wrong type).
    """
    from kubeflow_bridge.resources import kfp as kfp_resources
    from kubeflow_bridge.resources.errors import ValidationError

    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise bad_request("runtime_config.parameters must be an object of {name: value}")
    try:
        return kfp_resources.validate_parameters(spec, params)
    except ValidationError as exc:
        raise bad_request(str(exc)) from exc
