"""TFJob, XGBoostJob and JAXJob controllers with the training operator v1.9 semantics, on the v1 job
controller PyTorchJob's runs on (:mod:`.pytorchjob`).

Each replica gets the env its framework reads, with 127.0.0.1 and ports picked free per job where the
operator writes ``<job>-<type>-<i>`` DNS names and fixed ports (there is no cluster DNS here, and every
replica is a process on this host):

- TFJob: ``TF_CONFIG`` (the cluster, every Chief/Master, PS and Worker address, the Evaluator apart; the
  pod's own task). It succeeds with its Chief (or Master); without one, with Worker 0, or with every
  Worker under ``successPolicy: AllWorkers``.
- XGBoostJob: ``MASTER_ADDR``/``MASTER_PORT`` (the Master's tracker), ``WORLD_SIZE``, ``RANK``,
  ``WORKER_ADDRS``/``WORKER_PORT``. It succeeds with its Master.
- JAXJob: ``COORDINATOR_ADDRESS``/``COORDINATOR_PORT`` (Worker 0), ``NUM_PROCESSES``, ``PROCESS_ID``
  (what ``jax.distributed.initialize`` takes). It succeeds when every Worker has.
- MPIJob: Workers (``sleep 365d`` when their container has no command), then ``<job>-launcher``, whose
  ``mpirun`` starts the ranks through ``OMPI_MCA_plm_rsh_agent`` (``kubexec.sh``) on the hosts of
  ``OMPI_MCA_orte_default_hostfile`` (``<job>-worker-<i> slots=<slotsPerWorker>``), both in the ConfigMap
  ``<job>-config``. It succeeds or fails with its Launcher. On a cluster kubexec.sh is ``kubectl exec
  <worker> -- /bin/sh -c``; every pod here is a process on this host, so the local kubexec.sh runs the
  command on this host, beside the launcher and with its env, and the env names the ConfigMap's files by
  their paths under the state folder (``mpi/<namespace>/<job>/``), as there are no volumes to mount at
  ``/etc/mpi``. Open MPI 5 reads neither variable from the env (its PRRTE takes ``--mca plm_rsh_agent``
  and ``--hostfile``): pass them on mpirun's command line, as the tests do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubeflow_bridge.local.apiserver.kinds import CONFIGMAP, JAXJOB, MPIJOB, TFJOB, XGBOOSTJOB, ResourceType
from kubeflow_bridge.local.apiserver.store import Obj
from kubeflow_bridge.local.training.pytorchjob import L_INDEX, L_TYPE, ReplicaJobController
from kubeflow_bridge.resources import v1jobs

#: Replica types in TF_CONFIG's cluster (an Evaluator is not part of the training cluster).
TF_CLUSTER_TYPES = ("Chief", "Master", "PS", "Worker")


class _V1Controller(ReplicaJobController):
    """A v1 kind described by :class:`~kubeflow_bridge.resources.v1jobs.V1Kind`, one port per job."""

    spec_of: v1jobs.V1Kind
    port_env = ("MASTER_PORT", "COORDINATOR_PORT")  # XGBoost's tracker, JAX's coordinator

    def __init__(self) -> None:
        super().__init__()
        self.replica_key = self.spec_of.replica_key
        self.order = self.spec_of.replica_types
        self.operator = f"{self.spec_of.kind.lower()}-controller"

    def _lead(self, replicas: dict[str, Any]) -> str:
        return next((r for r in self.spec_of.leads if r in replicas), self.spec_of.leads[-1])

    def _is_master(self, replicas: dict[str, Any], rtype: str, index: int) -> bool:
        lead = self._lead(replicas)
        return rtype == lead and (lead != "Worker" or index == 0)


class TFJobController(_V1Controller):
    name = "tfjobs"
    kinds = (TFJOB,)
    rt: ResourceType = TFJOB
    spec_of = v1jobs.TFJOB

    def _succeeded(
        self, spec: dict[str, Any], lead: str, lead_status: dict[str, Any], pods: list[Obj]
    ) -> bool:
        if lead != "Worker":
            return bool(lead_status.get("succeeded", 0) >= 1)
        if spec.get("successPolicy") == "AllWorkers":
            return super()._succeeded(spec, lead, lead_status, pods)
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
                                for rtype in TF_CLUSTER_TYPES
                                if rtype.lower() in cluster
                            }
            if uid not in self.ports:
                replicas = job["spec"][self.replica_key]
                self.ports[uid] = {
                    rtype: [self.ctx.free_port() for _ in range(int(replicas[rtype].get("replicas", 1)))]
                    for rtype in TF_CLUSTER_TYPES
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


class XGBoostJobController(_V1Controller):
    name = "xgboostjobs"
    kinds = (XGBOOSTJOB,)
    rt: ResourceType = XGBOOSTJOB
    spec_of = v1jobs.XGBOOSTJOB

    def _succeeded(
        self, spec: dict[str, Any], lead: str, lead_status: dict[str, Any], pods: list[Obj]
    ) -> bool:
        return bool(lead_status.get("succeeded", 0) >= 1)

    def _env(self, job: Obj, rtype: str, index: int, port: Any) -> list[dict[str, str]]:
        replicas = job["spec"][self.replica_key]
        total = sum(int(r.get("replicas", 1)) for r in replicas.values())
        rank = index + (int(replicas["Master"].get("replicas", 1)) if rtype == "Worker" else 0)
        env = [
            {"name": "MASTER_PORT", "value": str(port)},
            {"name": "MASTER_ADDR", "value": "127.0.0.1"},
            {"name": "WORLD_SIZE", "value": str(total)},
            {"name": "RANK", "value": str(rank)},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ]
        if total > 1:
            env += [
                {"name": "WORKER_PORT", "value": str(self.spec_of.port)},
                {"name": "WORKER_ADDRS", "value": ",".join("127.0.0.1" for _ in range(total - 1))},
            ]
        return env


class JAXJobController(_V1Controller):
    name = "jaxjobs"
    kinds = (JAXJOB,)
    rt: ResourceType = JAXJOB
    spec_of = v1jobs.JAXJOB

    def _env(self, job: Obj, rtype: str, index: int, port: Any) -> list[dict[str, str]]:
        total = sum(int(r.get("replicas", 1)) for r in job["spec"][self.replica_key].values())
        return [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "COORDINATOR_PORT", "value": str(port)},
            {"name": "COORDINATOR_ADDRESS", "value": "127.0.0.1"},
            {"name": "NUM_PROCESSES", "value": str(total)},
            {"name": "PROCESS_ID", "value": str(index)},
        ]


#: The local rsh agent (see the module docstring): ``kubexec.sh <pod> <command...>``.
KUBEXEC = """#!/bin/sh
# kubexec.sh <pod> <command...>: on a cluster, kubectl exec <pod> -- /bin/sh -c "<command>".
# The local runtime's pods are processes on this host: the command runs here.
POD_NAME=$1
shift
exec /bin/sh -c "$*"
"""


class MPIJobController(_V1Controller):
    name = "mpijobs"
    kinds = (MPIJOB,)
    rt: ResourceType = MPIJOB
    spec_of = v1jobs.MPIJOB

    def __init__(self) -> None:
        super().__init__()
        self.order = ("Worker", "Launcher")  # the workers first, as the operator creates them

    def _pod_name(self, job_name: str, rtype: str, index: int) -> str:
        return f"{job_name}-launcher" if rtype == "Launcher" else f"{job_name}-worker-{index}"

    def _pod_body(self, job: Obj, rtype: str, index: int, port: Any) -> Obj:
        body = super()._pod_body(job, rtype, index, port)
        first = (body["spec"].get("containers") or [{}])[0]
        if rtype == "Worker" and not first.get("command"):
            first["command"], first["args"] = ["sleep"], ["365d"]  # kept alive for the launcher's ranks
        return body

    def _config(self, job: Obj) -> Path:
        """The ConfigMap ``<job>-config`` (hostfile, kubexec.sh) and its files' folder, made once."""
        meta, spec = job["metadata"], job["spec"]
        folder = Path(self.ctx.state_dir) / "mpi" / meta["namespace"] / meta["name"]
        slots = int(spec.get("slotsPerWorker") or 1)
        workers = int((spec[self.replica_key].get("Worker") or {}).get("replicas", 0))
        hosts = "".join(f"{meta['name']}-worker-{i} slots={slots}\n" for i in range(workers))
        data = {"hostfile": hosts, "kubexec.sh": KUBEXEC}
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in data.items():
            (folder / file).write_text(text)
        (folder / "kubexec.sh").chmod(0o755)
        if self.ctx.get(CONFIGMAP, meta["namespace"], f"{meta['name']}-config") is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{meta['name']}-config", "labels": {"app": meta["name"]}},
                "data": data,
            }
            self.ctx.create(CONFIGMAP, body, namespace=meta["namespace"], owner=job)
        return folder

    def _env(self, job: Obj, rtype: str, index: int, port: Any) -> list[dict[str, str]]:
        if rtype != "Launcher":
            return []
        folder = self._config(job)
        containers = job["spec"][self.replica_key]["Launcher"]["template"]["spec"]["containers"]
        given = {e.get("name") for c in containers for e in c.get("env") or []}
        env = [
            {"name": "OMPI_MCA_plm_rsh_agent", "value": str(folder / "kubexec.sh")},
            {"name": "OMPI_MCA_orte_default_hostfile", "value": str(folder / "hostfile")},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ]
        # Intel MPI's Hydra: the same agent, unless the launcher sets its own
        env += [
            {"name": name, "value": value}
            for name, value in (
                ("I_MPI_HYDRA_BOOTSTRAP", "rsh"),
                ("I_MPI_HYDRA_BOOTSTRAP_EXEC", str(folder / "kubexec.sh")),
            )
            if name not in given
        ]
        gpus = any(
            "gpu" in key for c in containers for key in ((c.get("resources") or {}).get("limits") or {})
        )
        if not gpus:
            env += [
                {"name": n, "value": ""} for n in ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")
            ]
        return env
