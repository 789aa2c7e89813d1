"""KFP v2beta1 run and recurring-run requests from a compiled pipeline (the IR YAML), without the kfp SDK.

A compiled pipeline file holds the PipelineSpec and, when the pipeline uses Kubernetes platform
features, a second YAML document with the PlatformSpec. The API then takes
``{"pipeline_spec": <IR>, "platform_spec": <platform>}`` as the run's ``pipeline_spec`` (what the kfp SDK
sends); a single document is sent as is.

Airflow renders templated values to strings, so :func:`validate_parameters` casts ``"3"``, ``"0.5"``,
``"true"`` or ``'["a"]'`` to the type the pipeline declares, and rejects what cannot be cast.
"""

from __future__ import annotations

import ast
import copy
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from kubeflow_bridge.resources.errors import FieldCause, ValidationError, raise_if_any

#: The largest integer a protobuf Value (a double) carries exactly.
MAX_EXACT_INTEGER = 2**53
PARAMETER_TYPES = ("STRING", "NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "LIST", "STRUCT")
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")
_INT_RE = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class PipelineDoc:
    """A compiled pipeline: its IR and, if the file had one, its platform spec.

    Args:
        pipeline_spec: The PipelineSpec (IR) document.
        platform_spec: The PlatformSpec document, or None.
    """

    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """``pipelineInfo.name``."""
        return str((self.pipeline_spec.get("pipelineInfo") or {}).get("name", ""))

    def to_api(self) -> dict[str, Any]:
        """The run's ``pipeline_spec`` field: the IR alone, or IR and platform spec wrapped."""
        if self.platform_spec:
            return {
                "pipeline_spec": copy.deepcopy(self.pipeline_spec),
                "platform_spec": copy.deepcopy(self.platform_spec),
            }
        return copy.deepcopy(self.pipeline_spec)


@dataclass(frozen=True)
class InputDef:
    """One pipeline input parameter (``root.inputDefinitions.parameters[name]``).

    Args:
        type: ``STRING``, ``NUMBER_INTEGER``, ``NUMBER_DOUBLE``, ``BOOLEAN``, ``LIST`` or ``STRUCT``.
        required: True when the run must supply it (not optional and no default).
        default: The default value, if any.
        description: The parameter's description.
    """

    type: str
    required: bool
    default: Any = None
    description: str = ""


def parse_pipeline_yaml(text: str | bytes) -> PipelineDoc:
    """Parse a compiled pipeline YAML (one document, or IR then platform spec).

    Raises:
        ValidationError: when the text is not a compiled KFP v2 pipeline.
    """
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ValidationError("pipeline spec", "", [FieldCause("", f"is not valid YAML: {exc}")]) from exc
    if not docs:
        raise ValidationError(
            "pipeline spec", "", [FieldCause("", "is empty: pass a pipeline compiled with kfp v2")]
        )
    return as_pipeline_doc(
        docs[0] if len(docs) == 1 else {"pipeline_spec": docs[0], "platform_spec": _merge(docs[1:])}
    )


def _merge(docs: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for doc in docs:
        if isinstance(doc, dict):
            merged.update(doc)
    return merged


def as_pipeline_doc(spec: dict[str, Any] | PipelineDoc) -> PipelineDoc:
    """Accept an IR dict, a ``{"pipeline_spec", "platform_spec"}`` wrapper or a :class:`PipelineDoc`."""
    if isinstance(spec, PipelineDoc):
        return spec
    if not isinstance(spec, dict):
        raise ValidationError(
            "pipeline spec", "", [FieldCause("", f"must be a mapping, not {type(spec).__name__}")]
        )
    if "pipeline_spec" in spec and "root" not in spec:
        doc = PipelineDoc(
            pipeline_spec=spec["pipeline_spec"], platform_spec=spec.get("platform_spec") or None
        )
    else:
        doc = PipelineDoc(pipeline_spec=spec)
    ir = doc.pipeline_spec
    if not isinstance(ir, dict) or "root" not in ir or "pipelineInfo" not in ir:
        raise ValidationError(
            "pipeline spec",
            "",
            [
                FieldCause(
                    "root",
                    "a compiled KFP v2 pipeline needs root and pipelineInfo: compile it with kfp's Compiler",
                )
            ],
        )
    return doc


def pipeline_inputs(spec: dict[str, Any] | PipelineDoc) -> dict[str, InputDef]:
    """The pipeline's input parameters, from ``root.inputDefinitions.parameters``."""
    ir = as_pipeline_doc(spec).pipeline_spec
    params = ((ir.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    out: dict[str, InputDef] = {}
    for name, definition in params.items():
        has_default = "defaultValue" in definition
        out[name] = InputDef(
            type=str(definition.get("parameterType", "STRING")),
            required=not definition.get("isOptional", False) and not has_default,
            default=definition.get("defaultValue"),
            description=str(definition.get("description", "")),
        )
    return out


def _literal(text: str) -> Any:
    """Parse JSON, or a Python literal (Airflow renders lists and dicts with repr())."""
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def cast_parameter(value: Any, ptype: str) -> Any:
    """Cast ``value`` to the KFP parameter type ``ptype``.

    Raises:
        ValueError: saying what value the type needs.
    """
    if ptype == "STRING":
        if isinstance(value, str):
            return value
        raise ValueError(f"must be a string, not {type(value).__name__} {value!r}")
    if ptype == "NUMBER_INTEGER":
        integer: int | None = None
        if isinstance(value, str) and _INT_RE.match(value.strip()):
            integer = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            integer = value
        elif isinstance(value, float) and value.is_integer():
            integer = int(value)
        if integer is None:
            raise ValueError(f"must be an integer (e.g. 3), not {value!r}")
        if abs(integer) > MAX_EXACT_INTEGER:
            # parameters travel as protobuf Values (doubles): a larger integer would arrive changed
            raise ValueError(
                f"must be between -2**53 and 2**53 (KFP passes numbers as doubles), not {value!r}"
            )
        return integer
    if ptype == "NUMBER_DOUBLE":
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise ValueError(f"must be a finite number (e.g. 0.5), not {value!r}")
        return number
    if ptype == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"must be a boolean (true or false), not {value!r}")
    if ptype in ("LIST", "STRUCT"):
        want: type = list if ptype == "LIST" else dict
        parsed = value
        if isinstance(value, str):
            try:
                parsed = _literal(value)
            except (ValueError, SyntaxError):
                parsed = None
        if isinstance(parsed, tuple) and want is list:
            parsed = list(parsed)
        if not isinstance(parsed, want):
            example = '["a", "b"]' if want is list else '{"key": "value"}'
            raise ValueError(
                f"must be a JSON {'list' if want is list else 'object'} (e.g. {example}), not {value!r}"
            )
        try:
            json.dumps(parsed)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be JSON-serialisable: {exc}") from exc
        return parsed
    raise ValueError(
        f"has an unknown parameterType {ptype!r} in the pipeline spec (expected one of {PARAMETER_TYPES})"
    )


def validate_parameters(
    pipeline_spec: dict[str, Any] | PipelineDoc, params: dict[str, Any]
) -> dict[str, Any]:
    """Check run parameters against the pipeline's inputs and return them typed.

    Only the given parameters are returned (KFP applies the defaults itself).

    Raises:
        ValidationError: for unknown names, missing required inputs and values of the wrong type.
    """
    inputs = pipeline_inputs(pipeline_spec)
    doc_name = as_pipeline_doc(pipeline_spec).name
    causes: list[FieldCause] = []
    typed: dict[str, Any] = {}
    for name, value in (params or {}).items():
        definition = inputs.get(name)
        if definition is None:
            known = ", ".join(sorted(inputs)) or "none"
            causes.append(
                FieldCause(
                    f"parameters.{name}",
                    f"is not an input of the pipeline (its inputs: {known})",
                    "FieldValueNotSupported",
                )
            )
            continue
        if value is None:
            if definition.required:
                causes.append(
                    FieldCause(f"parameters.{name}", f"is required ({definition.type})", "FieldValueRequired")
                )
            continue
        try:
            typed[name] = cast_parameter(value, definition.type)
        except ValueError as exc:
            causes.append(FieldCause(f"parameters.{name}", f"{exc} (declared {definition.type})"))
    for name, definition in inputs.items():
        if definition.required and name not in (params or {}):
            causes.append(
                FieldCause(
                    f"parameters.{name}",
                    f"is required: the pipeline declares it without a default ({definition.type})",
                    "FieldValueRequired",
                )
            )
    raise_if_any("pipeline parameters", doc_name, causes)
    return typed


def _source(
    pipeline_spec: dict[str, Any] | PipelineDoc | None,
    pipeline_version_reference: dict[str, str] | None,
    parameters: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline source fields of a request and the (validated) parameters."""
    if (pipeline_spec is None) == (pipeline_version_reference is None):
        raise ValidationError(
            "run request",
            "",
            [FieldCause("pipeline_spec", "set exactly one of pipeline_spec and pipeline_version_reference")],
        )
    if pipeline_spec is not None:
        doc = as_pipeline_doc(pipeline_spec)
        return {"pipeline_spec": doc.to_api()}, validate_parameters(doc, parameters or {})
    ref = dict(pipeline_version_reference or {})
    if not ref.get("pipeline_id"):
        raise ValidationError(
            "run request",
            "",
            [FieldCause("pipeline_version_reference.pipeline_id", "is required", "FieldValueRequired")],
        )
    unknown = set(ref) - {"pipeline_id", "pipeline_version_id"}
    if unknown:
        raise ValidationError(
            "run request",
            "",
            [
                FieldCause(
                    "pipeline_version_reference",
                    f"unknown keys {sorted(unknown)}: use pipeline_id, pipeline_version_id",
                )
            ],
        )
    # Without the spec the server checks the parameters; send them as given (JSON values).
    return {"pipeline_version_reference": ref}, dict(parameters or {})


def _common(
    *,
    display_name: str,
    parameters: dict[str, Any],
    experiment_id: str | None,
    description: str | None,
    service_account: str | None,
    pipeline_root: str | None,
) -> dict[str, Any]:
    if not display_name or not isinstance(display_name, str):
        raise ValidationError(
            "run request", "", [FieldCause("display_name", "is required", "FieldValueRequired")]
        )
    body: dict[str, Any] = {"display_name": display_name}
    if description:
        body["description"] = description
    if experiment_id:
        body["experiment_id"] = experiment_id
    runtime_config: dict[str, Any] = {"parameters": parameters}
    if pipeline_root:
        runtime_config["pipeline_root"] = pipeline_root
    body["runtime_config"] = runtime_config
    if service_account:
        body["service_account"] = service_account
    return body


def build_run_request(
    *,
    display_name: str,
    pipeline_spec: dict[str, Any] | PipelineDoc | None = None,
    pipeline_version_reference: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
    experiment_id: str | None = None,
    description: str | None = None,
    service_account: str | None = None,
    pipeline_root: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /apis/v2beta1/runs`` (a v2beta1 Run).

    Args:
        display_name: The run's display name.
        pipeline_spec: The compiled pipeline (IR dict, wrapper or :class:`PipelineDoc`); parameters are
            validated and typed against it.
        pipeline_version_reference: ``{"pipeline_id": ..., "pipeline_version_id": ...}`` of an uploaded
            pipeline, instead of ``pipeline_spec``.
        parameters: Run parameters (``runtime_config.parameters``).
        experiment_id: The experiment (the server's default experiment when None).
        description: Run description.
        service_account: Kubernetes service account of the run's pods.
        pipeline_root: Artifact root (e.g. ``s3://bucket/pipelines``).

    Raises:
        ValidationError: for an invalid source or invalid parameters.
    """
    source, typed = _source(pipeline_spec, pipeline_version_reference, parameters)
    body = _common(
        display_name=display_name,
        parameters=typed,
        experiment_id=experiment_id,
        description=description,
        service_account=service_account,
        pipeline_root=pipeline_root,
    )
    body.update(source)
    return body


def normalize_cron(cron: str) -> str:
    """KFP's scheduler reads six-field cron (seconds first); a five-field Airflow-style cron gets ``0`` seconds."""
    fields = cron.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise ValueError(f"cron {cron!r} must have 5 fields (minute hour day month weekday) or 6 (seconds first)")


def build_recurring_run_request(
    *,
    display_name: str,
    cron: str | None = None,
    interval_seconds: int | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    max_concurrency: int = 1,
    no_catchup: bool = True,
    enabled: bool = True,
    pipeline_spec: dict[str, Any] | PipelineDoc | None = None,
    pipeline_version_reference: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
    experiment_id: str | None = None,
    description: str | None = None,
    service_account: str | None = None,
    pipeline_root: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /apis/v2beta1/recurringruns`` (a v2beta1 RecurringRun).

    Args:
        display_name: The recurring run's display name.
        cron: Cron trigger (5 or 6 fields; see :func:`normalize_cron`).
        interval_seconds: Periodic trigger, instead of ``cron``.
        start_time: RFC 3339 start of the schedule.
        end_time: RFC 3339 end of the schedule.
        max_concurrency: Runs allowed at once (KFP accepts 1 to 10).
        no_catchup: Schedule only the latest missed interval when behind.
        enabled: ``mode`` ENABLE (or DISABLE).
        pipeline_spec: See :func:`build_run_request`.
        pipeline_version_reference: See :func:`build_run_request`.
        parameters: Run parameters.
        experiment_id: The experiment.
        description: Description.
        service_account: Kubernetes service account of the runs' pods.
        pipeline_root: Artifact root.
        namespace: Namespace (multi-user Kubeflow).

    Raises:
        ValidationError: for an invalid trigger, source or parameters.
    """
    causes: list[FieldCause] = []
    if (cron is None) == (interval_seconds is None):
        causes.append(FieldCause("trigger", "set exactly one of cron and interval_seconds"))
    schedule: dict[str, Any] = {}
    if cron is not None:
        try:
            schedule["cron"] = normalize_cron(cron)
        except ValueError as exc:
            causes.append(FieldCause("trigger.cron_schedule.cron", str(exc)))
    if interval_seconds is not None:
        if (
            isinstance(interval_seconds, bool)
            or not isinstance(interval_seconds, int)
            or interval_seconds < 1
        ):
            causes.append(
                FieldCause(
                    "trigger.periodic_schedule.interval_second",
                    f"must be a positive integer, not {interval_seconds!r}",
                )
            )
        else:
            schedule["interval_second"] = str(interval_seconds)
    if (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or not 1 <= max_concurrency <= 10
    ):
        causes.append(
            FieldCause("max_concurrency", f"must be an integer from 1 to 10, not {max_concurrency!r}")
        )
    raise_if_any("recurring run request", display_name or "", causes)
    if start_time:
        schedule["start_time"] = start_time
    if end_time:
        schedule["end_time"] = end_time
    source, typed = _source(pipeline_spec, pipeline_version_reference, parameters)
    body = _common(
        display_name=display_name,
        parameters=typed,
        experiment_id=experiment_id,
        description=description,
        service_account=service_account,
        pipeline_root=pipeline_root,
    )
    body.update(source)
    body["trigger"] = {"cron_schedule": schedule} if cron is not None else {"periodic_schedule": schedule}
    body["max_concurrency"] = str(max_concurrency)
    body["mode"] = "ENABLE" if enabled else "DISABLE"
    body["no_catchup"] = no_catchup
    if namespace:
        body["namespace"] = namespace
    return body
