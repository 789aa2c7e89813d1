"""TrainJobOperator and TrainJobSensor against the real local runtime (Kubeflow Trainer v2.3 semantics)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from kubeflow_bridge.operators._base import KubeflowOperatorError
from kubeflow_bridge.operators.training import TrainJobOperator
from kubeflow_bridge.resources.names import IDENTITY_LABEL
from kubeflow_bridge.triggers.kubeflow import KubeflowObjectTrigger

from .test_local_runtime import ctx, namespace, objects, run_trigger, runtime  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e

# two nodes under torchrun (the torch-distributed runtime's PET_* env), a gloo all-reduce of the ranks
DDP = (
    "import torch, torch.distributed as dist\n"
    "dist.init_process_group('gloo')\n"
    "t = torch.tensor([float(dist.get_rank() + 1)])\n"
    "dist.all_reduce(t)\n"
    "print(f'rank={dist.get_rank()} world={dist.get_world_size()} sum={t.item()}', flush=True)\n"
    "dist.destroy_process_group()\n"
)


def trainjob(**kwargs: Any) -> TrainJobOperator:
    base: dict[str, Any] = {
        "task_id": "train",
        "command": ["torchrun", "--no-python", "python3", "-c", DDP],
        "num_nodes": 2,
        "poll_interval": 1,
        "timeout": 120,
    }
    return TrainJobOperator(**{**base, **kwargs})


def test_sync_trainjob_runs_two_nodes_and_streams_node_0(
    namespace: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = trainjob(deferrable=False).execute(ctx())
    assert result["state"] == "succeeded" and result["reason"] == "AllJobsCompleted"
    assert result["replica_statuses"] == {"node": {"active": 0, "succeeded": 1, "failed": 0}}
    out = capsys.readouterr().out
    assert "rank=0 world=2 sum=3.0" in out  # node 0's log in the task log
    [job] = objects("TrainJob", namespace)
    assert job["spec"]["trainer"]["numNodes"] == 2 and job["metadata"]["labels"][IDENTITY_LABEL]


def test_deferred_trainjob_reattaches_after_a_worker_crash_and_fails_with_its_last_words(
    namespace: str,  # noqa: F811
) -> None:
    context = ctx()
    with pytest.raises(TaskDeferred) as first:
        trainjob().execute(context)
    with pytest.raises(TaskDeferred) as second:  # the retry of a crashed worker: the same TrainJob
        trainjob().execute(context)
    assert len(objects("TrainJob", namespace)) == 1
    assert first.value.trigger.name == second.value.trigger.name
    _, kwargs = second.value.trigger.serialize()
    event = run_trigger(KubeflowObjectTrigger(**json.loads(json.dumps(kwargs))))
    assert event["status"] == "succeeded", event
    assert trainjob().execute_complete(context, event)["state"] == "succeeded"

    crash = ["python3", "-c", "import sys; print('diverged at step 9', flush=True); sys.exit(2)"]
    failing = ctx("manual__crash")
    op = trainjob(command=crash, num_nodes=1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(failing)
    event = run_trigger(deferred.value.trigger)
    assert event["status"] == "failed" and "jobset failed" in event["message"], event
    with pytest.raises(KubeflowOperatorError, match="diverged at step 9"):
        op.execute_complete(failing, event)


def test_on_kill_deletes_the_trainjob_and_its_nodes(namespace: str) -> None:  # noqa: F811
    op = trainjob(command=["python3", "-c", "import time; time.sleep(60)"], num_nodes=1)
    with pytest.raises(TaskDeferred):
        op.execute(ctx())
    op.on_kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (objects("TrainJob", namespace) or objects("Pod", namespace)):
        time.sleep(0.5)
    assert objects("TrainJob", namespace) == [] and objects("Pod", namespace) == []


def test_bad_input_is_refused_before_anything_is_created(namespace: str) -> None:  # noqa: F811
    cases: list[tuple[dict[str, Any], str]] = [
        ({"runtime": "no-such-runtime"}, "no-such-runtime"),
        ({"num_nodes": 0}, "num_nodes"),
        ({"gpus": 1}, "no GPUs"),
        ({"env": {"PET_NNODES": "4"}}, "reserved envs"),
        ({"image": "Not An Image"}, "image"),
        ({"runtime_kind": "Deployment"}, "runtimeRef.kind"),
    ]
    for kwargs, message in cases:
        with pytest.raises((ValueError, KubeflowOperatorError), match=message):
            trainjob(deferrable=False, **kwargs).execute(ctx())
    assert objects("TrainJob", namespace) == [] and objects("Pod", namespace) == []


def test_sensor_waits_for_a_trainjob_started_elsewhere(namespace: str) -> None:  # noqa: F811
    from kubeflow_bridge.sensors.training import TrainJobSensor

    submitted = trainjob(
        wait_for_completion=False, num_nodes=1, command=["python3", "-c", "print(1)"]
    ).execute(ctx())
    with pytest.raises(TaskDeferred) as deferred:
        TrainJobSensor(task_id="s", name=submitted["name"], timeout=60).execute(ctx())
    assert run_trigger(deferred.value.trigger)["status"] == "succeeded"


def test_training_job_operator_runs_the_kind_its_manifest_names(
    namespace: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The retraining DAG's train task: one operator, the job's kind chosen by the rendered manifest.
    from kubeflow_bridge.operators.training import TrainingJobOperator
    from kubeflow_bridge.resources.training import PyTorchJobSpec
    from kubeflow_bridge.resources.trainjob import TrainJobSpec

    hello = ["python3", "-c", "import os; print('hello from', os.environ.get('RANK'), flush=True)"]
    v2 = TrainJobSpec(name="", command=hello, num_nodes=1).to_dict()
    v1 = PyTorchJobSpec(name="", image="kubeflow-bridge/trainer:latest", command=hello).to_dict()
    context = ctx()
    op = TrainingJobOperator(task_id="train", job=v2, poll_interval=1, timeout=120)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.trigger.kind == "TrainJob"
    _, kwargs = deferred.value.trigger.serialize()
    event = run_trigger(KubeflowObjectTrigger(**json.loads(json.dumps(kwargs))))
    fresh = TrainingJobOperator(task_id="train", job=v2, poll_interval=1, timeout=120)  # as after deferral
    result = fresh.execute_complete(context, event)
    assert (result["kind"], result["state"]) == ("TrainJob", "succeeded")
    pushed = context["ti"].xcoms
    assert pushed["kubeflow_resource"]["kind"] == "TrainJob"
    assert "/trainjobs/" in pushed["_link_TrainJobLink"] and "_link_PyTorchJobLink" not in pushed

    result = TrainingJobOperator(
        task_id="train_v1", job=v1, deferrable=False, poll_interval=1, timeout=120
    ).execute(ctx("manual__v1"))
    assert (result["kind"], result["state"]) == ("PyTorchJob", "succeeded")
    assert len(objects("TrainJob", namespace)) == 1 and len(objects("PyTorchJob", namespace)) == 1

    # A TFJob (the generic v1 path): TF_CONFIG from the operator, the Chief's log in the task log.
    script = "import json, os; t = json.loads(os.environ['TF_CONFIG'])['task']; print('task', t['type'], t['index'])"
    replica = {"template": {"spec": {"containers": [{"name": "tensorflow", "image": "python:3.11", "command": ["python3", "-c", script]}]}}}  # fmt: skip
    tf = {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {"tfReplicaSpecs": {"Chief": replica, "Worker": {**replica, "replicas": 2}}}}  # fmt: skip
    result = TrainingJobOperator(
        task_id="train_tf", job=tf, deferrable=False, poll_interval=1, timeout=120
    ).execute(ctx("manual__tf"))
    assert (result["kind"], result["state"], result["reason"]) == ("TFJob", "succeeded", "TFJobSucceeded")
    assert result["replica_statuses"]["Chief"]["succeeded"] == 1  # the Chief decides
    assert "task chief 0" in capsys.readouterr().out

    # An MPIJob: the launcher's mpirun runs its ranks on the workers; its log is the task's.
    mpirun = (
        'mpirun --allow-run-as-root --bind-to none --mca plm_rsh_agent "$OMPI_MCA_plm_rsh_agent" '
        "--hostfile \"$OMPI_MCA_orte_default_hostfile\" -np 2 sh -c 'echo rank $OMPI_COMM_WORLD_RANK'"
    )
    image = "kubeflow-bridge/trainer:latest"
    mpi = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "MPIJob",
        "spec": {
            "runPolicy": {"cleanPodPolicy": "Running"},
            "mpiReplicaSpecs": {
                "Launcher": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "l", "image": image, "command": ["sh", "-c", mpirun]}]
                        }
                    }
                },
                "Worker": {
                    "replicas": 2,
                    "template": {"spec": {"containers": [{"name": "w", "image": image}]}},
                },
            },
        },
    }
    result = TrainingJobOperator(
        task_id="train_mpi", job=mpi, deferrable=False, poll_interval=1, timeout=120
    ).execute(ctx("manual__mpi"))
    assert (result["kind"], result["state"], result["reason"]) == ("MPIJob", "succeeded", "MPIJobSucceeded")
    assert result["replica_statuses"]["Launcher"]["succeeded"] == 1  # the launcher decides
    out = capsys.readouterr().out
    assert "rank 0" in out and "rank 1" in out


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("not a manifest", "job must be a TrainJob"),
        ({"apiVersion": "kubeflow.org/v1", "kind": "PaddleJob", "spec": {}}, "not 'PaddleJob'"),
        # mpi-operator's v2beta1 MPIJob is not the Training Operator's
        (
            {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "spec": {}},
            "has apiVersion 'kubeflow.org/v1'",
        ),
        (
            {"apiVersion": "kubeflow.org/v1", "kind": "MPIJob", "spec": {"mpiReplicaSpecs": {"Worker": {}}}},
            "needs a Launcher",
        ),
        (
            {"apiVersion": "kubeflow.org/v1", "kind": "XGBoostJob", "spec": {"xgbReplicaSpecs": {}}},
            "needs a Master",
        ),
        (
            {
                "apiVersion": "kubeflow.org/v1",
                "kind": "TFJob",
                "spec": {
                    "tfReplicaSpecs": {
                        "PS": {
                            "template": {
                                "spec": {"containers": [{"name": "tensorflow", "image": "python:3.11"}]}
                            }
                        }
                    }
                },
            },
            "needs a Chief or Master or Worker",
        ),
        ({"apiVersion": "kubeflow.org/v1", "kind": "TrainJob", "spec": {}}, "trainer.kubeflow.org/v1alpha1"),
        (
            {
                "apiVersion": "trainer.kubeflow.org/v1alpha1",
                "kind": "TrainJob",
                "spec": {"runtimeRef": {"name": "nope"}},
            },
            "'nope' not found",
        ),
    ],
)
def test_training_job_operator_refuses_bad_manifests_before_creating(
    namespace: str,  # noqa: F811
    job: Any,
    message: str,
) -> None:
    from kubeflow_bridge.operators.training import TrainingJobOperator

    with pytest.raises(ValueError, match=message):
        TrainingJobOperator(task_id="train", job=job, deferrable=False).execute(ctx())
    assert objects("TrainJob", namespace) == [] and objects("Pod", namespace) == []
