"""The KFP-in-Airflow DAG and the orchestrator comparison DAG: structure and their pure helpers."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import TriggerRule
from airflow.sdk.exceptions import ParamValidationError

from kubeflow_bridge import workflow


@pytest.fixture(scope="module")
def kfp_mod(load_dag_file: Any) -> Any:
    return load_dag_file("kfp_in_airflow")


@pytest.fixture(scope="module")
def cmp_mod(load_dag_file: Any) -> Any:
    return load_dag_file("compare_orchestrators")


def test_kfp_in_airflow_structure(kfp_mod: Any) -> None:
    dag = kfp_mod.dag
    assert {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} == {
        "prepare": [],
        "run_pipeline": ["prepare"],
        "report": ["run_pipeline"],
    }
    run = dag.get_task("run_pipeline")
    assert type(run).__name__ == "KubeflowPipelineRunOperator"
    assert Path(run.pipeline_package_path).is_file()
    assert run.pipeline_package_path.endswith("kubeflow_bridge/pipelines/anomaly_pipeline.yaml")
    assert run.parameters == "{{ ti.xcom_pull(task_ids='prepare') }}"
    with pytest.raises(ParamValidationError):
        dag.params.get_param("experiment").resolve(value="")


def test_kfp_params_match_the_compiled_pipeline_inputs(kfp_mod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from kubeflow_bridge.resources.kfp import parse_pipeline_yaml, validate_parameters

    spec = parse_pipeline_yaml(Path(kfp_mod.PIPELINE_PACKAGE).read_bytes())
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    values = kfp_mod.pipeline_parameters(dict(workflow.DEFAULTS), pendulum.datetime(2026, 2, 1, tz="UTC"))
    assert values["window_end"] == "2026-02-01T00:00:00+00:00"
    assert values["tracking_uri"] == ""  # no param, no connection: no tracking
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": "http://ml:1"})
    )
    assert kfp_mod.pipeline_parameters(dict(workflow.DEFAULTS))["tracking_uri"] == "http://ml:1"
    typed = validate_parameters(spec, values)
    assert typed["rows"] == workflow.DEFAULTS["rows"]
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        kfp_mod.pipeline_parameters({**workflow.DEFAULTS, "lr_min": 0.9})


def test_kfp_run_outcome_from_output_parameters(kfp_mod: Any) -> None:
    result = {
        "run_id": "r-1",
        "state": "succeeded",
        "output_parameters": {
            "tune": {"best_params": '{"latent_dim": 8, "lr": 0.003}', "compute_seconds": 30.0},
            "evaluate": {"f_score": "0.72"},
            "gate": {"Output": "deploy"},
            "deploy": {"deployed": True, "url": "http://127.0.0.1:9000"},
        },
    }
    assert kfp_mod.run_outcome(result) == {
        "run_id": "r-1",
        "state": "succeeded",
        "best_params": {"latent_dim": 8, "lr": 0.003},
        "f_score": 0.72,
        "gate": "deploy",
        "deployed": True,
        "url": "http://127.0.0.1:9000",
    }
    skipped = kfp_mod.run_outcome({"run_id": "r-2", "state": "succeeded", "output_parameters": {}})
    assert skipped["deployed"] is False and skipped["f_score"] is None


def test_compare_dag_structure(cmp_mod: Any) -> None:
    dag = cmp_mod.dag
    assert {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} == {
        "prepare": [],
        "run_airflow": ["prepare"],
        "run_kfp": ["run_airflow"],
        "compare": ["run_kfp"],
    }
    trigger = dag.get_task("run_airflow")
    assert trigger.trigger_dag_id == "anomaly_retraining"
    assert trigger.wait_for_completion is True
    assert "failed" in trigger.allowed_states  # a failed retraining run is still compared
    assert dag.get_task("run_kfp").trigger_rule == TriggerRule.ALL_DONE
    assert dag.get_task("compare").trigger_rule == TriggerRule.ALL_DONE


def test_compare_shared_inputs(cmp_mod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    # The KFP side has no Airflow connection: the mlflow_default connection's URI goes to both sides.
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": "http://ml:1"})
    )
    shared = cmp_mod.shared_inputs(dict(workflow.DEFAULTS), pendulum.datetime(2026, 2, 1, tz="UTC"))
    airflow, kfp = shared["airflow_conf"], shared["kfp_params"]
    assert airflow["window_end"] == kfp["window_end"] == "2026-02-01T00:00:00+00:00"
    assert airflow["service_name"] == "anomaly-vae-airflow" and kfp["service_name"] == "anomaly-vae-kfp"
    assert airflow["registered_model"] == "anomaly-detector-airflow" and kfp["registered_model"].endswith(
        "-kfp"
    )
    assert airflow["tracking_uri"] == kfp["tracking_uri"] == "http://ml:1"
    own = ("service_name", "registered_model")
    assert {k: v for k, v in airflow.items() if k not in own} == {
        k: v for k, v in kfp.items() if k not in own
    }
    long_name = {**workflow.DEFAULTS, "service_name": "s" * 45}
    names = cmp_mod.shared_inputs(long_name, pendulum.datetime(2026, 2, 1, tz="UTC"))
    assert len(names["airflow_conf"]["service_name"]) <= 45
    with pytest.raises(ValueError, match="set the window_end param"):
        cmp_mod.shared_inputs(dict(workflow.DEFAULTS), None)


def test_compare_command(cmp_mod: Any) -> None:
    command = cmp_mod.compare_command("compare__manual 1", "kfp-run-9", "reports")
    args = shlex.split(command)
    # The task supervisor's blanked database variables are dropped: airflow.cfg's connection applies.
    assert args[:5] == [
        "env",
        "-u",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "-u",
        "AIRFLOW__CORE__SQL_ALCHEMY_CONN",
    ]
    assert args[5:8] == ["python", "-m", "kubeflow_bridge.compare.cli"]
    assert args[args.index("--airflow-run-id") + 1] == "compare__manual 1"
    assert args[args.index("--kfp-run-id") + 1] == "kfp-run-9"
    assert "--kfp-run-id" not in shlex.split(cmp_mod.compare_command("r", None, "reports"))
    assert "--mlflow-uri" not in args  # no tracking: nothing logged
    tracked = shlex.split(cmp_mod.compare_command("r", "k", "reports", "http://127.0.0.1:5000"))
    assert tracked[tracked.index("--mlflow-uri") + 1] == "http://127.0.0.1:5000"
