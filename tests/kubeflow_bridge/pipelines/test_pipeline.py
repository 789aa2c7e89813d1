"""The compiled KFP pipeline: current, inputs as documented, structure, and the objects it creates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeflow_bridge import workflow
from kubeflow_bridge.compare.kfp_collector import spec_dependencies
from kubeflow_bridge.pipelines import steps
from kubeflow_bridge.pipelines.compile import COMPILED_PATH, compile_pipeline, main

_KFP_TYPES = {"source": "STRING", "rows": "NUMBER_INTEGER", "lr_min": "NUMBER_DOUBLE"}


def _spec(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_checked_in_yaml_equals_a_fresh_compile(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "fresh.yaml")
    assert fresh.read_text() == COMPILED_PATH.read_text(), (
        "kubeflow_bridge/pipelines/anomaly_pipeline.yaml is stale: run "
        "`python -m kubeflow_bridge.pipelines.compile` and commit it"
    )


def test_compile_cli_writes_where_asked(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--out", str(tmp_path / "x" / "p.yaml")]) == 0
    assert (tmp_path / "x" / "p.yaml").exists()
    assert "compiled anomaly_pipeline" in capsys.readouterr().out
    assert not [p for p in (tmp_path / "x").iterdir() if p.name.startswith(".")]


def test_pipeline_inputs_mirror_the_dag_params() -> None:
    spec = _spec(COMPILED_PATH)
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == set(workflow.DEFAULTS)
    for name, value in workflow.DEFAULTS.items():
        assert inputs[name]["defaultValue"] == value, name
        assert inputs[name].get("isOptional") is True, name
    for name, kfp_type in _KFP_TYPES.items():
        assert inputs[name]["parameterType"] == kfp_type


def test_pipeline_structure_and_gate() -> None:
    spec = _spec(COMPILED_PATH)
    deps = spec_dependencies(spec)
    assert set(deps) == {"ingest", "preprocess", "tune", "train", "evaluate", "gate", "deploy"}
    assert deps["ingest"] == []
    assert deps["preprocess"] == ["ingest"]
    assert set(deps["tune"]) == {"ingest", "preprocess"}
    assert set(deps["train"]) == {"ingest", "tune"}
    assert set(deps["evaluate"]) == {"ingest", "train"}
    assert deps["gate"] == ["evaluate"]
    # deploy sits inside the If group, so it depends on the gate (through the group) and its own inputs.
    assert "gate" in deps["deploy"] and "evaluate" in deps["deploy"]
    root_tasks = spec["root"]["dag"]["tasks"]
    condition = next(t for t in root_tasks.values() if t["taskInfo"]["name"] == "deploy-if-better")
    assert "pipelinechannel--gate-Output" in condition["triggerPolicy"]["condition"]
    assert "'deploy'" in condition["triggerPolicy"]["condition"]
    # Metrics and HTML artifacts for the KFP UI.
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    # Every component runs on the trainer image without installing kfp.
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == workflow.TRAINER_IMAGE, name
        assert "pip install" not in " ".join(container["command"]), name


def test_every_step_outputs_compute_seconds() -> None:
    spec = _spec(COMPILED_PATH)
    for step in ("ingest", "preprocess", "tune", "train", "evaluate", "deploy"):
        params = spec["components"][f"comp-{step}"]["outputDefinitions"]["parameters"]
        assert params["compute_seconds"]["parameterType"] == "NUMBER_DOUBLE", step


def test_component_objects_are_valid_and_carry_the_kfp_identity() -> None:
    from kubeflow_bridge.resources.names import with_identity

    prefix = "s3://b/runs/r1"
    who = steps.identity("run-uuid-1", "tune")
    experiment = steps.build_experiment(
        prefix, workflow.DEFAULTS, name=who.resource_name(max_length=40), namespace="kubeflow"
    )
    assert experiment["spec"]["maxTrialCount"] == workflow.DEFAULTS["max_trials"]
    assert experiment["spec"]["objective"]["objectiveMetricName"] == "val_loss"
    assert experiment["spec"]["algorithm"]["algorithmSettings"] == [{"name": "random_state", "value": "0"}]
    container = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == workflow.TRAINER_IMAGE
    assert "--latent-dim=${trialParameters.latentDim}" in container["command"]
    labelled = with_identity(experiment, who)
    annotations = labelled["metadata"]["annotations"]
    assert annotations["kubeflow-bridge.io/pipeline"] == "anomaly-pipeline"
    assert annotations["kubeflow-bridge.io/pipeline-task"] == "tune"

    v1 = {**workflow.DEFAULTS, "training_api": "pytorchjob", "worker_replicas": 2, "gpus_per_replica": 1}
    job = workflow.training_job(
        prefix, v1, {"lr": 0.003, "latent_dim": 6}, name="train-job", namespace="kubeflow"
    )
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Worker"]["replicas"] == 2
    master = replicas["Master"]["template"]["spec"]["containers"][0]
    assert master["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--lr=0.003" in master["args"] and master["command"] == ["python", "-m", "trainer"]
    assert master["envFrom"] == workflow.storage_env_from()
    # The default, Trainer v2: the same args on 1 + worker_replicas torchrun nodes, one process each.
    v2 = workflow.training_job(
        prefix, {**v1, "training_api": "trainjob"}, {"lr": 0.003, "latent_dim": 6}, name="train-job"
    )
    trainer = v2["spec"]["trainer"]
    assert v2["kind"] == "TrainJob" and v2["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 1)
    assert trainer["args"] == master["args"] and trainer["command"][0] == "torchrun"
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "1"
    # No envFrom on a TrainJob: the storage Secret's keys one by one, each optional.
    refs = [e["valueFrom"]["secretKeyRef"] for e in trainer["env"]]
    assert {r["name"] for r in refs} == {workflow.STORAGE_SECRET} and all(r["optional"] for r in refs)
    assert "AWS_SECRET_ACCESS_KEY" in {r["key"] for r in refs}
    with pytest.raises(ValueError, match="training_api must be one of trainjob, pytorchjob"):
        workflow.training_job(prefix, {**v1, "training_api": "tfjob"}, {}, name="x")

    isvc = steps.build_inference_service(prefix, name="anomaly-vae", namespace="kubeflow")
    # The F-score is recorded by the rollout once the model serves, not in the manifest.
    assert "kubeflow-bridge.io/metric.composite_f1" not in (isvc["metadata"].get("annotations") or {})
    predictor = isvc["spec"]["predictor"]["containers"][0]
    assert "s3://b/runs/r1/evaluation/model.pt" in predictor["command"]
