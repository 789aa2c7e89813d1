"""The resource types the local API server serves (what discovery lists and the store keys by)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceType:
    """One served resource.

    Args:
        group: API group ("" for the core group).
        version: The one served version.
        plural: The URL name (``pytorchjobs``).
        kind: The object kind (``PyTorchJob``).
        namespaced: Whether objects live in a namespace.
        short_names: kubectl short names.
        has_status: Whether a ``/status`` subresource exists (status is then ignored on main-resource writes).
        categories: kubectl categories (``all``).
        verbs: What discovery lists and the server allows; empty: every verb of a stored resource.
        scale: ``(specReplicasPath, statusReplicasPath, labelSelectorPath)`` of a ``/scale`` subresource.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    has_status: bool = True
    categories: tuple[str, ...] = ()
    singular: str = field(default="")
    verbs: tuple[str, ...] = ()
    scale: tuple[str, str, str] | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Store key of the type: ``group/plural`` (one served version per resource)."""
        return f"{self.group}/{self.plural}"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


NAMESPACE = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",))
POD = ResourceType("", "v1", "pods", "Pod", short_names=("po",), categories=("all",))
EVENT = ResourceType("", "v1", "events", "Event", short_names=("ev",), has_status=False)
CONFIGMAP = ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",), has_status=False)
SECRET = ResourceType("", "v1", "secrets", "Secret", has_status=False)
SERVICEACCOUNT = ResourceType(
    "", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",), has_status=False
)
JOB = ResourceType("batch", "v1", "jobs", "Job", categories=("all",))
PYTORCHJOB = ResourceType(
    "kubeflow.org",
    "v1",
    "pytorchjobs",
    "PyTorchJob",
    categories=("all", "kubeflow"),
    # as the v1.9 CRD declares it
    scale=(
        ".spec.pytorchReplicaSpecs.Worker.replicas",
        ".status.replicaStatuses.Worker.active",
        ".status.replicaStatuses.Worker.selector",
    ),
)
TFJOB = ResourceType(
    "kubeflow.org",
    "v1",
    "tfjobs",
    "TFJob",
    categories=("all", "kubeflow"),
    scale=(
        ".spec.tfReplicaSpecs.Worker.replicas",
        ".status.replicaStatuses.Worker.active",
        ".status.replicaStatuses.Worker.selector",
    ),
)
XGBOOSTJOB = ResourceType("kubeflow.org", "v1", "xgboostjobs", "XGBoostJob", categories=("all", "kubeflow"))
JAXJOB = ResourceType("kubeflow.org", "v1", "jaxjobs", "JAXJob", categories=("all", "kubeflow"))
MPIJOB = ResourceType("kubeflow.org", "v1", "mpijobs", "MPIJob", categories=("all", "kubeflow"))
# Kubeflow Trainer v2.3 (its CRDs declare no short names or categories)
TRAINJOB = ResourceType("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
TRAININGRUNTIME = ResourceType(
    "trainer.kubeflow.org", "v1alpha1", "trainingruntimes", "TrainingRuntime", has_status=False
)
CLUSTERTRAININGRUNTIME = ResourceType(
    "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes", "ClusterTrainingRuntime",
    namespaced=False, has_status=False,
)  # fmt: skip
EXPERIMENT = ResourceType(
    "kubeflow.org", "v1beta1", "experiments", "Experiment", categories=("all", "kubeflow")
)
TRIAL = ResourceType("kubeflow.org", "v1beta1", "trials", "Trial", categories=("all", "kubeflow"))
SUGGESTION = ResourceType(
    "kubeflow.org", "v1beta1", "suggestions", "Suggestion", categories=("all", "kubeflow")
)
INFERENCESERVICE = ResourceType(
    "serving.kserve.io",
    "v1beta1",
    "inferenceservices",
    "InferenceService",
    short_names=("isvc",),
    categories=("all", "kubeflow"),
)

SELF_SUBJECT_ACCESS_REVIEW = ResourceType(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview",
    namespaced=False, has_status=False, verbs=("create",),
)  # fmt: skip
SELF_SUBJECT_RULES_REVIEW = ResourceType(
    "authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview",
    namespaced=False, has_status=False, verbs=("create",),
)  # fmt: skip
SELF_SUBJECT_REVIEW = ResourceType(
    "authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview",
    namespaced=False, has_status=False, verbs=("create",),
)  # fmt: skip
REVIEW_TYPES = (
    SELF_SUBJECT_ACCESS_REVIEW,
    SELF_SUBJECT_RULES_REVIEW,
    SELF_SUBJECT_REVIEW,
)  # answered, never stored

ALL_TYPES: tuple[ResourceType, ...] = (
    NAMESPACE,
    POD,
    EVENT,
    CONFIGMAP,
    SECRET,
    SERVICEACCOUNT,
    JOB,
    PYTORCHJOB,
    TFJOB,
    XGBOOSTJOB,
    JAXJOB,
    MPIJOB,
    TRAINJOB,
    TRAININGRUNTIME,
    CLUSTERTRAININGRUNTIME,
    EXPERIMENT,
    TRIAL,
    SUGGESTION,
    INFERENCESERVICE,
    *REVIEW_TYPES,
)


class KindRegistry:
    """Looks resource types up by URL parts or by apiVersion/kind."""

    def __init__(self, types: tuple[ResourceType, ...] = ALL_TYPES) -> None:
        self.types = list(types)
        self._by_url = {(t.group, t.version, t.plural): t for t in self.types}

    def by_url(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_url.get((group, version, plural))

    def groups(self) -> dict[str, list[str]]:
        """``{group: [versions]}`` for the named groups (not the core group)."""
        out: dict[str, list[str]] = {}
        for t in self.types:
            if t.group and t.version not in out.setdefault(t.group, []):
                out[t.group].append(t.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types if t.group == group and t.version == version]
