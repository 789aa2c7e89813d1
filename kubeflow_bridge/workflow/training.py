"""The train step's Kubeflow job, built once for both orchestrators.

``training_api`` picks the API: ``trainjob`` (Kubeflow Trainer v2: a TrainJob on the ``torch-distributed``
runtime, whose nodes run the trainer under torchrun with the runtime's ``PET_*`` env) or ``pytorchjob``
(Training Operator v1: a PyTorchJob, Master + Workers, for clusters still on v1). Both run the same
trainer arguments on ``1 + worker_replicas`` processes, so either trains the same model.
"""

from __future__ import annotations

from typing import Any

from kubeflow_bridge.workflow.spec import (
    DEFAULTS,
    TRAIN_BACKOFF_LIMIT,
    TRAINER_IMAGE,
    TRAINING_APIS,
    storage_env,
    storage_env_from,
    train_args,
)

#: The Kubernetes kind each training API creates.
TRAINING_KINDS = {"trainjob": "TrainJob", "pytorchjob": "PyTorchJob"}
#: torchrun (the torch-distributed runtime's launcher) reads the node's rank and its peers from PET_*.
TRAINJOB_COMMAND = ["torchrun", "-m", "trainer"]


def training_api(params: dict[str, Any]) -> str:
    """The run's training API (``training_api`` param, default ``trainjob``).

    Raises:
        ValueError: Not one of :data:`TRAINING_APIS`.
    """
    api = params.get("training_api") or DEFAULTS["training_api"]
    if api not in TRAINING_APIS:
        raise ValueError(
            f"training_api must be one of {', '.join(TRAINING_APIS)}, not {api!r}: trainjob on Kubeflow "
            "Trainer v2, pytorchjob on a cluster still running the Training Operator v1"
        )
    return str(api)


def training_job(
    prefix: str,
    params: dict[str, Any],
    best_params: dict[str, Any],
    *,
    name: str = "",
    namespace: str | None = None,
    image: str = TRAINER_IMAGE,
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The final training job with the tuned parameters, as a TrainJob or a PyTorchJob.

    Args:
        prefix: The run's artifact prefix.
        params: The workflow's params (``training_api``, ``epochs``, ``seed``, ``score_mix``,
            ``worker_replicas``, ``gpus_per_replica``).
        best_params: The tuner's best hyperparameters.
        name: The job's name; validated when named. Empty: the Airflow operator names it (its
            deterministic name) and validates it then.
        namespace: The job's namespace.
        image: The trainer image.
        env: More env for every replica (the tracking env, :func:`~kubeflow_bridge.workflow.tracking.workflow_env`).
    """
    from kubeflow_bridge.resources.training import (
        PyTorchJobSpec,
        RunPolicy,
        resource_requirements,
        validate_pytorchjob,
    )
    from kubeflow_bridge.resources.trainjob import TrainJobSpec, validate_trainjob

    args = train_args(
        prefix,
        epochs=int(params["epochs"]),
        seed=int(params["seed"]),
        best_params=best_params,
        score_mix=float(params.get("score_mix", DEFAULTS["score_mix"])),
    )
    resources = resource_requirements(gpu=int(params["gpus_per_replica"])) or None
    workers = int(params["worker_replicas"])
    if training_api(params) == "trainjob":
        manifest = TrainJobSpec(
            name=name,
            namespace=namespace,
            image=image,
            command=TRAINJOB_COMMAND,
            args=args,
            env=[*storage_env(), *(env or [])],
            num_nodes=1 + workers,
            num_proc_per_node=1,  # one process a node, as a PyTorchJob replica: the same world size
            resources_per_node=resources,
        ).to_dict()
        validate = validate_trainjob
    else:
        manifest = PyTorchJobSpec(
            name=name,
            namespace=namespace,
            image=image,
            command=["python", "-m", "trainer"],
            args=args,
            resources=resources,
            workers=workers,
            env=list(env or []) or None,
            env_from=storage_env_from(),
            run_policy=RunPolicy(backoff_limit=TRAIN_BACKOFF_LIMIT),
        ).to_dict()
        validate = validate_pytorchjob
    if name:
        validate(manifest)
    return manifest
