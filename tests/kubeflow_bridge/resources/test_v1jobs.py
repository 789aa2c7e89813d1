"""The TFJob, XGBoostJob and JAXJob validators and defaults: the training operator v1.9 webhooks' rules
and SetDefaults, plus a replica that can finish the job."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeflow_bridge.resources.errors import ValidationError
from kubeflow_bridge.resources.v1jobs import apply_v1_defaults, validate_v1


def replica(container: str = "tensorflow", **extra: Any) -> dict[str, Any]:
    return {"template": {"spec": {"containers": [{"name": container, "image": "img:1"}]}}, **extra}


def v1job(kind: str = "TFJob", key: str = "tfReplicaSpecs", **replicas: Any) -> dict[str, Any]:
    specs = {rtype: copy.deepcopy(replica() if r is None else r) for rtype, r in replicas.items()}
    return {"apiVersion": "kubeflow.org/v1", "kind": kind, "metadata": {"name": "j"}, "spec": {key: specs}}


def test_valid_jobs_get_the_operators_defaults() -> None:
    job = v1job(Chief=None, Worker=None, PS=None)
    validate_v1(job)
    apply_v1_defaults(job)
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "None"} and job["spec"]["successPolicy"] == ""
    specs = job["spec"]["tfReplicaSpecs"].values()
    assert {r["restartPolicy"] for r in specs} == {"Never"} and {r["replicas"] for r in specs} == {1}
    assert job["spec"]["tfReplicaSpecs"]["PS"]["template"]["spec"]["containers"][0]["ports"] == [
        {"name": "tfjob-port", "containerPort": 2222}
    ]
    validate_v1(v1job(Worker=None))  # workers alone: Worker 0 decides
    validate_v1(v1job("XGBoostJob", "xgbReplicaSpecs", Master=replica("xgboost"), Worker=replica("xgboost")))
    jax = v1job("JAXJob", "jaxReplicaSpecs", Worker=replica("jax", replicas=2))
    validate_v1(jax)
    apply_v1_defaults(jax)
    assert jax["spec"]["jaxReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["ports"][0] == {
        "name": "jaxjob-port",
        "containerPort": 6666,
    }


@pytest.mark.parametrize(
    ("job", "field", "message"),
    [
        (v1job(PS=None), "spec.tfReplicaSpecs", "needs a Chief or Master or Worker replica spec"),
        (v1job(Chief=None, Master=None), "spec.tfReplicaSpecs", "more than 1 Chief or Master"),
        (v1job(Chief=replica(replicas=2)), "spec.tfReplicaSpecs.Chief.replicas", "exactly 1 replica"),
        (v1job(Launcher=None), "spec.tfReplicaSpecs.Launcher", "not one of"),
        (
            v1job(Worker=replica("main")),
            "spec.tfReplicaSpecs.Worker.template.spec.containers",
            "'tensorflow'",
        ),
        (
            v1job(Worker={"template": {"spec": {"containers": [{"name": "tensorflow"}]}}}),
            "spec.tfReplicaSpecs.Worker.template.spec.containers[0].image",
            "is required: the container image to run",
        ),
        (v1job(Worker=replica(restartPolicy="Sometimes")), "spec.tfReplicaSpecs.Worker.restartPolicy", ""),
        (
            v1job("XGBoostJob", "xgbReplicaSpecs", Worker=replica("xgboost")),
            "spec.xgbReplicaSpecs",
            "needs a Master replica spec",
        ),
        (
            v1job("XGBoostJob", "xgbReplicaSpecs", Master=replica("xgboost", replicas=2)),
            "spec.xgbReplicaSpecs.Master.replicas",
            "exactly 1 replica",
        ),
        (
            v1job("JAXJob", "jaxReplicaSpecs", Master=replica("jax")),
            "spec.jaxReplicaSpecs.Master",
            "not one of ['Worker']",
        ),
        (
            v1job("JAXJob", "jaxReplicaSpecs", Worker=replica("tensorflow")),
            "spec.jaxReplicaSpecs.Worker.template.spec.containers",
            "needs a container named 'jax'",
        ),
    ],
)
def test_refusals_name_the_field_and_the_fix(job: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_v1(job)
    assert any(c.field == field and message in c.message for c in info.value.causes), info.value.causes
