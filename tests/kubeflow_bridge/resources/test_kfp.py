from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from kubeflow_bridge.resources.errors import ValidationError
from kubeflow_bridge.resources.kfp import (
    InputDef,
    PipelineDoc,
    as_pipeline_doc,
    build_recurring_run_request,
    build_run_request,
    cast_parameter,
    normalize_cron,
    parse_pipeline_yaml,
    pipeline_inputs,
    validate_parameters,
)

# The shape of a compiled pipeline (kfp 2.x IR), hello-world as in KFP's proto test data, plus inputs.
IR: dict[str, Any] = {
    "components": {"comp-hello-world": {"executorLabel": "exec-hello-world"}},
    "deploymentSpec": {"executors": {"exec-hello-world": {"container": {"image": "python:3.11"}}}},
    "pipelineInfo": {"name": "pipeline-hello-world"},
    "root": {
        "dag": {
            "tasks": {
                "hello-world": {
                    "componentRef": {"name": "comp-hello-world"},
                    "taskInfo": {"name": "hello-world"},
                }
            }
        },
        "inputDefinitions": {
            "parameters": {
                "batch_size": {"parameterType": "NUMBER_INTEGER"},
                "learning_rate": {
                    "parameterType": "NUMBER_DOUBLE",
                    "defaultValue": 0.001,
                    "isOptional": True,
                },
                "data_uri": {"parameterType": "STRING", "description": "where the data is"},
                "use_gpu": {"parameterType": "BOOLEAN", "defaultValue": False, "isOptional": True},
                "features": {"parameterType": "LIST", "defaultValue": ["a"], "isOptional": True},
                "config": {"parameterType": "STRUCT", "isOptional": True},
            }
        },
    },
    "schemaVersion": "2.1.0",
    "sdkVersion": "kfp-2.14.0",
}
PLATFORM: dict[str, Any] = {
    "platforms": {
        "kubernetes": {"deploymentSpec": {"executors": {"exec-hello-world": {"imagePullPolicy": "Always"}}}}
    }
}


def test_parse_single_and_multi_document_yaml() -> None:
    single = parse_pipeline_yaml("# PIPELINE DEFINITION\n# Name: pipeline-hello-world\n" + yaml.safe_dump(IR))
    assert single == PipelineDoc(pipeline_spec=IR) and single.name == "pipeline-hello-world"
    assert single.to_api() == IR
    multi = parse_pipeline_yaml(yaml.safe_dump(IR) + "---\n" + yaml.safe_dump(PLATFORM))
    assert multi.pipeline_spec == IR and multi.platform_spec == PLATFORM
    assert multi.to_api() == {"pipeline_spec": IR, "platform_spec": PLATFORM}
    assert as_pipeline_doc(multi.to_api()) == multi


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "is empty"),
        ("a: [", "not valid YAML"),
        ("pipelineInfo: {name: x}\n", "needs root and pipelineInfo"),
        ("- 1\n", "must be a mapping"),
    ],
)
def test_parse_rejects_non_pipelines(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_pipeline_yaml(text)


def test_pipeline_inputs() -> None:
    inputs = pipeline_inputs(IR)
    assert inputs["batch_size"] == InputDef(type="NUMBER_INTEGER", required=True)
    assert inputs["learning_rate"] == InputDef(type="NUMBER_DOUBLE", required=False, default=0.001)
    assert inputs["data_uri"] == InputDef(type="STRING", required=True, description="where the data is")
    assert inputs["config"].required is False and inputs["config"].default is None
    assert pipeline_inputs({"pipelineInfo": {"name": "p"}, "root": {"dag": {}}}) == {}


def test_validate_parameters_casts_rendered_strings() -> None:
    typed = validate_parameters(
        IR,
        {
            "batch_size": "64",
            "learning_rate": "0.5",
            "data_uri": "s3://bucket/data",
            "use_gpu": "True",
            "features": "['x', 'y']",
            "config": '{"k": 1}',
        },
    )
    assert typed == {
        "batch_size": 64,
        "learning_rate": 0.5,
        "data_uri": "s3://bucket/data",
        "use_gpu": True,
        "features": ["x", "y"],
        "config": {"k": 1},
    }
    assert type(typed["batch_size"]) is int and type(typed["learning_rate"]) is float


def test_validate_parameters_keeps_typed_values_and_skips_optional_none() -> None:
    typed = validate_parameters(
        IR, {"batch_size": 8, "data_uri": "x", "learning_rate": 1, "config": None, "features": ("a",)}
    )
    assert typed == {"batch_size": 8, "data_uri": "x", "learning_rate": 1.0, "features": ["a"]}


def test_validate_parameters_reports_every_problem() -> None:
    with pytest.raises(ValidationError) as info:
        validate_parameters(
            IR,
            {
                "batch_size": "3.5",
                "learning_rate": "fast",
                "use_gpu": "maybe",
                "features": "a,b",
                "config": "[1]",
                "epochs": 3,
            },
        )
    causes = {c.field: c for c in info.value.causes}
    assert "must be an integer" in causes["parameters.batch_size"].message
    assert "must be a finite number" in causes["parameters.learning_rate"].message
    assert "must be a boolean" in causes["parameters.use_gpu"].message
    assert "must be a JSON list" in causes["parameters.features"].message
    assert "must be a JSON object" in causes["parameters.config"].message
    assert "is not an input of the pipeline" in causes["parameters.epochs"].message
    assert "batch_size, config, data_uri" in causes["parameters.epochs"].message
    assert causes["parameters.data_uri"].reason == "FieldValueRequired"
    assert "without a default" in causes["parameters.data_uri"].message
    assert str(info.value).startswith('pipeline parameters "pipeline-hello-world" is invalid')


def test_required_parameter_given_none_is_missing() -> None:
    with pytest.raises(ValidationError, match=r"parameters\.batch_size: is required"):
        validate_parameters(IR, {"batch_size": None, "data_uri": "x"})


@pytest.mark.parametrize(
    "value,ptype,expected",
    [
        ("3", "NUMBER_INTEGER", 3),
        (3.0, "NUMBER_INTEGER", 3),
        (" -2 ", "NUMBER_INTEGER", -2),
        ("1e-3", "NUMBER_DOUBLE", 0.001),
        ("false", "BOOLEAN", False),
        ("1", "BOOLEAN", True),
        ('["a"]', "LIST", ["a"]),
        ("{'a': [1]}", "STRUCT", {"a": [1]}),
        ("3", "STRING", "3"),
    ],
)
def test_cast_parameter(value: Any, ptype: str, expected: Any) -> None:
    assert cast_parameter(value, ptype) == expected


@pytest.mark.parametrize(
    "value,ptype,message",
    [
        (True, "NUMBER_INTEGER", "must be an integer"),
        (3, "STRING", "must be a string"),
        ("nan", "NUMBER_DOUBLE", "finite"),
        (True, "NUMBER_DOUBLE", "finite"),
        (1, "BOOLEAN", "must be a boolean"),
        ({"a": {1, 2}}, "STRUCT", "JSON-serialisable"),
        ("x", "BYTES", "unknown parameterType"),
    ],
)
def test_cast_parameter_rejects(value: Any, ptype: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cast_parameter(value, ptype)


def test_run_request_matches_the_v2beta1_run_fields() -> None:
    # Input fields of KFP's run_completed_with_spec test data; the spec here declares those parameters.
    ir = json.loads(json.dumps(IR))
    ir["root"]["inputDefinitions"]["parameters"] = {
        "batch_size": {"parameterType": "NUMBER_INTEGER"},
        "learning_rate": {"parameterType": "STRING"},
    }
    body = build_run_request(
        display_name="Production Pipeline Run",
        description="Production pipeline execution for data processing",
        experiment_id="exp-456",
        pipeline_spec=ir,
        parameters={"batch_size": "1000", "learning_rate": "foo"},
        service_account="sa1",
    )
    assert body == {
        "display_name": "Production Pipeline Run",
        "description": "Production pipeline execution for data processing",
        "experiment_id": "exp-456",
        "pipeline_spec": ir,
        "runtime_config": {"parameters": {"batch_size": 1000, "learning_rate": "foo"}},
        "service_account": "sa1",
    }
    assert body["pipeline_spec"] is not ir


def test_run_request_with_platform_spec_and_pipeline_root() -> None:
    doc = PipelineDoc(pipeline_spec=IR, platform_spec=PLATFORM)
    body = build_run_request(
        display_name="r",
        pipeline_spec=doc,
        parameters={"batch_size": 1, "data_uri": "d"},
        pipeline_root="s3://b/p",
    )
    assert body["pipeline_spec"] == {"pipeline_spec": IR, "platform_spec": PLATFORM}
    assert body["runtime_config"] == {
        "parameters": {"batch_size": 1, "data_uri": "d"},
        "pipeline_root": "s3://b/p",
    }


def test_run_request_by_version_reference() -> None:
    ref = {"pipeline_id": "9b187b86", "pipeline_version_id": "e15dc3ec"}
    body = build_run_request(display_name="r", pipeline_version_reference=ref, parameters={"x": "1"})
    assert body == {
        "display_name": "r",
        "runtime_config": {"parameters": {"x": "1"}},
        "pipeline_version_reference": ref,
    }


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({}, "exactly one of pipeline_spec and pipeline_version_reference"),
        ({"pipeline_spec": IR, "pipeline_version_reference": {"pipeline_id": "p"}}, "exactly one"),
        ({"pipeline_version_reference": {"pipeline_version_id": "v"}}, "pipeline_id: is required"),
        ({"pipeline_version_reference": {"pipeline_id": "p", "version": "v"}}, "unknown keys"),
        ({"pipeline_spec": IR, "parameters": {"data_uri": "x"}}, "batch_size: is required"),
    ],
)
def test_run_request_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_run_request(display_name="r", **kwargs)


def test_run_request_needs_display_name() -> None:
    with pytest.raises(ValidationError, match="display_name: is required"):
        build_run_request(display_name="", pipeline_version_reference={"pipeline_id": "p"})


def test_recurring_run_matches_the_v2beta1_recurring_run_fields() -> None:
    # Input fields of KFP's recurring_run test data (max_concurrency there is "0"; the API's range is 1-10).
    body = build_recurring_run_request(
        display_name="Daily Data Processing",
        description="Scheduled pipeline for daily data processing tasks",
        pipeline_version_reference={
            "pipeline_id": "9b187b86-7c0a-42ae-a0bc-2a746b6eb7a3",
            "pipeline_version_id": "e15dc3ec-b45e-4cc7-bb07-e76b5dbce99a",
        },
        parameters={"batch_size": 500, "processing_date": "${system.date}"},
        service_account="sa3",
        interval_seconds=86400,
        start_time="2024-01-01T12:00:00Z",
        no_catchup=False,
        namespace="namespace1",
    )
    assert body == {
        "display_name": "Daily Data Processing",
        "description": "Scheduled pipeline for daily data processing tasks",
        "pipeline_version_reference": {
            "pipeline_id": "9b187b86-7c0a-42ae-a0bc-2a746b6eb7a3",
            "pipeline_version_id": "e15dc3ec-b45e-4cc7-bb07-e76b5dbce99a",
        },
        "runtime_config": {"parameters": {"batch_size": 500, "processing_date": "${system.date}"}},
        "service_account": "sa3",
        "max_concurrency": "1",
        "trigger": {"periodic_schedule": {"start_time": "2024-01-01T12:00:00Z", "interval_second": "86400"}},
        "mode": "ENABLE",
        "no_catchup": False,
        "namespace": "namespace1",
    }


def test_recurring_run_cron_with_spec() -> None:
    body = build_recurring_run_request(
        display_name="nightly",
        cron="30 2 * * *",
        max_concurrency=3,
        enabled=False,
        pipeline_spec=IR,
        parameters={"batch_size": "2", "data_uri": "s3://d"},
        experiment_id="e1",
    )
    assert body["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * *"}}
    assert body["max_concurrency"] == "3" and body["mode"] == "DISABLE" and body["no_catchup"] is True
    assert body["runtime_config"]["parameters"] == {"batch_size": 2, "data_uri": "s3://d"}
    assert body["experiment_id"] == "e1" and body["pipeline_spec"] == IR


def test_normalize_cron() -> None:
    assert normalize_cron("0 0 9 ? * 2-6") == "0 0 9 ? * 2-6"
    with pytest.raises(ValueError, match="5 fields"):
        normalize_cron("@daily")


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({}, "trigger"),
        ({"cron": "* * * * *", "interval_seconds": 60}, "trigger"),
        ({"cron": "* * *"}, "trigger.cron_schedule.cron"),
        ({"interval_seconds": 0}, "trigger.periodic_schedule.interval_second"),
        ({"interval_seconds": 60, "max_concurrency": 11}, "max_concurrency"),
    ],
)
def test_recurring_run_rejects(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_recurring_run_request(
            display_name="n", pipeline_version_reference={"pipeline_id": "p"}, **kwargs
        )
    assert field in {c.field for c in info.value.causes}
