"""TrainJob controller with Kubeflow Trainer v2.3 semantics (its JobSet and Jobs folded into one loop).

Trainer v2.3 renders a TrainJob and its runtime into a JobSet, whose Jobs run the pods; the TrainJob's
status copies the JobSet's (``Complete``: ``AllJobsCompleted`` / "jobset completed successfully",
``Failed``: ``FailedJobs`` / "jobset failed due to one or more job failures") and lists one
``jobsStatus`` entry per replicated job. Locally the controller creates the pods itself, one per
completion index of each replicated job (``<trainjob>-<replicatedJob>-0-<index>``, the hostname a
JobSet pod gets), with JobSet's labels (``jobset.sigs.k8s.io/jobset-name`` ...) and the torch plugin's
env: ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK`` (from the completion index annotation),
``PET_MASTER_ADDR`` 127.0.0.1 and ``PET_MASTER_PORT`` a free port picked per job (there is no cluster
DNS for ``<trainjob>-node-0-0.<trainjob>``, and 29500 would collide between jobs on one host).

Replicated jobs start once those they ``dependsOn`` are Complete (or Ready, as the entry says); a job fails when its pods failed or
restarted more than its ``backoffLimit`` (6, as batch/v1) times; pods restart ``OnFailure`` unless the
template says otherwise (JobSet's default). ``suspend`` deletes the pods and writes ``Suspended``;
``activeDeadlineSeconds`` fails the job with ``DeadlineExceeded``.
"""

from __future__ import annotations

import copy
from typing import Any

from kubeflow_bridge.local.apiserver.kinds import (
    CLUSTERTRAININGRUNTIME,
    CONFIGMAP,
    NAMESPACE,
    POD,
    TRAININGRUNTIME,
    TRAINJOB,
)
from kubeflow_bridge.local.apiserver.store import Obj, now_iso, seconds_since
from kubeflow_bridge.local.controllers.base import Controller, Request
from kubeflow_bridge.local.images import UnknownImage
from kubeflow_bridge.resources.trainjob import (
    ANCESTOR_LABEL,
    JOBSET_NAME_LABEL,
    REPLICATED_JOB_LABEL,
    runtime_ref,
)

CONTROLLER = "trainer.kubeflow.org/trainjob-controller"
NODE = "node"  # the trainer's replicated job and container name in Kubeflow's runtimes
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
DEFAULT_BACKOFF_LIMIT = 6
#: Seconds between Failed and the removal of the job's still-running pods (see _stop_after_failure).
STOP_AFTER_FAILURE = 5.0
COMPLETE = ("Complete", "AllJobsCompleted", "jobset completed successfully")
FAILED = ("Failed", "FailedJobs", "jobset failed due to one or more job failures")
DEADLINE = ("Failed", "DeadlineExceeded", "TrainJob exceeded its active deadline")


def _condition(ctype: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_iso(),
    }


def _is_true(status: dict[str, Any], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def _set(status: dict[str, Any], cond: dict[str, Any]) -> None:
    """meta.SetStatusCondition: one entry per type, the transition time kept while the status holds."""
    conditions = status.setdefault("conditions", [])
    for i, old in enumerate(conditions):
        if old.get("type") == cond["type"]:
            if old.get("status") == cond["status"]:
                cond["lastTransitionTime"] = old.get("lastTransitionTime", cond["lastTransitionTime"])
            conditions[i] = cond
            return
    conditions.append(cond)


def _upsert_env(env: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {e["name"] for e in extra}
    return [e for e in env if e.get("name") not in names] + extra


def _proc_per_node(trainer: dict[str, Any], container: dict[str, Any]) -> str:
    """The torch plugin's PET_NPROC_PER_NODE: numProcPerNode, else GPUs per node, else CPUs (at least 1)."""
    if trainer.get("numProcPerNode"):
        return str(trainer["numProcPerNode"])
    resources = trainer.get("resourcesPerNode") or container.get("resources") or {}
    limits = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
    gpus = int(str(limits.get("nvidia.com/gpu") or 0))
    if gpus:
        return str(gpus)
    cpu = str(limits.get("cpu") or "0")
    cores = int(cpu[:-1]) // 1000 if cpu.endswith("m") else int(float(cpu))
    return str(max(1, cores))


def _merge_named(items: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A strategic merge of lists keyed by name: an entry of ``extra`` replaces the one of its name."""
    names = {e.get("name") for e in extra}
    return [e for e in items if e.get("name") not in names] + copy.deepcopy(extra)


def _patch_pod_spec(pspec: dict[str, Any], patch: dict[str, Any]) -> None:
    """The pod fields a runtime patch may set (Trainer v2.3's PodSpecPatch), merged as the controller
    merges them: containers and init containers by name (their env and volumeMounts by name too),
    volumes by name, lists such as tolerations appended, the rest set."""
    for key in ("containers", "initContainers"):
        for cpatch in patch.get(key) or []:
            target = next((c for c in pspec.get(key) or [] if c.get("name") == cpatch.get("name")), None)
            if target is None:
                continue  # the patch names a container the runtime does not have
            for field in ("env", "volumeMounts"):
                if cpatch.get(field):
                    target[field] = _merge_named(target.get(field) or [], cpatch[field])
            if cpatch.get("securityContext"):
                target["securityContext"] = copy.deepcopy(cpatch["securityContext"])
    if patch.get("volumes"):
        pspec["volumes"] = _merge_named(pspec.get("volumes") or [], patch["volumes"])
    for key in ("tolerations", "imagePullSecrets", "schedulingGates"):
        if patch.get(key):
            pspec[key] = [*(pspec.get(key) or []), *copy.deepcopy(patch[key])]
    for key in ("serviceAccountName", "securityContext", "nodeSelector", "affinity"):
        if patch.get(key):
            pspec[key] = copy.deepcopy(patch[key])


def _merge_metadata(meta: dict[str, Any], patch: dict[str, Any] | None) -> None:
    for key in ("labels", "annotations"):
        if (patch or {}).get(key):
            meta[key] = {**(meta.get(key) or {}), **patch[key]}  # type: ignore[index]


def _apply_runtime_patches(job: Obj, rjobs: list[dict[str, Any]]) -> None:
    """``spec.runtimePatches`` in order, on the replicated jobs they name (a JobSet-level metadata patch
    has no JobSet to land on here)."""
    for patch in (job.get("spec") or {}).get("runtimePatches") or []:
        template = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
        for rpatch in template.get("replicatedJobs") or []:
            rjob = next((r for r in rjobs if r.get("name") == rpatch.get("name")), None)
            if rjob is None:
                continue
            jpatch = rpatch.get("template") or {}
            _merge_metadata(rjob["template"].setdefault("metadata", {}), jpatch.get("metadata"))
            ppatch = (jpatch.get("spec") or {}).get("template") or {}
            pod_tmpl = rjob["template"]["spec"]["template"]
            _merge_metadata(pod_tmpl.setdefault("metadata", {}), ppatch.get("metadata"))
            _patch_pod_spec(pod_tmpl["spec"], ppatch.get("spec") or {})


class TrainJobController(Controller):
    name = "trainjobs"
    kinds = (TRAINJOB,)
    owns = (POD,)

    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[str, int] = {}
        self.failures: dict[tuple[str, str], int] = {}  # (trainjob uid, replicated job) -> failed pods

    def runtime_of(self, job: Obj) -> Obj | None:
        kind, name = runtime_ref(job)
        if kind == "TrainingRuntime":
            return self.ctx.get(TRAININGRUNTIME, job["metadata"]["namespace"], name)
        return self.ctx.get(CLUSTERTRAININGRUNTIME, "", name)

    def _replicated_jobs(self, job: Obj, runtime: Obj) -> list[dict[str, Any]]:
        """The runtime's replicated jobs with the TrainJob's trainer overrides applied (torch plugin)."""
        spec, rspec = job.get("spec") or {}, runtime.get("spec") or {}
        trainer = spec.get("trainer") or {}
        policy = rspec.get("mlPolicy") or {}
        rjobs = copy.deepcopy(((rspec.get("template") or {}).get("spec") or {}).get("replicatedJobs") or [])
        uid = job["metadata"]["uid"]
        for rjob in rjobs:
            tmpl = rjob.setdefault("template", {})
            jspec = tmpl.setdefault("spec", {})
            pod_tmpl = jspec.setdefault("template", {})
            pspec = pod_tmpl.setdefault("spec", {})
            pspec.setdefault("restartPolicy", "OnFailure")
            is_trainer = ((tmpl.get("metadata") or {}).get("labels") or {}).get(ANCESTOR_LABEL) == "trainer"
            rjob["_count"] = int(jspec.get("parallelism") or 1)
            if not is_trainer:
                continue
            rjob["_count"] = int(trainer.get("numNodes") or policy.get("numNodes") or 1)
            for container in pspec.get("containers") or []:
                if container.get("name") != NODE:
                    continue
                for key in ("image", "command", "args"):
                    if trainer.get(key) is not None:
                        container[key] = copy.deepcopy(trainer[key])
                if trainer.get("resourcesPerNode"):
                    container["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
                env = _upsert_env(container.get("env") or [], copy.deepcopy(trainer.get("env") or []))
                if "torch" in policy:
                    if uid not in self.ports:
                        self.ports[uid] = self.ctx.free_port()
                    env = _upsert_env(
                        env,
                        [
                            {"name": "PET_NNODES", "value": str(rjob["_count"])},
                            {"name": "PET_NPROC_PER_NODE", "value": _proc_per_node(trainer, container)},
                            {
                                "name": "PET_NODE_RANK",
                                "valueFrom": {
                                    "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}
                                },
                            },
                            {"name": "PET_MASTER_ADDR", "value": "127.0.0.1"},
                            {"name": "PET_MASTER_PORT", "value": str(self.ports[uid])},
                        ],
                    )
                container["env"] = env
        _apply_runtime_patches(job, rjobs)
        return rjobs

    def _recover_port(self, job: Obj, pods: list[Obj]) -> None:
        """After a runtime restart, a replacement pod must meet its peers on the port they already use."""
        uid = job["metadata"]["uid"]
        for pod in pods:
            for container in (pod.get("spec") or {}).get("containers") or []:
                for env in container.get("env") or []:
                    if uid not in self.ports and env.get("name") == "PET_MASTER_PORT" and env.get("value"):
                        self.ports[uid] = int(env["value"])

    def _pod_body(self, job: Obj, rjob: dict[str, Any], index: int) -> Obj:
        name = job["metadata"]["name"]
        tmpl = rjob["template"]
        pod_tmpl = copy.deepcopy(tmpl["spec"]["template"])
        pmeta = pod_tmpl.get("metadata") or {}
        labels = {
            **((tmpl.get("metadata") or {}).get("labels") or {}),
            **(pmeta.get("labels") or {}),
            JOBSET_NAME_LABEL: name,
            REPLICATED_JOB_LABEL: rjob["name"],
            "jobset.sigs.k8s.io/job-index": "0",
            COMPLETION_INDEX: str(index),
        }
        annotations = {**(pmeta.get("annotations") or {}), COMPLETION_INDEX: str(index)}
        pspec = pod_tmpl.get("spec") or {}
        for container in pspec.get("containers") or []:
            container["env"] = _upsert_env(
                container.get("env") or [], [{"name": "JOB_COMPLETION_INDEX", "value": str(index)}]
            )
        pspec["hostname"] = f"{name}-{rjob['name']}-0-{index}"
        pspec["subdomain"] = name
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pspec["hostname"], "labels": labels, "annotations": annotations},
            "spec": pspec,
        }

    async def reconcile(self, req: Request) -> float | None:
        job = self.ctx.get(TRAINJOB, req.namespace, req.name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return None
        spec = job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        if _is_true(status, "Complete") or _is_true(status, "Failed"):
            self._forget(job)
            return self._stop_after_failure(job, status)
        pods = self.ctx.owned(POD, job)
        if spec.get("suspend"):
            for pod in pods:
                self.ctx.delete(POD, req.namespace, pod["metadata"]["name"])
            _set(status, _condition("Suspended", "Suspended", "TrainJob is suspended"))
            for entry in status.get("jobsStatus") or []:
                entry.update(active=0, ready=0, suspended=1)
            self._write(job, status)
            return None
        if _is_true(status, "Suspended"):
            _set(status, _condition("Suspended", "Resumed", "TrainJob is resumed", status="False"))
        runtime = self.runtime_of(job)
        if runtime is None:
            kind, name = runtime_ref(job)
            self.ctx.event(
                job, "RuntimeNotFound", f"{kind} {name!r} not found", "Warning", component=CONTROLLER
            )
            return 2.0
        deadline = spec.get("activeDeadlineSeconds")
        started = next(
            (c["lastTransitionTime"] for c in status.get("conditions") or [] if c.get("reason") == "Resumed"),
            job["metadata"].get("creationTimestamp") or now_iso(),
        )
        if deadline and seconds_since(started) >= float(deadline):
            for pod in pods:
                self.ctx.delete(POD, req.namespace, pod["metadata"]["name"])
            _set(status, _condition(*DEADLINE))
            self.ctx.event(job, DEADLINE[1], DEADLINE[2], "Warning", component=CONTROLLER)
            self._write(job, status)
            return None
        by_name = {p["metadata"]["name"]: p for p in pods}
        self._recover_port(job, pods)
        rjobs = self._replicated_jobs(job, runtime)
        done: set[str] = set()
        ready: set[str] = set()  # replicated jobs whose pods all run or finished (dependsOn status Ready)
        failed = False
        jobs_status = []
        for rjob in rjobs:
            entry, ok, bad = self._run_replicated_job(job, rjob, by_name, done, ready)
            jobs_status.append(entry)
            failed = failed or bad
            if ok:
                done.add(rjob["name"])
            if ok or entry["ready"]:
                ready.add(rjob["name"])
        status["jobsStatus"] = jobs_status
        if failed:
            _set(status, _condition(*FAILED))
            self.ctx.event(job, FAILED[1], FAILED[2], "Warning", component=CONTROLLER)
        elif rjobs and len(done) == len(rjobs):
            _set(status, _condition(*COMPLETE))
            self.ctx.event(job, COMPLETE[1], COMPLETE[2], component=CONTROLLER)
        self._write(job, status)
        if _is_true(status, "Complete") or _is_true(status, "Failed"):
            self._forget(job)
            return self._stop_after_failure(job, status)
        return max(float(deadline) - seconds_since(started), 0.1) if deadline else None

    def _stop_after_failure(self, job: Obj, status: dict[str, Any]) -> float | None:
        """A failed Job stops its running pods (a crash-looping node, nodes waiting for it):
        STOP_AFTER_FAILURE seconds after Failed, so a client that sees Failed can still read their logs.
        Finished pods stay, with their logs."""
        failed = next((c for c in status.get("conditions") or [] if c.get("type") == "Failed"), None)
        if failed is None or failed.get("status") != "True":
            return None
        left = STOP_AFTER_FAILURE - seconds_since(failed.get("lastTransitionTime") or now_iso())
        if left > 0:
            return left
        for pod in self.ctx.owned(POD, job):
            if (pod.get("status") or {}).get("phase") in (None, "Pending", "Running"):
                self.ctx.delete(POD, job["metadata"]["namespace"], pod["metadata"]["name"])
        return None

    def _run_replicated_job(
        self, job: Obj, rjob: dict[str, Any], by_name: dict[str, Obj], done: set[str], ready: set[str]
    ) -> tuple[dict[str, Any], bool, bool]:
        """Create what is missing of one replicated job once what it ``dependsOn`` is Complete (or Ready);
        its jobsStatus entry, whether it succeeded, whether it failed."""
        ns, uid = job["metadata"]["namespace"], job["metadata"]["uid"]
        entry = {"name": rjob["name"], "ready": 0, "succeeded": 0, "failed": 0, "active": 0, "suspended": 0}
        waiting = [
            d.get("name")
            for d in rjob.get("dependsOn") or []
            if d.get("name") not in (ready if d.get("status") == "Ready" else done)
        ]
        if waiting:
            return entry, False, False
        jspec = rjob["template"]["spec"]
        backoff = int(jspec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))
        never = jspec["template"]["spec"].get("restartPolicy") == "Never"
        key = (uid, rjob["name"])
        phases, restarts = [], 0
        for index in range(rjob["_count"]):
            body = self._pod_body(job, rjob, index)
            pod = by_name.get(body["metadata"]["name"])
            if pod is None:
                pod = self.ctx.create(POD, body, namespace=ns, owner=job)
                self.ctx.event(
                    job, "SuccessfulCreate", f"Created pod: {body['metadata']['name']}", component=CONTROLLER
                )
            if pod["metadata"].get("deletionTimestamp"):
                phases.append("Pending")  # a replaced pod on its way out
                continue
            pstatus = pod.get("status") or {}
            phase = pstatus.get("phase") or "Pending"
            if phase == "Failed" and never and self.failures.get(key, 0) < backoff:
                # a Job replaces a failed pod until backoffLimit: this one goes, a new one comes next pass
                self.failures[key] = self.failures.get(key, 0) + 1
                self.ctx.delete(POD, ns, pod["metadata"]["name"])
                phase = "Pending"
            restarts += sum(int(c.get("restartCount", 0)) for c in pstatus.get("containerStatuses") or [])
            phases.append(phase)
        if "Failed" in phases or self.failures.get(key, 0) + restarts > backoff:
            entry["failed"] = 1
            return entry, False, True
        if phases and all(p == "Succeeded" for p in phases):
            entry["succeeded"] = 1
            return entry, True, False
        entry["active"] = 1
        entry["ready"] = int(all(p in ("Running", "Succeeded") for p in phases))
        return entry, False, False

    def _forget(self, job: Obj) -> None:
        uid = job["metadata"]["uid"]
        self.ports.pop(uid, None)
        for key in [k for k in self.failures if k[0] == uid]:
            del self.failures[key]

    def _write(self, job: Obj, status: dict[str, Any]) -> None:
        if status != (job.get("status") or {}):
            self.ctx.set_status(TRAINJOB, job, status)


#: The ClusterTrainingRuntime ``local up`` installs when none of that name exists, shaped as Kubeflow
#: Trainer v2.3's ``torch-distributed`` (its image maps to the trainer environment, which has torch).
TORCH_DISTRIBUTED: Obj = {
    "apiVersion": "trainer.kubeflow.org/v1alpha1",
    "kind": "ClusterTrainingRuntime",
    "metadata": {"name": "torch-distributed", "labels": {"trainer.kubeflow.org/framework": "torch"}},
    "spec": {
        "mlPolicy": {"numNodes": 1, "torch": {}},
        "template": {
            "spec": {
                "replicatedJobs": [
                    {
                        "name": NODE,
                        "template": {
                            "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                            "spec": {
                                "template": {
                                    "spec": {
                                        "containers": [
                                            {
                                                "name": NODE,
                                                "image": "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime",
                                            }
                                        ]
                                    }
                                }
                            },
                        },
                    }
                ]
            }
        },
    },
}


#: Where Trainer's control plane lives, and its public ConfigMap there (the ``kubeflow`` SDK's
#: TrainerClient reads the control plane's version from it, and warns when it is missing).
SYSTEM_NAMESPACE = "kubeflow-system"
PUBLIC_CONFIGMAP: Obj = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "kubeflow-trainer-public", "labels": {"app.kubernetes.io/name": "trainer"}},
    "data": {"kubeflow_trainer_version": "v2.3.0"},
}


def _node_image(runtime_obj: Obj) -> str:
    """The image of the runtime's trainer node container ("" when it names none)."""
    for rjob in ((runtime_obj.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "replicatedJobs"
    ) or []:
        pod = (((rjob.get("template") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or []:
            if container.get("name") == NODE:
                return str(container.get("image") or "")
    return ""


def install(runtime: Any) -> None:
    """Add Kubeflow Trainer to a runtime: the TrainJob controller, the webhook's rules (the runtime must
    exist), the default ``torch-distributed`` ClusterTrainingRuntime and the public ConfigMap."""
    from kubeflow_bridge.resources.errors import FieldCause, ValidationError
    from kubeflow_bridge.resources.trainjob import KIND, validate_trainjob

    def validate(obj: Obj, old: Obj | None) -> None:
        validate_trainjob(obj)
        kind, name = runtime_ref(obj)
        rt = TRAININGRUNTIME if kind == "TrainingRuntime" else CLUSTERTRAININGRUNTIME
        namespace = obj["metadata"].get("namespace", "") if rt.namespaced else ""
        if old is not None:
            return
        found = runtime.store.find(rt, namespace, name)
        if found is None:
            camel = kind[0].lower() + kind[1:]
            message = (
                f'{rt.plural}.{rt.group} "{name}" not found: specified {camel} must be created before the '
                f"TrainJob is created (`kubectl get {rt.plural}` lists them)"
            )
            raise ValidationError(
                KIND, obj["metadata"].get("name", ""), [FieldCause("spec.runtimeRef", message)]
            )
        # This runtime's own limit: each node runs in the local environment its image maps to.
        image = ((obj.get("spec") or {}).get("trainer") or {}).get("image") or _node_image(found)
        if image:
            try:
                runtime.ctx.images.rule_for(image)
            except UnknownImage as err:
                raise ValidationError(
                    KIND, obj["metadata"].get("name", ""), [FieldCause("spec.trainer.image", str(err))]
                ) from None

    runtime.admission.validators[TRAINJOB.key] = validate
    runtime.admission.webhooks[TRAINJOB.key] = "validator.trainjob.trainer.kubeflow.org"
    runtime.manager.add(TrainJobController())
    if runtime.store.find(CLUSTERTRAININGRUNTIME, "", TORCH_DISTRIBUTED["metadata"]["name"]) is None:
        runtime.store.create(CLUSTERTRAININGRUNTIME, copy.deepcopy(TORCH_DISTRIBUTED))
    if runtime.store.find(NAMESPACE, "", SYSTEM_NAMESPACE) is None:
        runtime.store.create(NAMESPACE, {"metadata": {"name": SYSTEM_NAMESPACE}})
    if runtime.store.find(CONFIGMAP, SYSTEM_NAMESPACE, PUBLIC_CONFIGMAP["metadata"]["name"]) is None:
        runtime.store.create(CONFIGMAP, copy.deepcopy(PUBLIC_CONFIGMAP), SYSTEM_NAMESPACE)
