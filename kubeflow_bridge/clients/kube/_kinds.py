"""Kubernetes resource kinds the bridge talks to (pure data, no client import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceKind:
    """One Kubernetes resource type, enough to build its REST paths.

    Args:
        group: API group; ``""`` for the core group (pods).
        version: API version within the group (``v1``, ``v1beta1``).
        plural: The resource's plural name as it appears in URLs.
        kind: The object's ``kind`` field.
        namespaced: Whether objects live in a namespace.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` value of objects of this kind (``group/version`` or ``v1``)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection_path(self, namespace: str | None) -> str:
        """The REST path of the collection (``/apis/g/v/namespaces/ns/plural``)."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def __str__(self) -> str:
        return f"{self.kind} ({self.api_version})"


PYTORCHJOB = ResourceKind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
TFJOB = ResourceKind("kubeflow.org", "v1", "tfjobs", "TFJob")
XGBOOSTJOB = ResourceKind("kubeflow.org", "v1", "xgboostjobs", "XGBoostJob")
JAXJOB = ResourceKind("kubeflow.org", "v1", "jaxjobs", "JAXJob")
MPIJOB = ResourceKind("kubeflow.org", "v1", "mpijobs", "MPIJob")
#: The training operator v1 kinds (replica specs, the operator's pod labels, runPolicy.suspend).
V1_JOB_KINDS = (PYTORCHJOB, TFJOB, XGBOOSTJOB, JAXJOB, MPIJOB)
TRAINJOB = ResourceKind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
TRAININGRUNTIME = ResourceKind("trainer.kubeflow.org", "v1alpha1", "trainingruntimes", "TrainingRuntime")
CLUSTERTRAININGRUNTIME = ResourceKind(
    "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes", "ClusterTrainingRuntime", namespaced=False
)
EXPERIMENT = ResourceKind("kubeflow.org", "v1beta1", "experiments", "Experiment")
TRIAL = ResourceKind("kubeflow.org", "v1beta1", "trials", "Trial")
INFERENCESERVICE = ResourceKind("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")
JOB = ResourceKind("batch", "v1", "jobs", "Job")
POD = ResourceKind("", "v1", "pods", "Pod")

ALL_KINDS: tuple[ResourceKind, ...] = (
    PYTORCHJOB, TFJOB, XGBOOSTJOB, JAXJOB, MPIJOB, TRAINJOB, TRAININGRUNTIME, CLUSTERTRAININGRUNTIME, EXPERIMENT, TRIAL, INFERENCESERVICE, JOB, POD,
)  # fmt: skip


def kind_named(name: str) -> ResourceKind:
    """Return the known kind whose ``kind`` or ``plural`` is ``name`` (case-insensitive).

    Raises:
        ValueError: If the name is not one of the kinds the bridge knows.
    """
    wanted = name.lower()
    for kind in ALL_KINDS:
        if wanted in (kind.kind.lower(), kind.plural):
            return kind
    known = ", ".join(k.kind for k in ALL_KINDS)
    raise ValueError(f"unknown resource kind {name!r}; use one of: {known}")
