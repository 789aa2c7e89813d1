"""The other Training Operator v1.9 jobs (kubeflow.org/v1): TFJob, XGBoostJob, JAXJob, MPIJob.

Their validators are the operator's webhooks (replica types, a container of the kind's name with an
image, the lead replica's count) plus what makes a job finishable (a TFJob needs a Chief, Master or
Worker); their defaults are the operator's (``SetDefaults_<Kind>``: one replica and the kind's restart
policy per replica, cleanPodPolicy None, the kind's port on its container; an MPIJob's Worker defaults
to 0 replicas and its containers may have any name). PyTorchJob is :mod:`.training`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeflow_bridge.resources._checks import Causes, expect, expect_enum, expect_min
from kubeflow_bridge.resources.errors import FieldCause
from kubeflow_bridge.resources.training import check_replica_template, check_run_policy, validate_v1_job

TF_SUCCESS_POLICIES = ("", "AllWorkers")


@dataclass(frozen=True)
class V1Kind:
    """What tells one v1 job kind from another.

    Attributes:
        kind: The kind.
        replica_key: Its replica specs' field (``tfReplicaSpecs``).
        replica_types: Replica types, in the order the operator creates them.
        container: The container the operator configures (env, port); None: any (MPIJob's first).
        port: That container's default port (``<kind>-port``).
        restart_policy: The default restart policy of a replica.
        leads: Replica types whose success is the job's, in preference order (the first one present).
        singletons: Replica types that must have exactly one replica.
    """

    kind: str
    replica_key: str
    replica_types: tuple[str, ...]
    container: str | None
    port: int
    restart_policy: str
    leads: tuple[str, ...]
    singletons: tuple[str, ...] = ()


TFJOB = V1Kind(
    "TFJob", "tfReplicaSpecs", ("Chief", "Master", "PS", "Worker", "Evaluator"), "tensorflow", 2222,
    "Never", ("Chief", "Master", "Worker"), ("Chief", "Master"),
)  # fmt: skip
XGBOOSTJOB = V1Kind(
    "XGBoostJob", "xgbReplicaSpecs", ("Master", "Worker"), "xgboost", 9999, "Never", ("Master",), ("Master",)
)
JAXJOB = V1Kind("JAXJob", "jaxReplicaSpecs", ("Worker",), "jax", 6666, "Never", ("Worker",))
MPIJOB = V1Kind(
    "MPIJob", "mpiReplicaSpecs", ("Launcher", "Worker"), None, 9999, "Never", ("Launcher",), ("Launcher",)
)
V1_KINDS = {k.kind: k for k in (TFJOB, XGBOOSTJOB, JAXJOB, MPIJOB)}


def apply_v1_defaults(obj: dict[str, Any]) -> None:
    """The operator's defaults for the object's kind, in place (its mutating webhook)."""
    kind = V1_KINDS[obj["kind"]]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    run_policy = spec.setdefault("runPolicy", {})
    if isinstance(run_policy, dict):
        if kind is MPIJOB:  # its deprecated spec.cleanPodPolicy counts too; runPolicy's wins
            spec["cleanPodPolicy"] = run_policy["cleanPodPolicy"] = (
                run_policy.get("cleanPodPolicy") or spec.get("cleanPodPolicy") or "None"
            )
        run_policy.setdefault("cleanPodPolicy", "None")
    if kind is TFJOB:
        spec.setdefault("successPolicy", "")
    for rtype, replica in (spec.get(kind.replica_key) or {}).items():
        if not isinstance(replica, dict):
            continue
        replica.setdefault("replicas", 0 if kind is MPIJOB and rtype == "Worker" else 1)
        replica.setdefault("restartPolicy", kind.restart_policy)
        pod = (replica.get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or [] if isinstance(pod, dict) else []:
            if kind.container and isinstance(container, dict) and container.get("name") == kind.container:
                ports = container.setdefault("ports", [])
                if isinstance(ports, list) and not any(
                    isinstance(p, dict) and p.get("name") == f"{kind.kind.lower()}-port" for p in ports
                ):
                    ports.append({"name": f"{kind.kind.lower()}-port", "containerPort": kind.port})


def validate_v1(obj: dict[str, Any]) -> None:
    """Check a TFJob, XGBoostJob, JAXJob or MPIJob as the training operator's webhook would.

    Raises:
        ValidationError: listing every problem found, each saying what to fix.
    """
    kind = V1_KINDS[obj["kind"]]
    validate_v1_job(obj, kind.kind, lambda causes, path, spec: _check_spec(causes, path, spec, kind))


def _check_spec(causes: Causes, path: str, spec: dict[str, Any], kind: V1Kind) -> None:
    rpath = f"{path}.{kind.replica_key}"
    replica_specs: Any = spec.get(kind.replica_key)
    if expect(causes, rpath, replica_specs, dict, required=True):
        for rtype, replica in replica_specs.items():
            if rtype not in kind.replica_types:
                causes.append(
                    FieldCause(
                        f"{rpath}.{rtype}", f"replica type {rtype!r} is not one of {list(kind.replica_types)}"
                    )
                )
            elif expect(causes, f"{rpath}.{rtype}", replica, dict):
                _check_replica(causes, f"{rpath}.{rtype}", rtype, replica, kind)
        if "Chief" in replica_specs and "Master" in replica_specs:
            causes.append(
                FieldCause(rpath, "must not have more than 1 Chief or Master role", "FieldValueForbidden")
            )
        if not set(kind.leads) & set(replica_specs):
            leads = " or ".join(kind.leads)
            causes.append(
                FieldCause(
                    rpath,
                    f"needs a {leads} replica spec: the job succeeds when it does (the other replica "
                    "types alone never finish it)",
                    "FieldValueRequired",
                )
            )
    if kind is TFJOB:
        expect_enum(causes, f"{path}.successPolicy", spec.get("successPolicy"), TF_SUCCESS_POLICIES)
    if kind is MPIJOB:
        expect_min(causes, f"{path}.slotsPerWorker", spec.get("slotsPerWorker"), 1)
        expect_enum(causes, f"{path}.cleanPodPolicy", spec.get("cleanPodPolicy"), ("None", "Running", "All"))
    check_run_policy(causes, f"{path}.runPolicy", spec.get("runPolicy"))


def _check_replica(causes: Causes, path: str, rtype: str, replica: dict[str, Any], kind: V1Kind) -> None:
    expect_min(causes, f"{path}.replicas", replica.get("replicas"), 0)
    if rtype in kind.singletons and replica.get("replicas") not in (None, 1):
        causes.append(
            FieldCause(f"{path}.replicas", f"a {rtype} has exactly 1 replica (got {replica['replicas']})")
        )
    check_replica_template(causes, path, rtype, replica, kind.container)
