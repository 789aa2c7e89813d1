"""TFJob (kubeflow.org/v1, Training Operator v1.9) validator and defaults.

The operator's webhook rules (replica specs present, every container with an image, a container named
``tensorflow``, at most one Chief or Master) plus the bridge's own: a TFJob needs a Chief (or Master)
or a Worker, since the job's success is theirs.
"""

from __future__ import annotations

from typing import Any

from kubeflow_bridge.resources._checks import (
    Causes,
    expect,
    expect_enum,
    expect_min,
)
from kubeflow_bridge.resources.errors import FieldCause
from kubeflow_bridge.resources.training import check_replica_template, check_run_policy, validate_v1_job

KIND = "TFJob"
#: The operator only configures (ports, TF_CONFIG) the container with this name.
CONTAINER_NAME = "tensorflow"
#: Replica types in the order the operator creates them; Chief/Master lead when present.
REPLICA_TYPES = ("Chief", "Master", "PS", "Worker", "Evaluator")
SUCCESS_POLICIES = ("", "AllWorkers")


def apply_tfjob_defaults(obj: dict[str, Any]) -> None:
    """The operator's defaults (SetDefaults_TFJob), in place: 1 replica and restartPolicy Never per
    replica, cleanPodPolicy Running (the parameter servers never exit on their own)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    run_policy = spec.setdefault("runPolicy", {})
    if isinstance(run_policy, dict):
        run_policy.setdefault("cleanPodPolicy", "Running")
    for replica in (spec.get("tfReplicaSpecs") or {}).values():
        if isinstance(replica, dict):
            replica.setdefault("replicas", 1)
            replica.setdefault("restartPolicy", "Never")


def validate_tfjob(obj: dict[str, Any]) -> None:
    """Check a TFJob as the training operator's webhook would, and that something in it can finish it.

    Raises:
        ValidationError: listing every problem found, each saying what to fix.
    """
    validate_v1_job(obj, KIND, _check_spec)


def _check_spec(causes: Causes, path: str, spec: dict[str, Any]) -> None:
    rpath = f"{path}.tfReplicaSpecs"
    replica_specs: Any = spec.get("tfReplicaSpecs")
    if expect(causes, rpath, replica_specs, dict, required=True):
        for rtype, replica in replica_specs.items():
            if rtype not in REPLICA_TYPES:
                causes.append(
                    FieldCause(
                        f"{rpath}.{rtype}", f"replica type {rtype!r} is not one of {list(REPLICA_TYPES)}"
                    )
                )
                continue
            _check_replica(causes, f"{rpath}.{rtype}", rtype, replica)
        if "Chief" in replica_specs and "Master" in replica_specs:
            causes.append(
                FieldCause(rpath, "must not have more than 1 Chief or Master role", "FieldValueForbidden")
            )
        if not {"Chief", "Master", "Worker"} & set(replica_specs):
            causes.append(
                FieldCause(
                    rpath,
                    "needs a Chief (or Master) or a Worker: the job succeeds when its Chief, or its first "
                    "Worker, does (PS and Evaluator replicas alone never finish it)",
                    "FieldValueRequired",
                )
            )
    expect_enum(causes, f"{path}.successPolicy", spec.get("successPolicy"), SUCCESS_POLICIES)
    check_run_policy(causes, f"{path}.runPolicy", spec.get("runPolicy"))


def _check_replica(causes: Causes, path: str, rtype: str, replica: Any) -> None:
    if not expect(causes, path, replica, dict):
        return
    expect_min(causes, f"{path}.replicas", replica.get("replicas"), 0)
    if rtype in ("Chief", "Master") and replica.get("replicas") not in (None, 1):
        causes.append(
            FieldCause(f"{path}.replicas", f"a {rtype} has exactly 1 replica (got {replica['replicas']})")
        )
    check_replica_template(causes, path, rtype, replica, CONTAINER_NAME)
