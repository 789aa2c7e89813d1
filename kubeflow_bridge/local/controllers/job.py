"""batch/v1 Job controller: pods per completions/parallelism, backoffLimit, Complete/Failed conditions."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from kubeflow_bridge.local.apiserver.kinds import JOB, POD
from kubeflow_bridge.local.apiserver.store import Obj, now_iso, seconds_since
from kubeflow_bridge.local.controllers.base import Controller, Request


def _condition(ctype: str, reason: str, message: str) -> dict[str, Any]:
    ts = now_iso()
    return {
        "type": ctype,
        "status": "True",
        "lastProbeTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


def is_finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


class JobController(Controller):
    name = "jobs"
    kinds = (JOB,)
    owns = (POD,)

    async def reconcile(self, req: Request) -> float | None:
        job = self.ctx.get(JOB, req.namespace, req.name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return None
        spec = job.get("spec") or {}
        status = dict(job.get("status") or {})
        if is_finished(job):
            return None
        pods = self.ctx.owned(POD, job)
        active = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        # Container restarts of OnFailure pods count against backoffLimit, as in the real controller.
        failed_total = failed + sum(
            int(cs.get("restartCount", 0))
            for p in pods
            for cs in (p.get("status") or {}).get("containerStatuses") or []
        )
        completions = int(spec.get("completions", 1))
        parallelism = int(spec.get("parallelism", 1))
        backoff_limit = int(spec.get("backoffLimit", 6))
        conditions = list(status.get("conditions") or [])
        if spec.get("suspend"):
            for p in active:
                self.ctx.delete(POD, req.namespace, p["metadata"]["name"])
            if not any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
                conditions = [c for c in conditions if c.get("type") != "Suspended"]
                conditions.append(_condition("Suspended", "JobSuspended", "Job suspended"))
                self.ctx.event(job, "Suspended", "Job suspended", component="job-controller")
            self._write(job, status, conditions, 0, succeeded, failed, 0)
            return None
        if any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
            conditions = [
                c | {"status": "False", "reason": "JobResumed", "message": "Job resumed"}
                if c.get("type") == "Suspended"
                else c
                for c in conditions
            ]
            self.ctx.event(job, "Resumed", "Job resumed", component="job-controller")
        status.setdefault("startTime", now_iso())
        if succeeded >= completions:
            conditions.append(
                _condition(
                    "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
                )
            )
            conditions.append(
                _condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
            )
            status["completionTime"] = now_iso()
            self.ctx.event(job, "Completed", "Job completed", component="job-controller")
            self._write(job, status, conditions, 0, succeeded, failed, 0)
            return None
        if failed_total > backoff_limit:
            for p in active:
                self.ctx.delete(POD, req.namespace, p["metadata"]["name"])
            msg = "Job has reached the specified backoff limit"
            conditions.append(_condition("FailureTarget", "BackoffLimitExceeded", msg))
            conditions.append(_condition("Failed", "BackoffLimitExceeded", msg))
            self.ctx.event(job, "BackoffLimitExceeded", msg, "Warning", component="job-controller")
            self._write(job, status, conditions, 0, succeeded, failed, 0)
            return None
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and seconds_since(status["startTime"]) >= float(deadline):
            for p in active:
                self.ctx.delete(POD, req.namespace, p["metadata"]["name"])
            msg = "Job was active longer than specified deadline"
            conditions.append(_condition("FailureTarget", "DeadlineExceeded", msg))
            conditions.append(_condition("Failed", "DeadlineExceeded", msg))
            self.ctx.event(job, "DeadlineExceeded", msg, "Warning", component="job-controller")
            self._write(job, status, conditions, 0, succeeded, failed, 0)
            return None
        want = min(parallelism, completions - succeeded) - len(active)
        for _ in range(max(want, 0)):
            self._create_pod(job)
        pods = self.ctx.owned(POD, job)
        active_n = sum(
            1 for p in pods if (p.get("status") or {}).get("phase") in (None, "Pending", "Running")
        )
        ready = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
        self._write(job, status, conditions, active_n, succeeded, failed, ready)
        if deadline is not None:
            return max(float(deadline) - seconds_since(status["startTime"]), 0.1)
        return None

    def _create_pod(self, job: Obj) -> None:
        meta = job["metadata"]
        tmpl = copy.deepcopy(job["spec"]["template"])
        pmeta = tmpl.get("metadata") or {}
        name = f"{meta['name']}-{secrets.token_hex(3)[:5]}"
        labels = dict(pmeta.get("labels") or {})
        labels.setdefault("job-name", meta["name"])
        labels.setdefault("batch.kubernetes.io/job-name", meta["name"])
        labels.setdefault("controller-uid", meta["uid"])
        labels.setdefault("batch.kubernetes.io/controller-uid", meta["uid"])
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels, "annotations": dict(pmeta.get("annotations") or {})},
            "spec": tmpl.get("spec") or {},
        }
        pod = self.ctx.create(POD, body, namespace=meta["namespace"], owner=job)
        self.ctx.event(
            job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", component="job-controller"
        )

    def _write(
        self,
        job: Obj,
        status: dict[str, Any],
        conditions: list[dict[str, Any]],
        active: int,
        succeeded: int,
        failed: int,
        ready: int,
    ) -> None:
        new = dict(status)
        for key, value in (("active", active), ("succeeded", succeeded), ("failed", failed)):
            if value:
                new[key] = value
            else:
                new.pop(key, None)
        new["ready"] = ready
        new["terminating"] = 0
        new["uncountedTerminatedPods"] = {}
        if conditions:
            new["conditions"] = conditions
        if new != (job.get("status") or {}):
            self.ctx.set_status(JOB, job, new)
