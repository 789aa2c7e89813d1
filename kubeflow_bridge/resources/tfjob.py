"""TFJob (kubeflow.org/v1, Training Operator v1.9) validator and defaults.

The operator's webhook rules (replica specs present, every container with an image, a container named
``tensorflow``, at most one Chief or Master) plus the bridge's own: a TFJob needs a Chief (or Master)
or a Worker, since the job's success is theirs.
"""

from __future__ import annotations

from typing import Any

from kubeflow_bridge.resources._checks import (
    Causes,
    check_container,
    check_metadata_maps,
    check_object_header,
    expect,
    expect_enum,
    expect_min,
)
from kubeflow_bridge.resources.errors import FieldCause, raise_if_any
from kubeflow_bridge.resources.training import API_VERSION, CLEAN_POD_POLICIES, RESTART_POLICIES

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
    causes: Causes = []
    if not isinstance(obj, dict):
        raise_if_any(KIND, "", [FieldCause("", "a TFJob must be an object")])
        return
    name = check_object_header(causes, obj, kind=KIND, api_version=API_VERSION)
    spec: Any = obj.get("spec")
    if expect(causes, "spec", spec, dict, required=True):
        _check_spec(causes, spec)
    raise_if_any(KIND, name, causes)


def _check_spec(causes: Causes, spec: dict[str, Any]) -> None:
    rpath = "spec.tfReplicaSpecs"
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
    expect_enum(causes, "spec.successPolicy", spec.get("successPolicy"), SUCCESS_POLICIES)
    run_policy: Any = spec.get("runPolicy")
    if expect(causes, "spec.runPolicy", run_policy, dict):
        expect_enum(
            causes, "spec.runPolicy.cleanPodPolicy", run_policy.get("cleanPodPolicy"), CLEAN_POD_POLICIES
        )
        expect_min(causes, "spec.runPolicy.backoffLimit", run_policy.get("backoffLimit"), 0)
        expect_min(causes, "spec.runPolicy.activeDeadlineSeconds", run_policy.get("activeDeadlineSeconds"), 1)
        expect(causes, "spec.runPolicy.suspend", run_policy.get("suspend"), bool)


def _check_replica(causes: Causes, path: str, rtype: str, replica: Any) -> None:
    if not expect(causes, path, replica, dict):
        return
    expect_min(causes, f"{path}.replicas", replica.get("replicas"), 0)
    if rtype in ("Chief", "Master") and replica.get("replicas") not in (None, 1):
        causes.append(
            FieldCause(f"{path}.replicas", f"a {rtype} has exactly 1 replica (got {replica['replicas']})")
        )
    expect_enum(causes, f"{path}.restartPolicy", replica.get("restartPolicy"), RESTART_POLICIES)
    template: Any = replica.get("template")
    if not expect(causes, f"{path}.template", template, dict, required=True):
        return
    check_metadata_maps(causes, f"{path}.template.metadata", template.get("metadata"))
    pod_spec: Any = template.get("spec")
    cpath = f"{path}.template.spec.containers"
    containers: Any = pod_spec.get("containers") if isinstance(pod_spec, dict) else None
    if not isinstance(containers, list) or not containers:
        causes.append(FieldCause(cpath, "must be specified", "FieldValueRequired"))
        return
    for i, container in enumerate(containers):
        check_container(causes, f"{cpath}[{i}]", container)
        if isinstance(container, dict) and not container.get("image"):
            causes.append(FieldCause(f"{cpath}[{i}].image", "must be required", "FieldValueRequired"))
    if not any(isinstance(c, dict) and c.get("name") == CONTAINER_NAME for c in containers):
        causes.append(
            FieldCause(
                cpath,
                f"There is no container named {CONTAINER_NAME} in {rtype}: name the training container "
                f"{CONTAINER_NAME!r} (the operator configures only that one)",
            )
        )
