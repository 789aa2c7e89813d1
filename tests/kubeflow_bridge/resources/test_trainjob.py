"""TrainJob (Kubeflow Trainer v2.3) builder and validator."""

from __future__ import annotations

import pytest

from kubeflow_bridge.resources.errors import ValidationError
from kubeflow_bridge.resources.trainjob import build_trainjob, runtime_ref, validate_trainjob


def test_build_names_the_runtime_and_overrides_only_what_is_given() -> None:
    job = build_trainjob(
        name="fit",
        namespace="team",
        image="kubeflow-bridge/trainer:latest",
        command=["torchrun", "train.py"],
        env={"EPOCHS": "3", "KEY": {"secretKeyRef": {"name": "s3", "key": "id"}}},
        num_nodes=2,
        resources_per_node={"limits": {"cpu": "2"}},
    )
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["spec"]["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == 2 and trainer["command"] == ["torchrun", "train.py"]
    assert trainer["env"] == [
        {"name": "EPOCHS", "value": "3"},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "id"}}},
    ]
    assert "numProcPerNode" not in trainer and "suspend" not in job["spec"]
    assert build_trainjob(name="bare")["spec"] == {
        "runtimeRef": {
            "name": "torch-distributed",
            "apiGroup": "trainer.kubeflow.org",
            "kind": "ClusterTrainingRuntime",
        }
    }
    assert runtime_ref({"spec": {"runtimeRef": {"name": "mine"}}}) == ("ClusterTrainingRuntime", "mine")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda j: j["spec"]["trainer"].update(numNodes=0), "spec.trainer.numNodes", ">= 1"),
        (lambda j: j["spec"]["trainer"].update(numProcPerNode=0), "spec.trainer.numProcPerNode", ">= 1"),
        (
            lambda j: j["spec"]["trainer"].update(env=[{"name": "PET_MASTER_PORT", "value": "1"}]),
            "spec.trainer.env",
            "reserved",
        ),
        (lambda j: j["spec"]["trainer"].update(image="Bad Image"), "spec.trainer.image", "not a valid image"),
        (lambda j: j["spec"]["trainer"].update(command=[]), "spec.trainer.command", "must not be empty"),
        (
            lambda j: j["spec"]["trainer"].update(resourcesPerNode={"limits": {"cpu": "-1"}}),
            "resourcesPerNode",
            "greater than or equal to 0",
        ),
        (
            lambda j: j["spec"]["runtimeRef"].update(kind="Deployment"),
            "spec.runtimeRef.kind",
            "ClusterTrainingRuntime",
        ),
        (lambda j: j["spec"]["runtimeRef"].pop("name"), "spec.runtimeRef.name", "is required"),
        (lambda j: j["metadata"].update(name="x" * 64), "metadata.name", "63"),
        (lambda j: j["spec"].update(managedBy="me"), "spec.managedBy", "trainjob-controller"),
    ],
)
def test_validation_names_the_field_and_the_fix(change: object, field: str, message: str) -> None:
    job = build_trainjob(name="fit", command=["python", "t.py"], num_nodes=1)
    change(job)  # type: ignore[operator]
    with pytest.raises(ValidationError) as err:
        validate_trainjob(job)
    assert any(c.field.startswith(field) or field in c.field for c in err.value.causes), err.value
    assert message in str(err.value)


def test_runtime_patches_are_built_and_keyed_by_manager() -> None:
    patch = {
        "manager": "platform.example.com/webhook",
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{"name": "node"}]}}},
    }
    job = build_trainjob(name="p", runtime_patches=[patch])
    assert job["spec"]["runtimePatches"] == [patch]
    with pytest.raises(ValidationError) as info:
        build_trainjob(name="p", runtime_patches=[{"trainingRuntimeSpec": {}}, patch, patch])
    fields = {c.field: c.message for c in info.value.causes}
    assert "is required: who owns this patch" in fields["spec.runtimePatches[0].manager"]
    assert "each manager may own one patch" in fields["spec.runtimePatches"]
