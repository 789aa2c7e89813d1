"""TFJob controller with the training operator v1.9 semantics, on the shared v1 job controller.

Pods ``<job>-<chief|master|ps|worker|evaluator>-<i>`` get the operator's labels and ``TF_CONFIG``: the
cluster (every Chief/Master, PS and Worker address, the Evaluator apart) and the pod's own task. Each
replica listens on 127.0.0.1 at a free port picked per job (the operator uses ``<pod>.<ns>.svc:2222``:
there is no cluster DNS here). The job succeeds with its Chief (or Master); without one, with Worker 0,
or with every Worker under ``successPolicy: AllWorkers``.
"""

from __future__ import annotations

import json
from typing import Any

from kubeflow_bridge.local.apiserver.kinds import TFJOB, ResourceType
from kubeflow_bridge.local.apiserver.store import Obj
from kubeflow_bridge.local.training.pytorchjob import L_INDEX, L_TYPE, ReplicaJobController
from kubeflow_bridge.resources.tfjob import REPLICA_TYPES

#: Replica types in TF_CONFIG's cluster (an Evaluator is not part of the training cluster).
CLUSTER_TYPES = ("Chief", "Master", "PS", "Worker")


class TFJobController(ReplicaJobController):
    name = "tfjobs"
    kinds = (TFJOB,)
    rt: ResourceType = TFJOB
    replica_key = "tfReplicaSpecs"
    order = REPLICA_TYPES
    operator = "tfjob-controller"

    def _lead(self, replicas: dict[str, Any]) -> str:
        return next((r for r in ("Chief", "Master") if r in replicas), "Worker")

    def _is_master(self, replicas: dict[str, Any], rtype: str, index: int) -> bool:
        if "Chief" in replicas or "Master" in replicas:
            return rtype in ("Chief", "Master")
        return rtype == "Worker" and index == 0

    def _succeeded(
        self, spec: dict[str, Any], lead: str, lead_status: dict[str, Any], pods: list[Obj]
    ) -> bool:
        if lead != "Worker":
            return bool(lead_status.get("succeeded", 0) >= 1)
        if spec.get("successPolicy") == "AllWorkers":
            return bool(
                lead_status.get("succeeded", 0) >= int(spec[self.replica_key]["Worker"].get("replicas", 1))
            )
        return any(
            p["metadata"]["labels"].get(L_TYPE) == "worker"
            and p["metadata"]["labels"].get(L_INDEX) == "0"
            and (p.get("status") or {}).get("phase") == "Succeeded"
            for p in pods
        )

    def _port(self, job: Obj, pods: list[Obj]) -> dict[str, list[int]]:
        """Every replica's port by replica type; after a restart, read back from a pod's TF_CONFIG."""
        uid = job["metadata"]["uid"]
        if uid not in self.ports:
            for p in pods:
                for c in p["spec"]["containers"]:
                    for e in c.get("env") or []:
                        if e.get("name") == "TF_CONFIG":
                            cluster = json.loads(e["value"])["cluster"]
                            self.ports[uid] = {
                                rtype: [int(a.rsplit(":", 1)[1]) for a in cluster[rtype.lower()]]
                                for rtype in CLUSTER_TYPES
                                if rtype.lower() in cluster
                            }
            if uid not in self.ports:
                replicas = job["spec"][self.replica_key]
                self.ports[uid] = {
                    rtype: [self.ctx.free_port() for _ in range(int(replicas[rtype].get("replicas", 1)))]
                    for rtype in CLUSTER_TYPES
                    if rtype in replicas
                }
        ports: dict[str, list[int]] = self.ports[uid]
        return ports

    def _env(self, job: Obj, rtype: str, index: int, port: Any) -> list[dict[str, str]]:
        cluster = {rt.lower(): [f"127.0.0.1:{p}" for p in ports] for rt, ports in port.items()}
        config = {"cluster": cluster, "task": {"type": rtype.lower(), "index": index}, "environment": "cloud"}
        return [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "TF_CONFIG", "value": json.dumps(config)},
        ]
