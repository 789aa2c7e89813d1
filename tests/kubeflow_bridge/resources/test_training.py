from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from kubeflow_bridge.resources.errors import ValidationError
from kubeflow_bridge.resources.training import (
    PyTorchJobSpec,
    RunPolicy,
    build_pytorchjob,
    env_list,
    resource_requirements,
    validate_pytorchjob,
)

IMAGE = "docker.io/kubeflowkatib/pytorch-mnist:v1beta1-45c5727"
COMMAND = ["python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1"]


def _example_replica() -> dict[str, Any]:
    # Written from training-operator v1.9.4 examples/pytorch/simple.yaml (Master and Worker are identical).
    return {
        "replicas": 1,
        "restartPolicy": "OnFailure",
        "template": {
            "spec": {
                "containers": [
                    {"name": "pytorch", "image": IMAGE, "imagePullPolicy": "Always", "command": list(COMMAND)}
                ]
            }
        },
    }


def _example() -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "pytorch-simple", "namespace": "kubeflow"},
        "spec": {"pytorchReplicaSpecs": {"Master": _example_replica(), "Worker": _example_replica()}},
    }


def test_builder_reproduces_the_upstream_simple_example_field_by_field() -> None:
    built = PyTorchJobSpec(
        name="pytorch-simple",
        namespace="kubeflow",
        image=IMAGE,
        image_pull_policy="Always",
        command=COMMAND,
        workers=1,
    ).to_dict()
    expected = _example()
    # The builder always writes runPolicy (the SDK's model requires it); the upstream example leaves it out.
    assert built["spec"].pop("runPolicy") == {}
    assert built["apiVersion"] == expected["apiVersion"]
    assert built["kind"] == expected["kind"]
    assert built["metadata"] == expected["metadata"]
    for rtype in ("Master", "Worker"):
        assert built["spec"]["pytorchReplicaSpecs"][rtype] == expected["spec"]["pytorchReplicaSpecs"][rtype]
    assert built == expected
    validate_pytorchjob(expected)


def test_builder_full_options() -> None:
    job = build_pytorchjob(
        name="train-abc",
        image="kubeflow-bridge/trainer:latest",
        command=["python", "-m", "trainer", "train"],
        args=["--epochs", "3"],
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "EPOCHS": 3},
        resources=resource_requirements(cpu="2", memory="4Gi", gpu=1),
        workers=2,
        nproc_per_node=1,
        restart_policy="Never",
        run_policy=RunPolicy(
            clean_pod_policy="All",
            backoff_limit=2,
            active_deadline_seconds=3600,
            ttl_seconds_after_finished=600,
        ),
        labels={"app.kubernetes.io/managed-by": "kubeflow-bridge"},
        annotations={"kubeflow-bridge.io/dag-id": "d"},
    )
    spec = job["spec"]
    assert spec["nprocPerNode"] == "1"
    assert spec["runPolicy"] == {
        "cleanPodPolicy": "All",
        "backoffLimit": 2,
        "activeDeadlineSeconds": 3600,
        "ttlSecondsAfterFinished": 600,
    }
    master = spec["pytorchReplicaSpecs"]["Master"]
    worker = spec["pytorchReplicaSpecs"]["Worker"]
    assert master["replicas"] == 1 and worker["replicas"] == 2
    assert master["restartPolicy"] == worker["restartPolicy"] == "Never"
    container = master["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch"
    assert container["args"] == ["--epochs", "3"]
    assert container["env"] == [
        {"name": "AWS_ENDPOINT_URL", "value": "http://127.0.0.1:8333"},
        {"name": "EPOCHS", "value": "3"},
    ]
    assert container["resources"] == {
        "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "2", "memory": "4Gi"},
    }
    assert master["template"]["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubeflow-bridge"}
    assert job["metadata"]["annotations"] == {"kubeflow-bridge.io/dag-id": "d"}


def test_no_workers_emits_no_worker_spec() -> None:
    job = build_pytorchjob(name="solo", image="img", command=["true"])
    assert list(job["spec"]["pytorchReplicaSpecs"]) == ["Master"]
    assert job["spec"]["runPolicy"] == {} and "nprocPerNode" not in job["spec"]


def test_env_list_passes_value_from_through() -> None:
    env = [{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    assert env_list(env) == env and env_list(env) is not env
    assert env_list(None) == []


def test_build_validates() -> None:
    with pytest.raises(ValidationError, match=r"metadata\.name"):
        build_pytorchjob(name="Bad_Name", image="img")


def _mutate(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    obj = copy.deepcopy(_example())
    fn(obj)
    return obj


def _master(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["pytorchReplicaSpecs"]["Master"]


def _pytorch(obj: dict[str, Any]) -> dict[str, Any]:
    return _master(obj)["template"]["spec"]["containers"][0]


M = "spec.pytorchReplicaSpecs.Master"
C = f"{M}.template.spec.containers"

CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    (
        "name dns1035",
        lambda o: o["metadata"].update(name="Pytorch_Simple"),
        "metadata.name",
        "not a valid DNS-1035",
    ),
    ("name too long", lambda o: o["metadata"].update(name="a" * 64), "metadata.name", "no more than 63"),
    (
        "api version",
        lambda o: o.update(apiVersion="kubeflow.org/v2"),
        "apiVersion",
        "must be 'kubeflow.org/v1'",
    ),
    ("kind", lambda o: o.update(kind="TFJob"), "kind", "must be 'PyTorchJob'"),
    ("no spec", lambda o: o.pop("spec"), "spec", "is required"),
    (
        "no replica specs",
        lambda o: o["spec"].pop("pytorchReplicaSpecs"),
        "spec.pytorchReplicaSpecs",
        "is required",
    ),
    (
        "empty replica specs",
        lambda o: o["spec"].update(pytorchReplicaSpecs={}),
        "spec.pytorchReplicaSpecs",
        "must contain a Master",
    ),
    (
        "unknown replica type",
        lambda o: o["spec"]["pytorchReplicaSpecs"].update(Chief=_example_replica()),
        "spec.pytorchReplicaSpecs.Chief",
        "use Master or Worker",
    ),
    ("master replicas", lambda o: _master(o).update(replicas=2), f"{M}.replicas", "exactly 1 replica"),
    (
        "worker zero",
        lambda o: o["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas=0),
        "spec.pytorchReplicaSpecs.Worker.replicas",
        "omit Worker for none",
    ),
    ("replicas type", lambda o: _master(o).update(replicas="1"), f"{M}.replicas", "must be an integer"),
    (
        "restart policy",
        lambda o: _master(o).update(restartPolicy="Sometimes"),
        f"{M}.restartPolicy",
        "use one of Always",
    ),
    ("no template", lambda o: _master(o).pop("template"), f"{M}.template", "is required"),
    ("containers type", lambda o: _master(o)["template"]["spec"].update(containers={}), C, "must be a list"),
    ("container name", lambda o: _pytorch(o).update(name="main"), C, "container named 'pytorch'"),
    ("container image", lambda o: _pytorch(o).pop("image"), f"{C}[0].image", "is required"),
    (
        "sidecar image",
        lambda o: _master(o)["template"]["spec"]["containers"].append({"name": "sidecar"}),
        f"{C}[1].image",
        "is required",
    ),
    (
        "no containers",
        lambda o: _master(o)["template"]["spec"].update(containers=[]),
        C,
        "must list at least",
    ),
    ("master replicas missing", lambda o: _master(o).pop("replicas"), f"{M}.replicas", "set replicas: 1"),
    (
        "managed by",
        lambda o: o["spec"].update(runPolicy={"managedBy": "me"}),
        "spec.runPolicy.managedBy",
        "kubeflow.org/training-operator",
    ),
    (
        "elastic without worker",
        lambda o: (
            o["spec"]["pytorchReplicaSpecs"].pop("Worker"),
            o["spec"].update(elasticPolicy={"maxReplicas": 3}),
        ),
        "spec.pytorchReplicaSpecs.Worker",
        "is required when elasticPolicy is set",
    ),
    (
        "elastic nproc twice",
        lambda o: o["spec"].update(nprocPerNode="2", elasticPolicy={"nProcPerNode": 2}),
        "spec.elasticPolicy.nProcPerNode",
        "must not be used with spec.nprocPerNode",
    ),
    (
        "elastic field type",
        lambda o: o["spec"].update(elasticPolicy={"maxReplicas": "3"}),
        "spec.elasticPolicy.maxReplicas",
        "must be an integer",
    ),
    (
        "command type",
        lambda o: _pytorch(o).update(command="python train.py"),
        f"{C}[0].command",
        "must be a list",
    ),
    ("args items", lambda o: _pytorch(o).update(args=["--epochs", 3]), f"{C}[0].args[1]", "must be a string"),
    ("env type", lambda o: _pytorch(o).update(env={"A": "b"}), f"{C}[0].env", "must be a list"),
    (
        "env value type",
        lambda o: _pytorch(o).update(env=[{"name": "A", "value": 1}]),
        f"{C}[0].env[0].value",
        "must be a string",
    ),
    ("env name", lambda o: _pytorch(o).update(env=[{"value": "x"}]), f"{C}[0].env[0].name", "is required"),
    (
        "env name chars",
        lambda o: _pytorch(o).update(env=[{"name": "A B", "value": "x"}]),
        f"{C}[0].env[0].name",
        "not a valid environment",
    ),
    (
        "env both",
        lambda o: _pytorch(o).update(env=[{"name": "A", "value": "x", "valueFrom": {}}]),
        f"{C}[0].env[0]",
        "not both",
    ),
    (
        "resources type",
        lambda o: _pytorch(o).update(resources=["cpu"]),
        f"{C}[0].resources",
        "must be an object",
    ),
    (
        "resources quantity",
        lambda o: _pytorch(o).update(resources={"limits": {"nvidia.com/gpu": "one"}}),
        f"{C}[0].resources.limits[nvidia.com/gpu]",
        "is not a quantity",
    ),
    (
        "resources section",
        lambda o: _pytorch(o).update(resources={"limit": {"cpu": "1"}}),
        f"{C}[0].resources.limit",
        "use limits or requests",
    ),
    (
        "pull policy",
        lambda o: _pytorch(o).update(imagePullPolicy="Sometimes"),
        f"{C}[0].imagePullPolicy",
        "use one of",
    ),
    (
        "port range",
        lambda o: _pytorch(o).update(ports=[{"containerPort": 70000}]),
        f"{C}[0].ports[0].containerPort",
        "between 1 and 65535",
    ),
    ("nproc type", lambda o: o["spec"].update(nprocPerNode=2), "spec.nprocPerNode", "must be a string"),
    ("run policy type", lambda o: o["spec"].update(runPolicy="All"), "spec.runPolicy", "must be an object"),
    (
        "clean pod policy",
        lambda o: o["spec"].update(runPolicy={"cleanPodPolicy": "Some"}),
        "spec.runPolicy.cleanPodPolicy",
        "use one of All, Running, None",
    ),
    (
        "backoff",
        lambda o: o["spec"].update(runPolicy={"backoffLimit": -1}),
        "spec.runPolicy.backoffLimit",
        ">= 0",
    ),
    (
        "deadline",
        lambda o: o["spec"].update(runPolicy={"activeDeadlineSeconds": "1h"}),
        "spec.runPolicy.activeDeadlineSeconds",
        "must be an integer",
    ),
    (
        "ttl",
        lambda o: o["spec"].update(runPolicy={"ttlSecondsAfterFinished": -5}),
        "spec.runPolicy.ttlSecondsAfterFinished",
        ">= 0",
    ),
    (
        "suspend",
        lambda o: o["spec"].update(runPolicy={"suspend": "yes"}),
        "spec.runPolicy.suspend",
        "must be a boolean",
    ),
    ("labels", lambda o: o["metadata"].update(labels={"a": 1}), "metadata.labels[a]", "must be a string"),
]


@pytest.mark.parametrize("case,mutate,field,fragment", CASES, ids=[c[0] for c in CASES])
def test_each_rule_rejects_with_a_message(
    case: str,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
    fragment: str,
    expect_rejection: Callable[..., dict[str, str]],
) -> None:
    causes = expect_rejection(validate_pytorchjob, _mutate(mutate))
    assert field in causes, causes
    assert fragment in causes[field]


def test_all_problems_reported_at_once_and_str_names_the_object() -> None:
    obj = _mutate(lambda o: (_master(o).update(replicas=3), _pytorch(o).update(name="x")))
    with pytest.raises(ValidationError) as info:
        validate_pytorchjob(obj)
    assert len(info.value.causes) == 2
    assert str(info.value).startswith('PyTorchJob "pytorch-simple" is invalid: ')
    assert isinstance(info.value, ValueError)


def test_non_dict_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must be an object"):
        validate_pytorchjob([])  # type: ignore[arg-type]


def test_env_from_reaches_every_replica_and_is_validated() -> None:
    from kubeflow_bridge.resources.errors import ValidationError
    from kubeflow_bridge.resources.training import PyTorchJobSpec, validate_pytorchjob
    from kubeflow_bridge.workflow import STORAGE_SECRET, storage_env_from

    job = PyTorchJobSpec(
        name="train", image="kubeflow-bridge/trainer:latest", workers=1, env_from=storage_env_from()
    )
    manifest = job.to_dict()
    validate_pytorchjob(manifest)
    for replica in manifest["spec"]["pytorchReplicaSpecs"].values():
        (container,) = replica["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": STORAGE_SECRET, "optional": True}}]
    for bad, message in (
        ([{}], "set exactly one of secretRef or configMapRef"),
        ([{"secretRef": {"name": "Bad_Name"}}], "'Bad_Name' is not a valid object name"),
        ([{"secretRef": {"name": "s"}, "configMapRef": {"name": "c"}}], "exactly one"),
        ("s3", "must be a list"),
    ):
        broken = PyTorchJobSpec(name="train", image="kubeflow-bridge/trainer:latest", env_from=bad).to_dict()  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match=message):
            validate_pytorchjob(broken)
