"""Deterministic resource names and identity labels for everything the bridge creates.

A task (Airflow: dag_id, task_id, run_id, map_index; KFP: pipeline, run, task) always gets the same
object name, so a retry finds what the previous try created instead of creating a duplicate. The
``kubeflow-bridge.io/identity`` label carries a hash of the full identity, so a name collision with an
object somebody else created is detected (reattach only when the label matches).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kubeflow-bridge"
IDENTITY_LABEL = "kubeflow-bridge.io/identity"
DAG_ID_ANNOTATION = "kubeflow-bridge.io/dag-id"
TASK_ID_ANNOTATION = "kubeflow-bridge.io/task-id"
RUN_ID_ANNOTATION = "kubeflow-bridge.io/run-id"
MAP_INDEX_ANNOTATION = "kubeflow-bridge.io/map-index"
PIPELINE_ANNOTATION = "kubeflow-bridge.io/pipeline"
PIPELINE_RUN_ANNOTATION = "kubeflow-bridge.io/pipeline-run"
PIPELINE_TASK_ANNOTATION = "kubeflow-bridge.io/pipeline-task"

#: Kubernetes' limit for a DNS-1035 label (most object names).
DNS1035_MAX_LENGTH = 63
#: Length of the hex hash in the identity label and at the end of generated names.
HASH_LENGTH = 12
#: Shortest ``max_length`` a generated name may be asked for: one letter, a dash and the hash.
MIN_NAME_LENGTH = HASH_LENGTH + 2

_DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def dns1035_problem(name: object, max_length: int = DNS1035_MAX_LENGTH) -> str | None:
    """Say what is wrong with ``name`` as a DNS-1035 label, or return None when it is valid.

    Args:
        name: The candidate name.
        max_length: The longest name allowed (63 for most objects; less where controllers append suffixes).
    """
    if not isinstance(name, str) or not name:
        return "a name is required: lowercase letters, digits and '-', starting with a letter"
    if len(name) > max_length:
        return f"must be no more than {max_length} characters (got {len(name)}); use a shorter name"
    if not _DNS1035_RE.match(name):
        return (
            f"{name!r} is not a valid DNS-1035 label: use lowercase letters, digits and '-', "
            "start with a letter and end with a letter or digit (e.g. 'my-name-1')"
        )
    return None


def is_dns1035_label(name: object, max_length: int = DNS1035_MAX_LENGTH) -> bool:
    """True when ``name`` is a valid DNS-1035 label no longer than ``max_length``."""
    return dns1035_problem(name, max_length) is None


def sanitize(text: str) -> str:
    """Turn free text into DNS-1035 characters: lowercase, runs of other characters become one '-'."""
    lowered = re.sub(r"[^a-z0-9]+", "-", text.lower())
    return lowered.strip("-")


def short_hash(*parts: object, length: int = HASH_LENGTH) -> str:
    """The first ``length`` hex digits of the sha256 of ``parts`` (JSON-encoded, so types matter)."""
    digest = hashlib.sha256(json.dumps(list(parts), default=str).encode("utf-8")).hexdigest()
    return digest[:length]


def make_name(prefix: str, hash_hex: str, *, max_length: int = DNS1035_MAX_LENGTH) -> str:
    """Build ``<readable prefix>-<hash>`` as a DNS-1035 label of at most ``max_length`` characters.

    The prefix is sanitized and cut to fit; the hash is kept whole, because it is what makes the name
    unique. A prefix that is empty or does not start with a letter gets a leading ``kb-``.

    Args:
        prefix: Readable text (e.g. ``"<dag>-<task>"``).
        hash_hex: Lowercase hex digits that identify the object.
        max_length: The longest name allowed.
    """
    if max_length < len(hash_hex) + 2:
        raise ValueError(f"max_length={max_length} is too short: names need at least {len(hash_hex) + 2}")
    readable = sanitize(prefix)
    if not readable or not readable[0].isalpha():
        readable = f"kb-{readable}".rstrip("-")
    room = max_length - len(hash_hex) - 1
    readable = readable[:room].rstrip("-")
    return f"{readable}-{hash_hex}"


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who created an object: an Airflow task instance or a KFP pipeline task.

    Build one with :meth:`airflow` or :meth:`kfp` rather than directly.

    Args:
        flavour: ``"airflow"`` or ``"kfp"``.
        dag_id: Airflow DAG id.
        task_id: Airflow task id.
        run_id: Airflow DAG run id.
        map_index: Airflow map index (-1 when the task is not mapped).
        pipeline: KFP pipeline name.
        pipeline_run: KFP run id (or name).
        pipeline_task: KFP task name.
    """

    flavour: str
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int = -1
    pipeline: str | None = None
    pipeline_run: str | None = None
    pipeline_task: str | None = None

    def __post_init__(self) -> None:
        if self.flavour == "airflow":
            missing = [k for k in ("dag_id", "task_id", "run_id") if not getattr(self, k)]
        elif self.flavour == "kfp":
            missing = [k for k in ("pipeline", "pipeline_run", "pipeline_task") if not getattr(self, k)]
        else:
            raise ValueError(f"identity flavour must be 'airflow' or 'kfp', not {self.flavour!r}")
        if missing:
            raise ValueError(f"{self.flavour} identity needs non-empty {', '.join(missing)}")

    @classmethod
    def airflow(cls, dag_id: str, task_id: str, run_id: str, map_index: int | None = -1) -> Identity:
        """The identity of an Airflow task instance."""
        return cls(
            flavour="airflow",
            dag_id=dag_id,
            task_id=task_id,
            run_id=run_id,
            map_index=-1 if map_index is None else int(map_index),
        )

    @classmethod
    def kfp(cls, pipeline: str, run: str, task: str) -> Identity:
        """The identity of a KFP pipeline task."""
        return cls(flavour="kfp", pipeline=pipeline, pipeline_run=run, pipeline_task=task)

    @property
    def parts(self) -> tuple[str | int, ...]:
        """The identity tuple that is hashed."""
        if self.flavour == "airflow":
            return ("airflow", str(self.dag_id), str(self.task_id), str(self.run_id), self.map_index)
        return ("kfp", str(self.pipeline), str(self.pipeline_run), str(self.pipeline_task))

    @property
    def hash(self) -> str:
        """12 hex digits of the sha256 of the identity tuple (the identity label's value)."""
        return short_hash(*self.parts)

    def readable(self) -> str:
        """A readable name prefix: dag and task (or pipeline and task), plus the map index if mapped."""
        if self.flavour == "airflow":
            text = f"{self.dag_id}-{self.task_id}"
            if self.map_index >= 0:
                text += f"-{self.map_index}"
            return text
        return f"{self.pipeline}-{self.pipeline_task}"

    def resource_name(self, *, max_length: int = DNS1035_MAX_LENGTH, prefix: str | None = None) -> str:
        """A deterministic DNS-1035 name for the object this identity creates.

        Args:
            max_length: Ask for less than 63 for objects whose children append suffixes: Katib names
                trials ``<experiment>-<8 random chars>`` and their pods append more, and the training
                operator names pods ``<job>-master-0`` / ``<job>-worker-N``; 40 leaves room for those.
            prefix: Readable text to use instead of the dag/task (or pipeline/task) names.
        """
        return make_name(prefix if prefix is not None else self.readable(), self.hash, max_length=max_length)

    def labels(self) -> dict[str, str]:
        """See :func:`identity_labels`."""
        return identity_labels(self)

    def annotations(self) -> dict[str, str]:
        """See :func:`identity_annotations`."""
        return identity_annotations(self)


def resource_name(
    dag_id: str,
    task_id: str,
    run_id: str,
    map_index: int | None = -1,
    *,
    max_length: int = DNS1035_MAX_LENGTH,
) -> str:
    """Deterministic DNS-1035 name for an Airflow task instance's object (see :meth:`Identity.resource_name`)."""
    return Identity.airflow(dag_id, task_id, run_id, map_index).resource_name(max_length=max_length)


def kfp_resource_name(pipeline: str, run: str, task: str, *, max_length: int = DNS1035_MAX_LENGTH) -> str:
    """Deterministic DNS-1035 name for a KFP task's object (see :meth:`Identity.resource_name`)."""
    return Identity.kfp(pipeline, run, task).resource_name(max_length=max_length)


def object_metadata(
    name: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A manifest's ``metadata``: the name, and the namespace, labels and annotations that are set."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def identity_labels(identity: Identity) -> dict[str, str]:
    """The labels every object the bridge creates carries: managed-by and the identity hash."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, IDENTITY_LABEL: identity.hash}


def identity_annotations(identity: Identity) -> dict[str, str]:
    """The annotations that say, readably, which task created an object."""
    if identity.flavour == "airflow":
        return {
            DAG_ID_ANNOTATION: str(identity.dag_id),
            TASK_ID_ANNOTATION: str(identity.task_id),
            RUN_ID_ANNOTATION: str(identity.run_id),
            MAP_INDEX_ANNOTATION: str(identity.map_index),
        }
    return {
        PIPELINE_ANNOTATION: str(identity.pipeline),
        PIPELINE_RUN_ANNOTATION: str(identity.pipeline_run),
        PIPELINE_TASK_ANNOTATION: str(identity.pipeline_task),
    }


def with_identity(manifest: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """Return a copy of ``manifest`` with the identity labels and annotations merged into its metadata.

    Existing labels and annotations are kept; the identity keys win.
    """
    out = copy.deepcopy(manifest)
    metadata = out.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **identity_labels(identity)}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **identity_annotations(identity)}
    return out


def identity_selector(identity: Identity) -> str:
    """A label selector for everything this identity created (``kubectl get ... -l <selector>``)."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{IDENTITY_LABEL}={identity.hash}"


def owned_by(obj: dict[str, Any], identity: Identity) -> bool:
    """True when ``obj`` carries this identity's label (the reattach-on-409 check)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(IDENTITY_LABEL) == identity.hash


@dataclass(frozen=True)
class ObjectRef:
    """A namespaced object's reference; ``str()`` is ``namespace/name`` (what operators keep as the
    external id in Airflow's task state), :meth:`parse` reads it back once."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: object) -> ObjectRef:
        """Raises:
        ValueError: ``text`` is not ``namespace/name``."""
        namespace, sep, name = str(text).partition("/")
        if not (sep and namespace and name) or "/" in name:
            raise ValueError(f"expected an object reference 'namespace/name', not {text!r}")
        return cls(namespace, name)
