"""PyTorchJob (kubeflow.org/v1) builder and validator.

The validator enforces the training operator's webhook rules (they are not in the CRD) and the
structural types of the fields the bridge emits (a subset of the CRD's openAPIV3Schema, encoded here).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeflow_bridge.resources._checks import (
    Causes,
    check_container,
    check_metadata_maps,
    check_object_header,
    expect,
    expect_enum,
    expect_min,
    is_placeholder,
)
from kubeflow_bridge.resources.errors import FieldCause, raise_if_any
from kubeflow_bridge.resources.names import object_metadata

API_VERSION = "kubeflow.org/v1"
KIND = "PyTorchJob"
#: The training operator only configures (ports, env) the container with this name.
CONTAINER_NAME = "pytorch"
REPLICA_TYPES = ("Master", "Worker")
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
CLEAN_POD_POLICIES = ("All", "Running", "None")
#: Controllers allowed in runPolicy.managedBy (the operator itself, or Kueue's MultiKueue).
MANAGED_BY_VALUES = ("kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue")
#: Label the operator puts on replica pods; Katib uses it to find the primary pod.
JOB_ROLE_LABEL = "training.kubeflow.org/job-role"


@dataclass(kw_only=True)
class RunPolicy:
    """``spec.runPolicy``: what happens to pods and retries.

    Args:
        clean_pod_policy: ``All``, ``Running`` or ``None`` (the operator's default).
        backoff_limit: Retries before the job is marked failed.
        active_deadline_seconds: Wall-clock limit of the job.
        ttl_seconds_after_finished: Delete the job this long after it finished.
        suspend: Create the job suspended.
    """

    clean_pod_policy: str | None = None
    backoff_limit: int | None = None
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    suspend: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.clean_pod_policy is not None:
            out["cleanPodPolicy"] = self.clean_pod_policy
        if self.backoff_limit is not None:
            out["backoffLimit"] = self.backoff_limit
        if self.active_deadline_seconds is not None:
            out["activeDeadlineSeconds"] = self.active_deadline_seconds
        if self.ttl_seconds_after_finished is not None:
            out["ttlSecondsAfterFinished"] = self.ttl_seconds_after_finished
        if self.suspend is not None:
            out["suspend"] = self.suspend
        return out


def env_list(env: dict[str, Any] | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Turn ``{"NAME": "value"}`` into a container ``env`` list (lists pass through, copied).

    A mapping value may be a ``valueFrom`` source instead of a value, so a secret stays in its Secret:
    ``{"TOKEN": {"secretKeyRef": {"name": "s3", "key": "token"}}}``.
    """
    if env is None:
        return []
    if not isinstance(env, dict):
        return copy.deepcopy(list(env))
    out: list[dict[str, Any]] = []
    for name, value in env.items():
        if value is None:
            raise ValueError(f"env[{name!r}] is None: give it a string value, or leave the variable out")
        if isinstance(value, dict):
            out.append({"name": str(name), "valueFrom": copy.deepcopy(value)})
        else:
            out.append({"name": str(name), "value": str(value)})
    return out


def resource_requirements(
    *,
    cpu: str | None = None,
    memory: str | None = None,
    gpu: int | None = None,
    limits: dict[str, Any] | None = None,
    requests: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Container ``resources``: requests=limits for cpu/memory, ``nvidia.com/gpu`` as a limit.

    Args:
        cpu: CPU quantity (e.g. ``"2"``, ``"500m"``) requested and limited.
        memory: Memory quantity (e.g. ``"4Gi"``) requested and limited.
        gpu: Number of NVIDIA GPUs (extended resources are set as limits).
        limits: Extra limits merged last.
        requests: Extra requests merged last.
    """
    lim: dict[str, Any] = {}
    req: dict[str, Any] = {}
    if cpu is not None:
        lim["cpu"] = req["cpu"] = str(cpu)
    if memory is not None:
        lim["memory"] = req["memory"] = str(memory)
    if gpu:
        lim["nvidia.com/gpu"] = str(gpu)
    lim.update(limits or {})
    req.update(requests or {})
    out: dict[str, Any] = {}
    if lim:
        out["limits"] = lim
    if req:
        out["requests"] = req
    return out


@dataclass(kw_only=True)
class PyTorchJobSpec:
    """A PyTorchJob: one Master and ``workers`` Workers running the same container.

    Args:
        name: Object name (DNS-1035; keep it <= ~50 so ``<name>-worker-N`` pod names fit).
        image: Container image.
        namespace: Namespace, if set in the manifest.
        command: Container command.
        args: Container args.
        env: Environment, a mapping or a list of ``{name, value|valueFrom}``.
        env_from: Container ``envFrom`` (e.g. ``[{"secretRef": {"name": "s3-credentials"}}]``).
        resources: Container ``resources`` (see :func:`resource_requirements`).
        workers: Number of Worker replicas; 0 emits no Worker replica spec at all (the webhook rejects
            ``replicas: 0``).
        nproc_per_node: ``spec.nprocPerNode`` (``"auto"``, ``"cpu"``, ``"gpu"`` or a number).
        restart_policy: Replica restart policy (``OnFailure`` is the operator's default).
        run_policy: ``spec.runPolicy``.
        labels: Object labels (also put on the pod templates).
        annotations: Object annotations.
        pod_labels: Extra labels only for the pod templates.
        image_pull_policy: Container imagePullPolicy.
        working_dir: Container workingDir.
        service_account_name: Pod serviceAccountName.
        volumes: Pod volumes.
        volume_mounts: Container volumeMounts.
    """

    name: str
    image: str
    namespace: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] | list[dict[str, Any]] | None = None
    env_from: list[dict[str, Any]] | None = None
    resources: dict[str, Any] | None = None
    workers: int = 0
    nproc_per_node: str | int | None = None
    restart_policy: str = "OnFailure"
    run_policy: RunPolicy | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pod_labels: dict[str, str] = field(default_factory=dict)
    image_pull_policy: str | None = None
    working_dir: str | None = None
    service_account_name: str | None = None
    volumes: list[dict[str, Any]] | None = None
    volume_mounts: list[dict[str, Any]] | None = None

    def container(self) -> dict[str, Any]:
        """The ``pytorch`` container of every replica."""
        container: dict[str, Any] = {"name": CONTAINER_NAME, "image": self.image}
        if self.image_pull_policy:
            container["imagePullPolicy"] = self.image_pull_policy
        if self.command:
            container["command"] = list(self.command)
        if self.args:
            container["args"] = list(self.args)
        env = env_list(self.env)
        if env:
            container["env"] = env
        if self.env_from:
            container["envFrom"] = copy.deepcopy(self.env_from)
        if self.resources:
            container["resources"] = copy.deepcopy(self.resources)
        if self.working_dir:
            container["workingDir"] = self.working_dir
        if self.volume_mounts:
            container["volumeMounts"] = copy.deepcopy(self.volume_mounts)
        return container

    def replica(self, replicas: int) -> dict[str, Any]:
        pod_spec: dict[str, Any] = {"containers": [self.container()]}
        if self.service_account_name:
            pod_spec["serviceAccountName"] = self.service_account_name
        if self.volumes:
            pod_spec["volumes"] = copy.deepcopy(self.volumes)
        template: dict[str, Any] = {"spec": pod_spec}
        pod_labels = {**self.labels, **self.pod_labels}
        if pod_labels:
            template["metadata"] = {"labels": pod_labels}
        return {"replicas": replicas, "restartPolicy": self.restart_policy, "template": template}

    def spec_dict(self) -> dict[str, Any]:
        """``spec`` alone (what a Katib trialSpec embeds)."""
        replica_specs: Any = {"Master": self.replica(1)}
        if self.workers:
            replica_specs["Worker"] = self.replica(self.workers)
        spec: dict[str, Any] = {"pytorchReplicaSpecs": replica_specs}
        if self.nproc_per_node is not None:
            spec["nprocPerNode"] = str(self.nproc_per_node)
        # Always present: the kubeflow-training SDK's model requires it and sends ``{}`` by default.
        spec["runPolicy"] = self.run_policy.to_dict() if self.run_policy else {}
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The PyTorchJob manifest."""
        metadata = object_metadata(self.name, self.namespace, self.labels, self.annotations)
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": self.spec_dict()}


def build_pytorchjob(**kwargs: Any) -> dict[str, Any]:
    """Build and validate a PyTorchJob manifest; keyword arguments as :class:`PyTorchJobSpec`."""
    manifest = PyTorchJobSpec(**kwargs).to_dict()
    validate_pytorchjob(manifest)
    return manifest


def validate_pytorchjob(obj: dict[str, Any]) -> None:
    """Check a PyTorchJob as the training operator's webhook and CRD schema would.

    Raises:
        ValidationError: listing every problem found, each saying what to fix.
    """
    validate_v1_job(obj, KIND, check_pytorchjob_spec)


def validate_v1_job(obj: Any, kind: str, check_spec: Callable[[Causes, str, dict[str, Any]], None]) -> None:
    """A v1 job's header, then ``check_spec(causes, "spec", spec)``; raises naming every problem."""
    causes: Causes = []
    if not isinstance(obj, dict):
        raise_if_any(kind, "", [FieldCause("", f"a {kind} must be an object")])
        return
    name = check_object_header(causes, obj, kind=kind, api_version=API_VERSION)
    spec: Any = obj.get("spec")
    if expect(causes, "spec", spec, dict, required=True):
        check_spec(causes, "spec", spec)
    raise_if_any(kind, name, causes)


def check_pytorchjob_spec(causes: Causes, path: str, spec: dict[str, Any]) -> None:
    """Check a PyTorchJob ``spec`` (also used for a Katib trialSpec, which may hold placeholders)."""
    replica_specs: Any = spec.get("pytorchReplicaSpecs")
    rpath = f"{path}.pytorchReplicaSpecs"
    if expect(causes, rpath, replica_specs, dict, required=True):
        if not replica_specs:
            causes.append(FieldCause(rpath, "must contain a Master (and optionally a Worker) replica spec"))
        for rtype, replica in replica_specs.items():
            if rtype not in REPLICA_TYPES:
                causes.append(
                    FieldCause(
                        f"{rpath}.{rtype}", f"replica type {rtype!r} is not supported: use Master or Worker"
                    )
                )
                continue
            _check_replica(causes, f"{rpath}.{rtype}", rtype, replica)
    nproc = spec.get("nprocPerNode")
    if nproc is not None and not isinstance(nproc, str):
        causes.append(
            FieldCause(f"{path}.nprocPerNode", f"must be a string like 'auto' or '2', not {nproc!r}")
        )
    check_run_policy(causes, f"{path}.runPolicy", spec.get("runPolicy"))
    elastic: Any = spec.get("elasticPolicy")
    if expect(causes, f"{path}.elasticPolicy", elastic, dict):
        if not (isinstance(replica_specs, dict) and "Worker" in replica_specs):
            causes.append(
                FieldCause(f"{rpath}.Worker", "is required when elasticPolicy is set", "FieldValueRequired")
            )
        if elastic.get("nProcPerNode") is not None and nproc is not None:
            causes.append(
                FieldCause(
                    f"{path}.elasticPolicy.nProcPerNode",
                    "must not be used with spec.nprocPerNode (it is deprecated): keep only nprocPerNode",
                    "FieldValueForbidden",
                )
            )
        for key in ("minReplicas", "maxReplicas", "maxRestarts", "nProcPerNode", "rdzvPort"):
            expect_min(causes, f"{path}.elasticPolicy.{key}", elastic.get(key), 0)


def _check_replica(causes: Causes, path: str, rtype: str, replica: Any) -> None:
    if not expect(causes, path, replica, dict):
        return
    replicas: Any = replica.get("replicas")
    if is_placeholder(replicas):
        pass
    elif rtype == "Master" and replicas is None:
        causes.append(
            FieldCause(f"{path}.replicas", "must be 1: set replicas: 1 on the Master", "FieldValueRequired")
        )
    elif expect(causes, f"{path}.replicas", replicas, int):
        if rtype == "Master" and replicas != 1:
            causes.append(
                FieldCause(f"{path}.replicas", f"Master must have exactly 1 replica (got {replicas})")
            )
        if rtype == "Worker" and replicas < 1:
            causes.append(
                FieldCause(
                    f"{path}.replicas", f"Worker replicas must be >= 1 (got {replicas}); omit Worker for none"
                )
            )
    check_replica_template(causes, path, rtype, replica, CONTAINER_NAME)


def check_run_policy(causes: Causes, rp: str, run_policy: Any) -> None:
    """A v1 job's ``runPolicy`` (shared by every v1 kind)."""
    if expect(causes, rp, run_policy, dict):
        expect_enum(causes, f"{rp}.cleanPodPolicy", run_policy.get("cleanPodPolicy"), CLEAN_POD_POLICIES)
        expect_min(causes, f"{rp}.backoffLimit", run_policy.get("backoffLimit"), 0)
        expect_min(causes, f"{rp}.activeDeadlineSeconds", run_policy.get("activeDeadlineSeconds"), 1)
        expect_min(causes, f"{rp}.ttlSecondsAfterFinished", run_policy.get("ttlSecondsAfterFinished"), 0)
        expect(causes, f"{rp}.suspend", run_policy.get("suspend"), bool)
        expect_enum(causes, f"{rp}.managedBy", run_policy.get("managedBy"), MANAGED_BY_VALUES)
        expect(causes, f"{rp}.schedulingPolicy", run_policy.get("schedulingPolicy"), dict)


def check_replica_template(
    causes: Causes, path: str, rtype: str, replica: dict[str, Any], container_name: str | None
) -> None:
    """A v1 replica spec's restart policy and pod template: containers with images, one of them named
    ``container_name`` (the one the operator configures; None: any name)."""
    expect_enum(causes, f"{path}.restartPolicy", replica.get("restartPolicy"), RESTART_POLICIES)
    template: Any = replica.get("template")
    if not expect(causes, f"{path}.template", template, dict, required=True):
        return
    check_metadata_maps(causes, f"{path}.template.metadata", template.get("metadata"))
    pod_spec: Any = template.get("spec")
    if not expect(causes, f"{path}.template.spec", pod_spec, dict, required=True):
        return
    cpath = f"{path}.template.spec.containers"
    containers: Any = pod_spec.get("containers")
    if not expect(causes, cpath, containers, list, required=True):
        return
    if not containers:
        wanted = f"the {container_name!r} container" if container_name else "one container"
        causes.append(FieldCause(cpath, f"must list at least {wanted}", "FieldValueRequired"))
        return
    for i, container in enumerate(containers):
        check_container(causes, f"{cpath}[{i}]", container)
        if isinstance(container, dict) and not container.get("image"):
            causes.append(
                FieldCause(
                    f"{cpath}[{i}].image", "is required: the container image to run", "FieldValueRequired"
                )
            )
    if container_name and not any(
        isinstance(c, dict) and c.get("name") == container_name for c in containers
    ):
        causes.append(
            FieldCause(
                cpath,
                f"{rtype} needs a container named {container_name!r} (the operator configures only that one)",
            )
        )
