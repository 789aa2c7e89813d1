"""The training operator v1.9's job controllers: PyTorchJob here, on a base the TFJob controller
(:mod:`.tfjob`) shares (see LIFECYCLE notes in the docs).

Pods ``<job>-<replica type>-<i>`` carry the operator's labels and env. A PyTorchJob's MASTER_ADDR is
127.0.0.1, not the operator's ``<job>-master-0``: there is no cluster DNS here and every replica is a
process on this host. MASTER_PORT is a free port picked per job (the operator uses the container's
``pytorchjob-port``, 23456 by default, which would collide between jobs on one host).
"""

from __future__ import annotations

import copy
from typing import Any

from kubeflow_bridge.local.apiserver.kinds import POD, PYTORCHJOB, ResourceType
from kubeflow_bridge.local.apiserver.store import Obj, now_iso, seconds_since
from kubeflow_bridge.local.controllers.base import Controller, Request

OPERATOR = "pytorchjob-controller"
L_JOB = "training.kubeflow.org/job-name"
L_OPERATOR = "training.kubeflow.org/operator-name"
L_TYPE = "training.kubeflow.org/replica-type"
L_INDEX = "training.kubeflow.org/replica-index"
L_ROLE = "training.kubeflow.org/job-role"
ORDER = ("Master", "Worker")
#: Seconds between a backoffLimit failure and the removal of the job's pods (see _remove_after_backoff).
BACKOFF_REMOVAL_DELAY = 5.0


def _cond(ctype: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    ts = now_iso()
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": ts,
        "lastTransitionTime": ts,
    }


def has_condition(obj: Obj, ctype: str) -> bool:
    return any(
        c.get("type") == ctype and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def set_condition(conditions: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The operator's setCondition: no-op once Failed; same type+status+reason no-op; Running and
    Restarting replace each other; Succeeded/Failed turn an existing Running False in place."""
    if any(c.get("type") == "Failed" and c.get("status") == "True" for c in conditions):
        return conditions
    for c in conditions:
        if (
            c.get("type") == new["type"]
            and c.get("status") == new["status"]
            and c.get("reason") == new["reason"]
        ):
            return conditions
    out = []
    for c in conditions:
        if c.get("type") == new["type"]:
            continue
        if new["type"] == "Running" and c.get("type") == "Restarting":
            continue
        if new["type"] == "Restarting" and c.get("type") == "Running":
            continue
        if (
            new["type"] in ("Succeeded", "Failed")
            and c.get("type") == "Running"
            and c.get("status") == "True"
        ):
            c = dict(
                c,
                status="False",
                lastUpdateTime=new["lastUpdateTime"],
                lastTransitionTime=new["lastTransitionTime"],
            )
        out.append(c)
    out.append(new)
    return out


def _exit_info(pod: Obj) -> str:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        t = (cs.get("state") or {}).get("terminated") or ((cs.get("lastState") or {}).get("terminated")) or {}
        if t:
            return f"container {cs.get('name')} exited with code {t.get('exitCode')} ({t.get('reason', '')})"
        w = (cs.get("state") or {}).get("waiting") or {}
        if w.get("reason"):
            return f"container {cs.get('name')}: {w.get('reason')}: {w.get('message', '')}"
    st = pod.get("status") or {}
    return f"{st.get('reason', '')}: {st.get('message', '')}".strip(": ")


class ReplicaJobController(Controller):
    """A training operator v1 job: replica specs of typed pods, one condition list, a backoff limit.

    Subclasses say the kind, its replica-spec key, its replica types in creation order, which replica
    leads (its success is the job's), and each replica's env.
    """

    owns = (POD,)
    rt: ResourceType = PYTORCHJOB
    replica_key = "pytorchReplicaSpecs"
    order: tuple[str, ...] = ORDER
    operator = OPERATOR
    #: The env var a replica carries the job's port in (how a restarted runtime finds it again).
    port_env: tuple[str, ...] = ("MASTER_PORT",)

    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[str, Any] = {}

    @property
    def kind_name(self) -> str:
        return self.rt.kind

    def _port(self, job: Obj, pods: list[Obj]) -> Any:
        """The job's one port (its rendezvous, tracker or coordinator), read back from a pod's
        ``port_env`` after a runtime restart, else picked free."""
        uid = job["metadata"]["uid"]
        if uid not in self.ports:
            for p in pods:
                for c in p["spec"]["containers"]:
                    for e in c.get("env") or []:
                        if e.get("name") in self.port_env:
                            self.ports[uid] = int(e["value"])
            if uid not in self.ports:
                self.ports[uid] = self.ctx.free_port()
        return self.ports[uid]

    def _env(self, job: Obj, rtype: str, index: int, port: Any) -> list[dict[str, str]]:
        raise NotImplementedError

    def _lead(self, replicas: dict[str, Any]) -> str:
        """The replica type whose success is the job's (and whose start is the job's Running)."""
        return "Master" if "Master" in replicas else "Worker"

    def _is_master(self, replicas: dict[str, Any], rtype: str, index: int) -> bool:
        return rtype == "Master"

    def _succeeded(
        self, spec: dict[str, Any], lead: str, lead_status: dict[str, Any], pods: list[Obj]
    ) -> bool:
        total = int(spec[self.replica_key][lead].get("replicas", 1))
        done = lead_status.get("succeeded", 0)
        return done >= 1 if lead == "Master" else done >= total

    def _pod_name(self, job_name: str, rtype: str, index: int) -> str:
        return f"{job_name}-{rtype.lower()}-{index}"

    def _pod_body(self, job: Obj, rtype: str, index: int, port: Any) -> Obj:
        meta, spec = job["metadata"], job["spec"]
        replicas = spec[self.replica_key]
        rspec = replicas[rtype]
        tmpl = copy.deepcopy(rspec["template"])
        pmeta = tmpl.get("metadata") or {}
        labels = dict(pmeta.get("labels") or {})
        labels.update(
            {L_JOB: meta["name"], L_OPERATOR: self.operator, L_TYPE: rtype.lower(), L_INDEX: str(index)}
        )
        if self._is_master(replicas, rtype, index):
            labels[L_ROLE] = "master"
        env = self._env(job, rtype, index, port)
        pspec = tmpl.get("spec") or {}
        for c in pspec.get("containers") or []:
            names = {e["name"] for e in env}
            c["env"] = [e for e in c.get("env") or [] if e.get("name") not in names] + env
        policy = rspec.get("restartPolicy", "OnFailure")
        pspec["restartPolicy"] = "Never" if policy == "ExitCode" else policy
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self._pod_name(meta["name"], rtype, index),
                "labels": labels,
                "annotations": dict(pmeta.get("annotations") or {}),
            },
            "spec": pspec,
        }

    async def reconcile(self, req: Request) -> float | None:
        job = self.ctx.get(self.rt, req.namespace, req.name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return None
        kind = self.kind_name
        name = job["metadata"]["name"]
        spec = job.get("spec") or {}
        replicas: dict[str, Any] = spec.get(self.replica_key) or {}
        run_policy = spec.get("runPolicy") or {}
        status = copy.deepcopy(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        if not conditions:
            conditions = set_condition(
                conditions, _cond("Created", f"{kind}Created", f"{kind} {name} is created.")
            )
            self.ctx.event(job, f"{kind}Created", f"{kind} {name} is created.", component=self.operator)
        pods = self.ctx.owned(POD, job)
        finished = has_condition(job, "Succeeded") or has_condition(job, "Failed")
        if finished:
            self._clean(job, pods, run_policy.get("cleanPodPolicy") or "None")
            wait = self._remove_after_backoff(job, pods)
            expire = self._expire(job, run_policy)
            return min((t for t in (wait, expire) if t is not None), default=None)
        if run_policy.get("suspend"):
            for p in pods:
                self.ctx.delete(POD, req.namespace, p["metadata"]["name"])
            msg = f"{kind} {name} is suspended."
            if has_condition({"status": {"conditions": conditions}}, "Running"):
                conditions = set_condition(conditions, _cond("Running", f"{kind}Suspended", msg, "False"))
            if not has_condition({"status": {"conditions": conditions}}, "Suspended"):
                conditions = set_condition(conditions, _cond("Suspended", f"{kind}Suspended", msg))
                self.ctx.event(job, f"{kind}Suspended", msg, component=self.operator)
            idle = {
                rt: {k: v for k, v in st.items() if k != "active"}
                for rt, st in (status.get("replicaStatuses") or {}).items()
            }
            status.update({"conditions": conditions, "replicaStatuses": idle})
            self._write(job, status)
            return None
        if any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
            conditions = [
                dict(c, status="False", reason=f"{kind}Resumed", message=f"{kind} {name} is resumed.")
                if c.get("type") == "Suspended"
                else c
                for c in conditions
            ]
        status.setdefault("startTime", now_iso())
        deadline = run_policy.get("activeDeadlineSeconds")
        if deadline is not None:
            left = float(deadline) - seconds_since(status["startTime"])
            if left <= 0:
                msg = f"{kind} {name} has failed because it was active longer than specified deadline"
                status["conditions"] = set_condition(conditions, _cond("Failed", f"{kind}Failed", msg))
                status["completionTime"] = now_iso()
                self.ctx.event(job, "DeadlineExceeded", msg, "Warning", component=self.operator)
                for p in pods:
                    self.ctx.delete(POD, req.namespace, p["metadata"]["name"])
                self._write(job, status)
                return None
        port = self._port(job, pods)
        by_name = {p["metadata"]["name"]: p for p in pods}
        for rtype in self.order:
            if rtype not in replicas:
                continue
            for i in range(int(replicas[rtype].get("replicas", 1))):
                pname = self._pod_name(name, rtype, i)
                if pname not in by_name:
                    pod = self.ctx.create(
                        POD, self._pod_body(job, rtype, i, port), namespace=req.namespace, owner=job
                    )
                    by_name[pname] = pod
                    self.ctx.event(
                        job, "SuccessfulCreatePod", f"Created pod: {pname}", component=self.operator
                    )
        pods = list(by_name.values())
        rstatuses: dict[str, dict[str, Any]] = {}
        failed_pods: list[tuple[str, Obj]] = []
        restarts = 0
        for rtype in replicas:
            mine = [p for p in pods if p["metadata"]["labels"].get(L_TYPE) == rtype.lower()]
            counts = {"active": 0, "succeeded": 0, "failed": 0}
            for p in mine:
                phase = (p.get("status") or {}).get("phase")
                if phase == "Running":
                    counts["active"] += 1
                elif phase == "Succeeded":
                    counts["succeeded"] += 1
                elif phase == "Failed":
                    counts["failed"] += 1
                    failed_pods.append((rtype, p))
                if phase == "Running" and replicas[rtype].get("restartPolicy", "OnFailure") in (
                    "OnFailure",
                    "Always",
                    "ExitCode",
                ):  # what the operator's PastBackoffLimit counts
                    restarts += sum(
                        int(cs.get("restartCount", 0))
                        for cs in (p.get("status") or {}).get("containerStatuses") or []
                    )
            sel = f"{L_JOB}={name},{L_OPERATOR}={self.operator},{L_TYPE}={rtype.lower()}"
            entry: dict[str, Any] = {k: v for k, v in counts.items() if v}
            entry["selector"] = sel
            entry["labelSelector"] = {
                "matchLabels": {L_JOB: name, L_OPERATOR: self.operator, L_TYPE: rtype.lower()}
            }
            rstatuses[rtype] = entry
        status["replicaStatuses"] = rstatuses
        lead = self._lead(replicas)
        lead_status = rstatuses.get(lead, {})
        if lead_status.get("active") and not has_condition({"status": {"conditions": conditions}}, "Running"):
            conditions = set_condition(
                conditions, _cond("Running", f"{kind}Running", f"{kind} {name} is running.")
            )
            self.ctx.event(job, f"{kind}Running", f"{kind} {name} is running.", component=self.operator)
        backoff = run_policy.get("backoffLimit")
        if self._succeeded(spec, lead, lead_status, pods):
            msg = f"{kind} {name} is successfully completed."
            conditions = set_condition(conditions, _cond("Succeeded", f"{kind}Succeeded", msg))
            status["completionTime"] = now_iso()
            self.ctx.event(job, f"{kind}Succeeded", msg, component=self.operator)
        elif backoff is not None and (restarts >= int(backoff) if int(backoff) > 0 else restarts > 0):
            msg = f"{kind} {name} has failed because it has reached the specified backoff limit"
            conditions = set_condition(conditions, _cond("Failed", f"{kind}Failed", msg))
            status["completionTime"] = now_iso()
            self.ctx.event(job, f"{kind}Failed", msg, "Warning", component=self.operator)
        elif failed_pods:
            rtype, pod = failed_pods[0]
            policy = replicas[rtype].get("restartPolicy", "OnFailure")
            code = self._exit_code(pod)
            n = sum(1 for r, _ in failed_pods if r == rtype)
            if policy == "ExitCode" and code is not None and code >= 128:
                # Retryable exit code: the operator deletes the pod and creates it again.
                msg = f"{kind} {name} is restarting because {n} {rtype} replica(s) failed."
                conditions = set_condition(conditions, _cond("Restarting", f"{kind}Restarting", msg))
                self.ctx.event(job, f"{kind}Restarting", msg, "Warning", component=self.operator)
                for _r, p in failed_pods:
                    self.ctx.delete(POD, req.namespace, p["metadata"]["name"])
            else:
                msg = (
                    f"{kind} {name} is failed because {n} {rtype} replica(s) failed. "
                    f"Pod {pod['metadata']['name']}: {_exit_info(pod)}"
                )
                conditions = set_condition(conditions, _cond("Failed", f"{kind}Failed", msg))
                status["completionTime"] = now_iso()
                self.ctx.event(job, f"{kind}Failed", msg, "Warning", component=self.operator)
        status["conditions"] = conditions
        self._write(job, status)
        if has_condition({"status": status}, "Succeeded") or has_condition({"status": status}, "Failed"):
            self._clean(job, pods, run_policy.get("cleanPodPolicy") or "None")
            self.ports.pop(job["metadata"]["uid"], None)
            wait = self._remove_after_backoff({**job, "status": status}, pods)
            expire = self._expire({**job, "status": status}, run_policy)
            return min((t for t in (wait, expire) if t is not None), default=None)
        if deadline is not None:
            return max(float(deadline) - seconds_since(status["startTime"]), 0.1)
        return None

    def _remove_after_backoff(self, job: Obj, pods: list[Obj]) -> float | None:
        """A job failed at its backoffLimit loses every pod, whatever cleanPodPolicy says (v1.9 deletes
        them before it writes Failed). Locally they go BACKOFF_REMOVAL_DELAY seconds after Failed, so a
        client that sees Failed can still read the crashed replica's log; the crash loop ends then."""
        failed = next(
            (c for c in (job.get("status") or {}).get("conditions") or [] if c.get("type") == "Failed"), None
        )
        if not pods or failed is None or "backoff limit" not in str(failed.get("message")):
            return None
        left = BACKOFF_REMOVAL_DELAY - seconds_since(failed.get("lastTransitionTime") or now_iso())
        if left > 0:
            return left
        for p in pods:
            self.ctx.delete(POD, job["metadata"]["namespace"], p["metadata"]["name"])
        return None

    def _expire(self, job: Obj, run_policy: dict[str, Any]) -> float | None:
        """runPolicy.ttlSecondsAfterFinished: the finished job is deleted that long after completionTime."""
        ttl = run_policy.get("ttlSecondsAfterFinished")
        done_at = (job.get("status") or {}).get("completionTime")
        if ttl is None or not done_at or run_policy.get("suspend"):
            return None
        left = float(ttl) - seconds_since(done_at)
        if left > 0:
            return left
        self.ctx.delete(self.rt, job["metadata"]["namespace"], job["metadata"]["name"])
        return None

    def _exit_code(self, pod: Obj) -> int | None:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            t = (cs.get("state") or {}).get("terminated")
            if t:
                return int(t.get("exitCode", 1))
        return None

    def _clean(self, job: Obj, pods: list[Obj], policy: str) -> None:
        for p in pods:
            phase = (p.get("status") or {}).get("phase")
            if policy == "All" or (policy == "Running" and phase in ("Running", "Pending", None)):
                self.ctx.delete(POD, job["metadata"]["namespace"], p["metadata"]["name"])

    def _write(self, job: Obj, status: dict[str, Any]) -> None:
        if status != (job.get("status") or {}):
            status["lastReconcileTime"] = now_iso()
            self.ctx.set_status(self.rt, job, status)


class PyTorchJobController(ReplicaJobController):
    """PyTorchJob: Master and Workers with torch's rendezvous env (one port per job)."""

    name = "pytorchjobs"
    kinds = (PYTORCHJOB,)

    def _env(self, job: Obj, rtype: str, index: int, port: Any) -> list[dict[str, str]]:
        spec = job["spec"]
        replicas = spec[self.replica_key]
        total = sum(int(r.get("replicas", 1)) for r in replicas.values())
        nproc = spec.get("nprocPerNode") or "auto"
        nproc_int = int(nproc) if str(nproc).isdigit() else 1
        rank = index + (1 if rtype == "Worker" and "Master" in replicas else 0)
        env: list[dict[str, str]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
        if "Master" in replicas:
            env += [
                {"name": "MASTER_PORT", "value": str(port)},
                {"name": "PET_MASTER_PORT", "value": str(port)},
                {"name": "MASTER_ADDR", "value": "127.0.0.1"},
                {"name": "PET_MASTER_ADDR", "value": "127.0.0.1"},
                {"name": "WORLD_SIZE", "value": str(total * nproc_int)},
                {"name": "RANK", "value": str(rank)},
                {"name": "PET_NODE_RANK", "value": str(rank)},
            ]
        env.append({"name": "PET_NPROC_PER_NODE", "value": str(nproc)})
        env.append({"name": "PET_NNODES", "value": str(total)})
        return env
