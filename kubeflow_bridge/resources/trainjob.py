"""Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) builder and validator.

A TrainJob names a runtime (``runtimeRef``: a ClusterTrainingRuntime such as ``torch-distributed``, or
a namespaced TrainingRuntime) and overrides the trainer node's image, command, args, env, node count and
resources. The validator applies the CRD's rules (RFC 1035 name of at most 63 characters,
``numNodes >= 1``, ``numProcPerNode >= 1``, known runtime kinds) and the torch plugin's webhook rule
(the ``PET_*`` variables are the plugin's, not the user's); whether the runtime exists is the
webhook's question, asked by whoever can read the cluster (the local runtime's admission does).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kubeflow_bridge.resources._checks import (
    Causes,
    check_env,
    check_object_header,
    check_resources,
    check_string_list,
    expect,
    expect_enum,
    expect_min,
    image_problem,
)
from kubeflow_bridge.resources.errors import FieldCause, raise_if_any
from kubeflow_bridge.resources.names import object_metadata
from kubeflow_bridge.resources.training import env_list

GROUP = "trainer.kubeflow.org"
API_VERSION = f"{GROUP}/v1alpha1"
KIND = "TrainJob"
RUNTIME_KINDS = ("ClusterTrainingRuntime", "TrainingRuntime")
#: The runtime Kubeflow installs for PyTorch (torchrun with the PET_* env).
DEFAULT_RUNTIME = "torch-distributed"
#: Set by the torch plugin on the trainer node; a TrainJob may not set them (the webhook refuses).
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
MANAGED_BY_VALUES = ("trainer.kubeflow.org/trainjob-controller", "kueue.x-k8s.io/multikueue")
#: JobSet's labels on the node pods (``kubectl logs -l jobset.sigs.k8s.io/jobset-name=<trainjob>``).
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
MAX_NAME_LENGTH = 63


@dataclass(kw_only=True)
class TrainJobSpec:
    """A TrainJob on a training runtime.

    Args:
        name: Object name (RFC 1035 label, at most 63 characters).
        namespace: Namespace, if set in the manifest.
        runtime: The runtime's name (``torch-distributed`` by default).
        runtime_kind: ``ClusterTrainingRuntime`` (default) or ``TrainingRuntime`` (same namespace).
        image: The trainer node's image (the runtime's when None).
        command: The trainer's command (the runtime's when None).
        args: The trainer's args.
        env: Environment, a mapping or a list of ``{name, value|valueFrom}``.
        num_nodes: Trainer nodes (the runtime's ``mlPolicy.numNodes`` when None).
        num_proc_per_node: Processes per node (torch: GPUs or CPUs per node when None).
        resources_per_node: Container ``resources`` of each node.
        runtime_patches: ``spec.runtimePatches``: patches of the runtime's template, each keyed by its
            ``manager`` (pod labels and annotations, containers' env and volumeMounts, volumes,
            nodeSelector, tolerations, ... of a replicated job), e.g. ``[{"manager": "me", "trainingRuntimeSpec":
            {"template": {"spec": {"replicatedJobs": [{"name": "node", "template": ...}]}}}}]``.
        suspend: Create the job suspended.
        active_deadline_seconds: Wall-clock limit; the job fails with DeadlineExceeded after it.
        labels: Object labels.
        annotations: Object annotations.

    ``spec.trainer`` has no ``envFrom``: pass a Secret's keys through ``env`` as ``valueFrom`` sources.
    """

    name: str
    namespace: str | None = None
    runtime: str = DEFAULT_RUNTIME
    runtime_kind: str = "ClusterTrainingRuntime"
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, Any] | list[dict[str, Any]] | None = None
    num_nodes: int | None = None
    num_proc_per_node: int | None = None
    resources_per_node: dict[str, Any] | None = None
    runtime_patches: list[dict[str, Any]] | None = None
    suspend: bool | None = None
    active_deadline_seconds: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The TrainJob manifest."""
        trainer: dict[str, Any] = {}
        if self.image is not None:
            trainer["image"] = self.image
        if self.command is not None:
            trainer["command"] = list(self.command)
        if self.args is not None:
            trainer["args"] = list(self.args)
        env = env_list(self.env)
        if env:
            trainer["env"] = env
        if self.num_nodes is not None:
            trainer["numNodes"] = self.num_nodes
        if self.num_proc_per_node is not None:
            trainer["numProcPerNode"] = self.num_proc_per_node
        if self.resources_per_node:
            trainer["resourcesPerNode"] = copy.deepcopy(self.resources_per_node)
        spec: dict[str, Any] = {
            "runtimeRef": {"name": self.runtime, "apiGroup": GROUP, "kind": self.runtime_kind}
        }
        if trainer:
            spec["trainer"] = trainer
        if self.runtime_patches:
            spec["runtimePatches"] = copy.deepcopy(self.runtime_patches)
        if self.suspend is not None:
            spec["suspend"] = self.suspend
        if self.active_deadline_seconds is not None:
            spec["activeDeadlineSeconds"] = self.active_deadline_seconds
        metadata = object_metadata(self.name, self.namespace, self.labels, self.annotations)
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def build_trainjob(**kwargs: Any) -> dict[str, Any]:
    """Build and validate a TrainJob manifest; keyword arguments as :class:`TrainJobSpec`."""
    manifest = TrainJobSpec(**kwargs).to_dict()
    validate_trainjob(manifest)
    return manifest


def runtime_ref(obj: dict[str, Any]) -> tuple[str, str]:
    """``(kind, name)`` of the runtime a TrainJob names, with the CRD's default kind."""
    ref = (obj.get("spec") or {}).get("runtimeRef") or {}
    return str(ref.get("kind") or "ClusterTrainingRuntime"), str(ref.get("name") or "")


def validate_trainjob(obj: dict[str, Any]) -> None:
    """Check a TrainJob as Trainer v2.3's CRD schema and torch plugin would.

    Raises:
        ValidationError: listing every problem found, each saying what to fix.
    """
    causes: Causes = []
    if not isinstance(obj, dict):
        raise_if_any(KIND, "", [FieldCause("", "a TrainJob must be an object")])
        return
    name = check_object_header(
        causes, obj, kind=KIND, api_version=API_VERSION, max_name_length=MAX_NAME_LENGTH
    )
    spec: Any = obj.get("spec")
    if expect(causes, "spec", spec, dict, required=True):
        _check_spec(causes, spec)
    raise_if_any(KIND, name, causes)


def _check_spec(causes: Causes, spec: dict[str, Any]) -> None:
    ref: Any = spec.get("runtimeRef")
    if expect(causes, "spec.runtimeRef", ref, dict, required=True):
        if not ref.get("name") or not isinstance(ref.get("name"), str):
            causes.append(
                FieldCause(
                    "spec.runtimeRef.name",
                    f"is required: the training runtime to run on (e.g. {DEFAULT_RUNTIME!r})",
                    "FieldValueRequired",
                )
            )
        if ref.get("apiGroup") not in (None, GROUP):
            causes.append(FieldCause("spec.runtimeRef.apiGroup", f"must be {GROUP!r}"))
        expect_enum(causes, "spec.runtimeRef.kind", ref.get("kind"), RUNTIME_KINDS)
    trainer: Any = spec.get("trainer")
    if expect(causes, "spec.trainer", trainer, dict):
        path = "spec.trainer"
        if trainer.get("image") is not None and (problem := image_problem(trainer["image"])):
            causes.append(FieldCause(f"{path}.image", problem))
        check_string_list(causes, f"{path}.command", trainer.get("command"))
        check_string_list(causes, f"{path}.args", trainer.get("args"))
        if trainer.get("command") == []:
            causes.append(
                FieldCause(f"{path}.command", "must not be empty: leave it out to use the runtime's")
            )
        check_env(causes, f"{path}.env", trainer.get("env"))
        reserved = sorted(
            {str(e.get("name")) for e in trainer.get("env") or [] if isinstance(e, dict)} & set(RESERVED_ENV)
        )
        if reserved:
            causes.append(
                FieldCause(
                    f"{path}.env",
                    f"must not have reserved envs, invalid envs configured: {reserved}: the torch runtime "
                    "sets them; use numNodes and numProcPerNode instead",
                )
            )
        expect_min(causes, f"{path}.numNodes", trainer.get("numNodes"), 1)
        expect_min(causes, f"{path}.numProcPerNode", trainer.get("numProcPerNode"), 1)
        check_resources(causes, f"{path}.resourcesPerNode", trainer.get("resourcesPerNode"))
    patches: Any = spec.get("runtimePatches")
    if expect(causes, "spec.runtimePatches", patches, list):
        managers = []
        for i, patch in enumerate(patches):
            path = f"spec.runtimePatches[{i}]"
            if not expect(causes, path, patch, dict):
                continue
            if not isinstance(patch.get("manager"), str) or not patch["manager"]:
                causes.append(
                    FieldCause(
                        f"{path}.manager",
                        "is required: who owns this patch (e.g. your tool's name)",
                        "FieldValueRequired",
                    )
                )
            managers.append(patch.get("manager"))
            expect(causes, f"{path}.trainingRuntimeSpec", patch.get("trainingRuntimeSpec"), dict)
        if len(set(map(str, managers))) != len(managers):
            causes.append(
                FieldCause("spec.runtimePatches", "each manager may own one patch: merge its patches")
            )
    expect(causes, "spec.suspend", spec.get("suspend"), bool)
    expect_min(causes, "spec.activeDeadlineSeconds", spec.get("activeDeadlineSeconds"), 1)
    expect_enum(causes, "spec.managedBy", spec.get("managedBy"), MANAGED_BY_VALUES)
