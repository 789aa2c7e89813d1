"""Pod controller: each container runs as a local process in the environment its image maps to.

Phases Pending -> Running -> Succeeded/Failed, containerStatuses with exit codes and reasons, logs per
container (``<state>/logs/<ns>/<pod>/<container>.log``), restartPolicy (Always/OnFailure restart with
a short backoff; the previous run's log is kept as ``<container>.previous.log``), deletion kills the
process group. Init containers are not supported (a clear pod failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from kubeflow_bridge.local.apiserver.kinds import CONFIGMAP, POD, SECRET, ResourceType
from kubeflow_bridge.local.apiserver.store import Obj, now_iso
from kubeflow_bridge.local.controllers.base import Controller, Request
from kubeflow_bridge.local.images import UnknownImage
from kubeflow_bridge.local.paths import confined
from kubeflow_bridge.local.processes import ManagedProcess, times_path

BASE_ENV_KEYS = ("HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ", "PYTHONDONTWRITEBYTECODE")
RESTART_BACKOFF = (1.0, 2.0, 4.0, 8.0, 10.0)
# An unknown image shows ErrImagePull, then ImagePullBackOff, then the pod fails (a real kubelet
# would retry forever; failing lets jobs and operators above report it).
PULL_BACKOFF_AFTER = 1.0
PULL_FAIL_AFTER = 3.0


class ContainerConfigError(Exception):
    """The container cannot be configured (missing secret key, unsupported env source)."""


@dataclass
class PodRun:
    uid: str
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    pull_failed_at: float = 0.0
    started: bool = False  # once started, exit watchers own the pod's status (restarts included)


def gpu_request(pod: Obj) -> int:
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        for part in ("limits", "requests"):
            v = (res.get(part) or {}).get("nvidia.com/gpu")
            if v is not None:
                with contextlib.suppress(ValueError):
                    total = max(total, int(str(v)))
    return total


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion (``$$`` escapes)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


class PodController(Controller):
    name = "pods"
    kinds = (POD,)

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, PodRun] = {}
        #: ``/_admin/crash-pods``: (pod name regex, exit code, message), or None.
        self.crash_rule: tuple[re.Pattern[str], int, str] | None = None

    # --- helpers -------------------------------------------------------------------------------
    def _conditions(
        self, ready: bool, scheduled: bool = True, sched_reason: str = "", sched_msg: str = ""
    ) -> list[dict[str, Any]]:
        ts = now_iso()
        sched: dict[str, Any] = {
            "type": "PodScheduled",
            "status": "True" if scheduled else "False",
            "lastTransitionTime": ts,
        }
        if not scheduled:
            sched.update({"reason": sched_reason, "message": sched_msg})
            return [sched]
        r = "True" if ready else "False"
        return [
            {"type": "Initialized", "status": "True", "lastTransitionTime": ts},
            {"type": "Ready", "status": r, "lastTransitionTime": ts},
            {"type": "ContainersReady", "status": r, "lastTransitionTime": ts},
            sched,
        ]

    def _lookup_key(self, rt: ResourceType, ns: str, ref: dict[str, Any], what: str) -> str | None:
        obj = self.ctx.get(rt, ns, ref.get("name", ""))
        optional = bool(ref.get("optional"))
        if obj is None:
            if optional:
                return None
            raise ContainerConfigError(f'{what} "{ref.get("name")}" not found')
        key = ref.get("key", "")
        if rt is SECRET:
            import base64

            data = obj.get("data") or {}
            if key in data:
                return base64.b64decode(data[key]).decode()
            if key in (obj.get("stringData") or {}):
                return str(obj["stringData"][key])
        elif key in (obj.get("data") or {}):
            return str(obj["data"][key])
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {what} {ns}/{ref.get('name')}")

    def container_env(self, pod: Obj, c: dict[str, Any], overlay: dict[str, str]) -> dict[str, str]:
        meta = pod["metadata"]
        ns = meta["namespace"]
        env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
        # The runtime's own settings (KUBECONFIG plays the mounted ServiceAccount token), not its S3
        # credentials: a pod gets those only as it asks, e.g. envFrom the namespace's storage Secret.
        env.update({k: v for k, v in self.ctx.runtime_env().items() if not k.startswith("AWS_")})
        env["HOSTNAME"] = meta["name"]
        env.update(overlay)
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for key, rt, what in (("configMapRef", CONFIGMAP, "configmap"), ("secretRef", SECRET, "secret")):
                ref = src.get(key)
                if not ref:
                    continue
                obj = self.ctx.get(rt, ns, ref.get("name", ""))
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise ContainerConfigError(f'{what} "{ref.get("name")}" not found')
                data = dict(obj.get("data") or {})
                if rt is SECRET:
                    import base64

                    data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                    data.update(obj.get("stringData") or {})
                env.update({prefix + k: str(v) for k, v in data.items()})
        for e in c.get("env") or []:
            name = e["name"]
            if "valueFrom" not in e:
                env[name] = _expand(str(e.get("value", "")), env)
                continue
            vf = e["valueFrom"] or {}
            value: str | None
            if "secretKeyRef" in vf:
                value = self._lookup_key(SECRET, ns, vf["secretKeyRef"], "secret")
            elif "configMapKeyRef" in vf:
                value = self._lookup_key(CONFIGMAP, ns, vf["configMapKeyRef"], "configmap")
            elif "fieldRef" in vf:
                value = self._field_ref(pod, str((vf["fieldRef"] or {}).get("fieldPath", "")))
            else:
                raise ContainerConfigError(
                    f"env {name}: valueFrom {sorted(vf)} is not supported locally (use value, secretKeyRef, configMapKeyRef or fieldRef)"
                )
            if value is not None:
                env[name] = value
        return env

    def _field_ref(self, pod: Obj, path: str) -> str:
        meta = pod["metadata"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta.get("uid", ""),
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
            "spec.nodeName": "localhost",
            "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
        }
        if path in simple:
            return str(simple[path])
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        raise ContainerConfigError(f"fieldRef {path!r} is not supported locally")

    def _set_status(self, pod: Obj, status: dict[str, Any]) -> Obj:
        return self.ctx.set_status(POD, pod, status)

    # --- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, req: Request) -> float | None:
        pod = self.ctx.get(POD, req.namespace, req.name)
        if pod is None:
            return None
        uid = pod["metadata"]["uid"]
        run = self.runs.get(uid)
        if pod["metadata"].get("deletionTimestamp"):
            if run is not None:
                await self._kill(run, "Deleted")
            return None
        status = pod.get("status") or {}
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            return None
        if run is not None and run.started:
            return None  # running or restarting; the exit watchers update status
        if phase == "Running" and run is None:
            # The runtime restarted while this pod ran: its processes are gone.
            return await self._lost(pod)
        return await self._start(pod)

    async def _lost(self, pod: Obj) -> float | None:
        status = pod.get("status") or {}
        restart = (pod.get("spec") or {}).get("restartPolicy", "Always")
        css = status.get("containerStatuses") or []
        for cs in css:
            if "running" in (cs.get("state") or {}):
                cs["state"] = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "Error",
                        "message": "the local runtime restarted while the container ran",
                        "finishedAt": now_iso(),
                    }
                }
                cs["ready"] = False
        if restart == "Never":
            status.update({"phase": "Failed", "reason": "RuntimeRestarted", "containerStatuses": css})
            self._set_status(pod, status)
            self.ctx.event(
                pod, "RuntimeRestarted", "the local runtime restarted while the pod ran", "Warning"
            )
            return None
        status["phase"] = "Pending"
        self._set_status(pod, status)
        return 0.1

    async def _start(self, pod: Obj) -> float | None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        run = self.runs.setdefault(uid, PodRun(uid))
        status = pod.get("status") or {}
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", "BestEffort")
        if spec.get("initContainers"):
            self._fail(
                pod, "InitContainersUnsupported", "init containers are not supported by the local runtime"
            )
            return None
        want_gpu = gpu_request(pod)
        if want_gpu > self.ctx.gpu_count:
            msg = (
                f"0/1 nodes are available: 1 Insufficient nvidia.com/gpu (the pod requests {want_gpu} GPU(s); "
                f"this machine has {self.ctx.gpu_count})."
            )
            already = any(c.get("reason") == "Unschedulable" for c in status.get("conditions") or [])
            status["conditions"] = self._conditions(False, False, "Unschedulable", msg)
            self._set_status(pod, status)
            if not already:
                self.ctx.event(pod, "FailedScheduling", msg, "Warning", "default-scheduler")
            return None
        containers = spec.get("containers") or []
        resolved: dict[str, tuple[str, dict[str, str]]] = {}
        bad: list[tuple[str, str, str]] = []
        for c in containers:
            try:
                resolved[c["name"]] = self.ctx.image_env(c["image"])
            except UnknownImage as e:
                bad.append((c["name"], c["image"], str(e)))
        if bad:
            now = time.monotonic()
            run.pull_failed_at = run.pull_failed_at or now
            elapsed = now - run.pull_failed_at
            reason = "ErrImagePull" if elapsed < PULL_BACKOFF_AFTER else "ImagePullBackOff"
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {
                        "waiting": {
                            "reason": reason,
                            "message": next((m for n, _, m in bad if n == c["name"]), ""),
                        }
                    }
                    if any(n == c["name"] for n, _, _ in bad)
                    else {"waiting": {"reason": "ContainerCreating"}},
                }
                for c in containers
            ]
            status["conditions"] = self._conditions(False)
            if elapsed >= PULL_FAIL_AFTER:
                status.update({"phase": "Failed", "reason": reason, "message": bad[0][2]})
                self._set_status(pod, status)
                self.runs.pop(uid, None)
                return None
            self._set_status(pod, status)
            self.ctx.event(
                pod, "Failed", f'Failed to pull image "{bad[0][1]}": {bad[0][2]}', "Warning", "kubelet"
            )
            next_step = PULL_BACKOFF_AFTER if elapsed < PULL_BACKOFF_AFTER else PULL_FAIL_AFTER
            return max(next_step - elapsed, 0.05)
        envs: dict[str, dict[str, str]] = {}
        try:
            for c in containers:
                envs[c["name"]] = self.container_env(pod, c, resolved[c["name"]][1])
        except ContainerConfigError as e:
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}},
                }
                for c in containers
            ]
            status["conditions"] = self._conditions(False)
            self._set_status(pod, status)
            self.ctx.event(pod, "Failed", f"Error: {e}", "Warning", "kubelet")
            return 2.0
        self.ctx.event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to localhost",
            component="default-scheduler",
        )
        css = []
        for c in containers:
            try:
                mp = await self._spawn(pod, c, resolved[c["name"]][0], envs[c["name"]])
            except (OSError, ContainerConfigError) as e:
                await self._kill(run, "StartError")
                self._fail(
                    pod,
                    "StartError",
                    f'container "{c["name"]}": cannot start: {e}',
                    container=c["name"],
                    exit_code=128,
                )
                return None
            run.procs[c["name"]] = mp
            run.started = True
            css.append(self._running_status(c, run.restarts.get(c["name"], 0)))
            self.ctx.event(pod, "Started", f"Started container {c['name']}", component="kubelet")
        ts = now_iso()
        status.update(
            {
                "phase": "Running",
                "conditions": self._conditions(True),
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "startTime": status.get("startTime") or ts,
                "containerStatuses": css,
            }
        )
        self._set_status(pod, status)
        for name, mp in run.procs.items():
            run.tasks.append(asyncio.get_running_loop().create_task(self._watch_exit(pod, name, mp)))
        return None

    def _running_status(self, c: dict[str, Any], restarts: int) -> dict[str, Any]:
        return {
            "name": c["name"],
            "image": c["image"],
            "imageID": f"local://{c['image']}",
            "containerID": "",
            "ready": True,
            "started": True,
            "restartCount": restarts,
            "state": {"running": {"startedAt": now_iso()}},
        }

    async def _spawn(self, pod: Obj, c: dict[str, Any], python: str, env: dict[str, str]) -> ManagedProcess:
        meta = pod["metadata"]
        command = [_expand(a, env) for a in (c.get("command") or [])]
        args = [_expand(a, env) for a in (c.get("args") or [])]
        rule = self.ctx.images.rule_for(c["image"])
        argv = rule.argv(command, args, env.get("PATH", ""))
        if self.crash_rule is not None and self.crash_rule[0].search(meta["name"]):
            _pattern, code, message = self.crash_rule
            argv = ["python", "-c", f"import sys; print({message!r}, file=sys.stderr); sys.exit({code})"]
        if argv[0] in ("python", "python3"):
            argv[0] = python
        workdir = c.get("workingDir")
        if workdir:
            os.makedirs(workdir, exist_ok=True)
        else:
            wd = confined(self.ctx.state_dir / "pods", meta["namespace"], meta["name"])
            wd.mkdir(parents=True, exist_ok=True)
            workdir = str(wd)
        log_path = self.ctx.pod_log_path(meta["namespace"], meta["name"], c["name"])
        if log_path.exists() and log_path.stat().st_size:
            previous = log_path.with_name(f"{c['name']}.previous.log")
            log_path.replace(previous)
            if times_path(log_path).exists():
                times_path(log_path).replace(times_path(previous))
        return await self.ctx.processes.spawn(
            f"pod {meta['namespace']}/{meta['name']} container {c['name']}",
            argv,
            env=env,
            cwd=workdir,
            log_path=log_path,
            python=python,
            preload=rule.preload,
        )

    async def _watch_exit(self, pod: Obj, container: str, mp: ManagedProcess) -> None:
        code = await mp.wait()
        meta = pod["metadata"]
        uid = meta["uid"]
        run = self.runs.get(uid)
        if run is None or run.procs.get(container) is not mp:
            return
        del run.procs[container]
        current = self.ctx.get(POD, meta["namespace"], meta["name"])
        if (
            current is None
            or current["metadata"]["uid"] != uid
            or current["metadata"].get("deletionTimestamp")
        ):
            return
        exit_code = code if code >= 0 else 128 - code
        if mp.killed_by in ("Deleted", "Shutdown"):
            return
        reason = "Completed" if exit_code == 0 else "Error"
        status = current.get("status") or {}
        css = status.get("containerStatuses") or []
        restart_policy = (current.get("spec") or {}).get("restartPolicy", "Always")
        restart = restart_policy == "Always" or (restart_policy == "OnFailure" and exit_code != 0)
        for cs in css:
            if cs.get("name") != container:
                continue
            started = ((cs.get("state") or {}).get("running") or {}).get("startedAt")
            term = {
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": started,
                "finishedAt": now_iso(),
                "containerID": "",
            }
            if code < 0:
                term["signal"] = -code
                term["message"] = (
                    f"killed by signal {signal.Signals(-code).name}"
                    if -code in signal.valid_signals()
                    else ""
                )
            cs["ready"] = False
            cs["started"] = False
            if restart:
                cs["lastState"] = {"terminated": term}
                cs["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff" if exit_code else "Completed",
                        "message": "back-off restarting the container",
                    }
                }
            else:
                cs["state"] = {"terminated": term}
        status["containerStatuses"] = css
        status["conditions"] = self._conditions(False)
        if exit_code != 0:
            self.ctx.event(
                current,
                "BackOff" if restart else "Failed",
                f"container {container} exited with code {exit_code}",
                "Warning",
                "kubelet",
            )
        if restart:
            n = run.restarts.get(container, 0)
            run.restarts[container] = n + 1
            self._set_status(current, status)
            await asyncio.sleep(RESTART_BACKOFF[min(n, len(RESTART_BACKOFF) - 1)])
            await self._restart(current["metadata"]["namespace"], current["metadata"]["name"], uid, container)
            return
        if not run.procs:
            terms = [(cs.get("state") or {}).get("terminated") or {} for cs in css]
            failed = [t for t in terms if t.get("exitCode", 1) != 0]
            status["phase"] = "Failed" if failed else "Succeeded"
            self.runs.pop(uid, None)
        self._set_status(current, status)

    async def _restart(self, ns: str, name: str, uid: str, container: str) -> None:
        pod = self.ctx.get(POD, ns, name)
        run = self.runs.get(uid)
        if (
            pod is None
            or run is None
            or pod["metadata"]["uid"] != uid
            or pod["metadata"].get("deletionTimestamp")
        ):
            return
        c = next(c for c in pod["spec"]["containers"] if c["name"] == container)
        try:
            python, overlay = self.ctx.image_env(c["image"])
            mp = await self._spawn(pod, c, python, self.container_env(pod, c, overlay))
        except (OSError, UnknownImage, ContainerConfigError) as e:
            self._fail(pod, "StartError", str(e), container=container, exit_code=128)
            return
        run.procs[container] = mp
        status = pod.get("status") or {}
        css = [
            self._running_status(c, run.restarts.get(container, 0)) | {"lastState": cs.get("lastState", {})}
            if cs.get("name") == container
            else cs
            for cs in status.get("containerStatuses") or []
        ]
        status.update(
            {
                "phase": "Running",
                "containerStatuses": css,
                "conditions": self._conditions(all(cs.get("ready") for cs in css)),
            }
        )
        self._set_status(pod, status)
        run.tasks.append(asyncio.get_running_loop().create_task(self._watch_exit(pod, container, mp)))

    def _fail(self, pod: Obj, reason: str, message: str, container: str = "", exit_code: int = 1) -> None:
        status = pod.get("status") or {}
        status.update({"phase": "Failed", "reason": reason, "message": message})
        if container:
            css = status.get("containerStatuses") or []
            for cs in css:
                if cs.get("name") == container:
                    cs["state"] = {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": reason,
                            "message": message,
                            "finishedAt": now_iso(),
                        }
                    }
            status["containerStatuses"] = css
        self._set_status(pod, status)
        self.ctx.event(pod, reason, message, "Warning", "kubelet")
        self.runs.pop(pod["metadata"]["uid"], None)
        return None

    async def _kill(self, run: PodRun, why: str, grace: float = 3.0) -> None:
        procs = list(run.procs.values())
        await asyncio.gather(*(mp.terminate(grace, why) for mp in procs))
        for t in run.tasks:
            if not t.done():
                t.cancel()

    async def on_deleted(self, rt: ResourceType, obj: Obj) -> None:
        run = self.runs.pop(obj["metadata"]["uid"], None)
        if run is not None:
            grace = float((obj.get("spec") or {}).get("terminationGracePeriodSeconds") or 3)
            await self._kill(run, "Deleted", min(grace, 10.0))

    async def stop(self) -> None:
        for run in list(self.runs.values()):
            for mp in run.procs.values():
                mp.killed_by = "Shutdown"
        await asyncio.gather(*(self._kill(r, "Shutdown", 2.0) for r in list(self.runs.values())))

    async def admin_crash(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_admin/crash-pods {"name_pattern", "exit_code"?, "message"?}``: a fault for failures
        valid input cannot cause. Containers of pods whose name matches the regex start (and restart)
        as a process that prints ``message`` to stderr and exits ``exit_code``, as a replica that
        crashes on start; ``{"name_pattern": ""}`` turns it off."""
        from kubeflow_bridge.local.apiserver import errors as apierrors

        pattern = str(body.get("name_pattern") or "")
        try:
            compiled, code = re.compile(pattern), int(body.get("exit_code", 1))
        except (re.error, TypeError, ValueError) as e:
            raise apierrors.bad_request(f"crash-pods: {e}") from None
        if code == 0:
            raise apierrors.bad_request("crash-pods: exit_code 0 is not a crash; use 1-255")
        self.crash_rule = (compiled, code, str(body.get("message", "crashed"))) if pattern else None
        return {"name_pattern": pattern, "exit_code": code}

    async def admin_kill(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_admin/kill-pod {"namespace", "name", "container"?, "signal"?}``: kill a pod's process
        (a fault: the container exits as if it crashed, and restartPolicy applies)."""
        ns, name = body.get("namespace", "default"), body.get("name", "")
        pod = self.ctx.get(POD, ns, name)
        run = self.runs.get(pod["metadata"]["uid"]) if pod else None
        if run is None or not run.procs:
            return {"killed": []}
        sig = int(body.get("signal", signal.SIGKILL))
        killed = []
        for cname, mp in run.procs.items():
            if body.get("container") in (None, cname):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(mp.pid, sig)
                killed.append(cname)
        return {"killed": killed}
