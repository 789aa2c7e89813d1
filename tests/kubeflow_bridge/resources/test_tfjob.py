"""The TFJob validator and defaults: the training operator v1.9 webhook's rules, plus a lead replica."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeflow_bridge.resources.errors import ValidationError
from kubeflow_bridge.resources.tfjob import apply_tfjob_defaults, validate_tfjob

REPLICA = {"template": {"spec": {"containers": [{"name": "tensorflow", "image": "tf:2"}]}}}


def tfjob(**replicas: Any) -> dict[str, Any]:
    specs = {rtype: copy.deepcopy(REPLICA) if r is None else r for rtype, r in replicas.items()}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": "tf"},
        "spec": {"tfReplicaSpecs": specs},
    }


def test_a_chief_workers_and_ps_job_is_valid_and_gets_the_operators_defaults() -> None:
    job = tfjob(Chief=None, Worker=None, PS=None)
    validate_tfjob(job)
    apply_tfjob_defaults(job)
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "Running"}
    assert {r["restartPolicy"] for r in job["spec"]["tfReplicaSpecs"].values()} == {"Never"}
    assert {r["replicas"] for r in job["spec"]["tfReplicaSpecs"].values()} == {1}
    validate_tfjob(tfjob(Worker=None))  # workers alone: Worker 0 decides


@pytest.mark.parametrize(
    ("job", "field", "message"),
    [
        (tfjob(PS=None), "spec.tfReplicaSpecs", "needs a Chief (or Master) or a Worker"),
        (tfjob(Chief=None, Master=None), "spec.tfReplicaSpecs", "more than 1 Chief or Master"),
        (tfjob(Chief={**REPLICA, "replicas": 2}), "spec.tfReplicaSpecs.Chief.replicas", "exactly 1 replica"),
        (tfjob(Launcher=None), "spec.tfReplicaSpecs.Launcher", "not one of"),
        (
            tfjob(Worker={"template": {"spec": {"containers": [{"name": "main", "image": "tf:2"}]}}}),
            "spec.tfReplicaSpecs.Worker.template.spec.containers",
            "needs a container named 'tensorflow'",
        ),
        (
            tfjob(Worker={"template": {"spec": {"containers": [{"name": "tensorflow"}]}}}),
            "spec.tfReplicaSpecs.Worker.template.spec.containers[0].image",
            "is required: the container image to run",
        ),
        (
            tfjob(Worker={**REPLICA, "restartPolicy": "Sometimes"}),
            "spec.tfReplicaSpecs.Worker.restartPolicy",
            "",
        ),
    ],
)
def test_refusals_name_the_field_and_the_fix(job: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_tfjob(job)
    assert any(c.field == field and message in c.message for c in info.value.causes), info.value.causes
