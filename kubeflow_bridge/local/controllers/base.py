"""The controller framework of the local runtime (what every controller plugs into).

How a controller works here (the same model as controller-runtime, level-triggered):

1. **Register for kinds.** Subclass :class:`Controller`, set ``name``, ``kinds`` (the primary
   :class:`~kubeflow_bridge.local.apiserver.kinds.ResourceType` objects it reconciles) and optionally ``owns``
   (kinds it creates; a change to an owned object whose ``ownerReferences`` names an object of one of
   ``kinds`` enqueues that owner). Register it with ``runtime.manager.add(MyController())`` in the
   component's ``install(runtime)`` (``katib/controller.py``, ``kserve/controller.py``), called from
   :meth:`kubeflow_bridge.local.daemon.Runtime._install_components`, which lists every controller.
   Kinds come from :mod:`kubeflow_bridge.local.apiserver.kinds` (``POD``, ``JOB``, ``PYTORCHJOB``, ``EXPERIMENT``,
   ``TRIAL``, ``SUGGESTION``, ``INFERENCESERVICE``, ``EVENT``, ...).

2. **Receive events.** The manager keeps one work queue per controller. Every ADDED/MODIFIED/DELETED
   change of a primary kind (and of owned kinds, mapped to their owner) enqueues a :class:`Request`
   ``(rt, namespace, name)``; duplicates collapse. ``await reconcile(req)`` is called for one request
   at a time per controller (requests of different controllers run concurrently). Read the current
   object with ``self.ctx.get(...)``: ``None`` means it is gone (clean up). Return a number of seconds
   to be called again after that delay (polling, backoff) or None. Exceptions are logged and the request
   is retried with backoff. ``on_deleted(rt, obj)`` is also called with the last state of a deleted
   primary object (e.g. to kill processes). ``start()`` runs once after the manager starts (the store
   already holds the objects persisted before a restart; every existing primary object is enqueued).

3. **Read and write objects and status** through ``self.ctx`` (:class:`ControllerContext`), which talks
   to the store directly (no HTTP), so watchers and other controllers see the changes at once:
   ``get``, ``list(rt, namespace, labels={"k": "v"})``, ``create(rt, body, namespace=, owner=)``,
   ``update`` (PUT, 409 on a stale resourceVersion), ``patch`` (JSON merge patch of the main resource),
   ``patch_status(rt, ns, name, {...})`` (JSON merge patch of ``status``; no resourceVersion check, so
   read-modify-write of lists such as conditions is the caller's job: pass the whole list),
   ``set_status(rt, obj, status)`` (replace ``status`` wholesale), ``delete(rt, ns, name, propagation=)``.
   Status writes keep ``lastTransitionTime`` of conditions whose type and status did not change and are
   skipped when nothing changed, so a reconcile that rewrites the same status settles (no event loop).
   ``create`` runs the same admission (defaults + validation) as the API server and raises
   :class:`~kubeflow_bridge.local.apiserver.errors.ApiError` (e.g. 422 Invalid, 409 AlreadyExists).

4. **Create owned objects.** ``ctx.create(rt, body, namespace=ns, owner=parent)`` adds an
   ``ownerReferences`` entry (controller=true, blockOwnerDeletion=true) to ``parent``; deleting the parent
   cascades to it (Background/Foreground) unless Orphan is asked. Find them again with
   ``ctx.owned(rt, parent)``.

5. **Start processes.** Prefer creating a Pod (``ctx.create(POD, {...}, owner=...)``): the pod controller
   runs its containers as processes (image -> Python environment map, env, logs, exit codes, kill on
   delete). For a process that is not a pod (a proxy, a pipeline runner), use
   ``await ctx.processes.spawn(name, argv, env=..., cwd=..., log_path=...)`` which returns a
   :class:`~kubeflow_bridge.local.processes.ManagedProcess` (``await mp.wait()``, ``await mp.terminate()``);
   it runs in its own process group and is killed on ``local down``. ``ctx.image_env(image)`` resolves an
   image to ``(python_executable, env_overlay)`` or raises ``UnknownImage``; ``ctx.free_port()`` gives a free
   port on 127.0.0.1; ``ctx.state_dir`` is the runtime's state folder (write under ``ctx.state_dir /
   "<your-area>"``); ``ctx.pod_log_path(ns, pod, container)`` is where a container's log lives.
   ``ctx.runtime_env()`` is the env for processes that talk back to the runtime (KUBECONFIG, AWS_*,
   the KFP endpoint, and ``KUBEFLOW_BRIDGE_LOCAL_RUNTIME`` which lets ``local down`` find strays).

6. **Emit events.** ``ctx.event(obj, reason, message, type="Normal"|"Warning")`` records a core/v1 Event
   about ``obj`` (repeats of the same reason+message bump ``count``), visible with ``kubectl get events``.

Time helper: ``now_iso()`` (RFC 3339 seconds, UTC) from :mod:`kubeflow_bridge.local.apiserver.store`.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver import jsonfast
from kubeflow_bridge.local.apiserver.kinds import EVENT, KindRegistry, ResourceType
from kubeflow_bridge.local.apiserver.patch import merge_patch
from kubeflow_bridge.local.apiserver.selectors import parse_label_selector
from kubeflow_bridge.local.apiserver.store import Obj, Store, WatchEvent, now_iso
from kubeflow_bridge.local.images import ImageMap
from kubeflow_bridge.local.paths import confined
from kubeflow_bridge.local.processes import ProcessManager, free_port

if TYPE_CHECKING:
    from kubeflow_bridge.local.apiserver.admission import Admission

log = logging.getLogger("kubeflow_bridge.local.controllers")

__all__ = ["Controller", "ControllerContext", "ControllerManager", "Request", "now_iso"]


@dataclass(frozen=True)
class Request:
    """What to reconcile: one object by type, namespace and name."""

    rt: ResourceType
    namespace: str
    name: str


class ControllerContext:
    """Everything a controller may touch: the store, admission, processes, images, events, ports.

    Args:
        store: The object store.
        admission: Defaults and validation (same as the API server's).
        processes: Starts and tracks local processes.
        images: The image -> environment map.
        state_dir: The runtime's state folder.
        runtime_env: Env for processes that call back into the runtime (KUBECONFIG, AWS_*, KFP endpoint).
    """

    def __init__(
        self,
        store: Store,
        admission: Admission,
        processes: ProcessManager,
        images: ImageMap,
        state_dir: Path,
        runtime_env: dict[str, str] | None = None,
        kinds: KindRegistry | None = None,
    ) -> None:
        self.store = store
        self.admission = admission
        self.processes = processes
        self.images = images
        self.state_dir = state_dir
        self._runtime_env = dict(runtime_env or {})
        self.kinds = kinds or KindRegistry()
        self.manager: ControllerManager | None = None
        self.gpu_count = 0
        self._events: dict[tuple[str, str, str], str] = {}

    # --- reads --------------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        """A deep copy of the object, or None if it does not exist."""
        return self.store.find(rt, namespace, name)

    def list(
        self, rt: ResourceType, namespace: str | None = None, labels: dict[str, str] | str | None = None
    ) -> builtins.list[Obj]:
        """Objects of ``rt`` matching ``labels`` (a dict of equalities or a selector string)."""
        if isinstance(labels, dict):
            labels = ",".join(f"{k}={v}" for k, v in labels.items())
        return self.store.list(rt, namespace, parse_label_selector(labels) if labels else None)

    def owned(self, rt: ResourceType, owner: Obj) -> builtins.list[Obj]:
        """Objects of ``rt`` whose ownerReferences name ``owner``."""
        uid = owner["metadata"]["uid"]
        ns = owner["metadata"].get("namespace")
        return [
            jsonfast.clone(o)
            for o in self.store.list(rt, ns, copy_obj=False)
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]

    # --- writes -------------------------------------------------------------------------------
    def create(self, rt: ResourceType, body: Obj, *, namespace: str, owner: Obj | None = None) -> Obj:
        """Create ``body`` (admission runs first); with ``owner``, the new object is owned by it."""
        body = jsonfast.clone(body)
        meta = body.setdefault("metadata", {})
        meta["namespace"] = namespace
        if owner is not None:
            refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != owner["metadata"]["uid"]]
            refs.append(owner_reference(owner))
            meta["ownerReferences"] = refs
        self.store.assign_generated_name(rt, body, namespace)
        body = self.admission.admit(rt, body, None)
        return self.store.create(rt, body, namespace)

    def update(self, rt: ResourceType, obj: Obj) -> Obj:
        """Replace the object (spec/metadata); 409 Conflict if ``metadata.resourceVersion`` is stale."""
        old = self.store.get(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        obj = self.admission.admit(rt, jsonfast.clone(obj), old)
        return self.store.update(rt, obj)

    def patch(self, rt: ResourceType, namespace: str, name: str, patch: Obj) -> Obj:
        """JSON merge patch of the main resource (no resourceVersion check)."""
        old = self.store.get(rt, namespace, name)
        new = merge_patch(old, patch)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = self.admission.admit(rt, new, old)
        return self.store.update(rt, new)

    def set_status(self, rt: ResourceType, obj: Obj, status: dict[str, Any]) -> Obj:
        """Replace ``status`` of the stored object named by ``obj`` (no resourceVersion check)."""
        current = self.store.get(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        status = keep_transition_times(current.get("status") or {}, status)
        if current.get("status") == status:
            return current  # no write, no event: level-triggered loops settle
        current["status"] = status
        current["metadata"].pop("resourceVersion", None)
        return self.store.update(rt, current, subresource="status")

    def patch_status(self, rt: ResourceType, namespace: str, name: str, patch: dict[str, Any]) -> Obj:
        """JSON merge patch of ``status`` (``None`` values delete keys; lists are replaced)."""
        current = self.store.get(rt, namespace, name)
        status = merge_patch(current.get("status") or {}, patch)
        if current.get("status") == status:
            return current
        current["status"] = status
        current["metadata"].pop("resourceVersion", None)
        return self.store.update(rt, current, subresource="status")

    def delete(
        self, rt: ResourceType, namespace: str, name: str, propagation: str = "Background"
    ) -> Obj | None:
        """Delete (cascading to owned objects); None if it was already gone."""
        try:
            return self.store.delete(rt, namespace, name, propagation=propagation)
        except apierrors.ApiError as e:
            if e.code == 404:
                return None
            raise

    # --- events, processes, helpers -----------------------------------------------------------
    def event(self, obj: Obj, reason: str, message: str, type: str = "Normal", component: str = "") -> None:
        """Record a core/v1 Event about ``obj``."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        # Index of recorded events, so repeats are found without scanning every event (O(1) per call).
        key = (str(meta.get("uid")), reason, message)
        known = self._events.get(key)
        ev = self.store.find(EVENT, ns, known, copy_obj=False) if known else None
        if ev is not None:
            new = jsonfast.clone(ev)
            new["count"] = int(ev.get("count", 1)) + 1
            new["lastTimestamp"] = now_iso()
            new["metadata"].pop("resourceVersion", None)
            self.store.update(EVENT, new)
            return
        ts = now_iso()
        created = self.store.create(
            EVENT,
            {
                "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": ns},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion"),
                    "kind": obj.get("kind"),
                    "name": meta["name"],
                    "namespace": ns,
                    "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "type": type,
                "count": 1,
                "firstTimestamp": ts,
                "lastTimestamp": ts,
                "source": {"component": component or "kubeflow-bridge-local"},
                "reportingComponent": component or "kubeflow-bridge-local",
            },
            ns,
        )
        if len(self._events) > 100_000:
            self._events.clear()
        self._events[key] = created["metadata"]["name"]

    def image_env(self, image: str) -> tuple[str, dict[str, str]]:
        """``(python_executable, env_overlay)`` for an image; raises ``UnknownImage``."""
        return self.images.resolve(image)

    def free_port(self) -> int:
        return free_port()

    def pod_log_path(self, namespace: str, pod: str, container: str) -> Path:
        return confined(self.state_dir / "logs", namespace, pod, f"{container}.log")

    def runtime_env(self) -> dict[str, str]:
        return dict(self._runtime_env)

    def enqueue(self, req: Request, after: float = 0.0) -> None:
        if self.manager is not None:
            self.manager.enqueue(req, after)


def keep_transition_times(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Conditions whose type and status did not change keep their old ``lastTransitionTime``
    (and ``lastProbeTime``), as Kubernetes controllers do; so an unchanged status compares equal."""
    old_conds = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)}
    conds = new.get("conditions")
    if not isinstance(conds, list) or not old_conds:
        return new
    out = []
    for c in conds:
        prev = old_conds.get(c.get("type")) if isinstance(c, dict) else None
        if prev is not None and prev.get("status") == c.get("status"):
            c = dict(c)
            for key in ("lastTransitionTime", "lastProbeTime"):
                if key in prev and key in c:
                    c[key] = prev[key]
        out.append(c)
    return {**new, "conditions": out}


def owner_reference(owner: Obj) -> dict[str, Any]:
    """An ownerReferences entry naming ``owner`` as the controller."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Controller:
    """Base class: set ``name``, ``kinds`` (and ``owns``), implement ``reconcile``."""

    name: str = "controller"
    kinds: tuple[ResourceType, ...] = ()
    owns: tuple[ResourceType, ...] = ()

    def __init__(self) -> None:
        self.ctx: ControllerContext = None  # type: ignore[assignment]  # set by ControllerManager.add

    async def start(self) -> None:
        """Called once when the manager starts."""

    async def stop(self) -> None:
        """Called once at shutdown (kill what you started)."""

    async def reconcile(self, req: Request) -> float | None:
        """Bring the world in line with the object named by ``req``; return a requeue delay or None."""
        raise NotImplementedError

    async def on_deleted(self, rt: ResourceType, obj: Obj) -> None:
        """Called with the last state of a deleted primary object."""


class _Queue:
    def __init__(self) -> None:
        self.pending: dict[Request, None] = {}
        self.event = asyncio.Event()
        self.failures: dict[Request, int] = {}


class ControllerManager:
    """Routes store changes to controllers' queues and runs their reconcile loops."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        ctx.manager = self
        self.controllers: builtins.list[Controller] = []
        self._queues: dict[str, _Queue] = {}
        self._tasks: builtins.list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._deleted: builtins.list[tuple[Controller, ResourceType, Obj]] = []
        self._started = False
        ctx.store.add_listener(self._on_change)

    def add(self, controller: Controller) -> None:
        controller.ctx = self.ctx
        self.controllers.append(controller)
        self._queues[controller.name] = _Queue()

    def _controllers_for(self, rt: ResourceType) -> builtins.list[Controller]:
        return [c for c in self.controllers if any(k.key == rt.key for k in c.kinds)]

    def _on_change(self, ev: WatchEvent) -> None:
        meta = ev.obj["metadata"]
        req = Request(ev.rt, meta.get("namespace", ""), meta["name"])
        for c in self._controllers_for(ev.rt):
            self._put(c, req)
            if ev.type == "DELETED":
                self._deleted.append((c, ev.rt, ev.obj))
                self._wake(c)
        for c in self.controllers:
            if not any(o.key == ev.rt.key for o in c.owns):
                continue
            for ref in meta.get("ownerReferences") or []:
                for k in c.kinds:
                    if ref.get("kind") == k.kind and ref.get("apiVersion") == k.api_version:
                        self._put(c, Request(k, meta.get("namespace", ""), ref["name"]))

    def _put(self, c: Controller, req: Request) -> None:
        q = self._queues[c.name]
        q.pending[req] = None
        q.event.set()

    def _wake(self, c: Controller) -> None:
        self._queues[c.name].event.set()

    def enqueue(self, req: Request, after: float = 0.0) -> None:
        for c in self._controllers_for(req.rt):
            if after <= 0:
                self._put(c, req)
            else:
                self.enqueue_for(c, req, after)

    async def start(self) -> None:
        self._started = True
        for c in self.controllers:
            await c.start()
            for rt in c.kinds:
                for obj in self.ctx.store.list(rt, copy_obj=False):
                    m = obj["metadata"]
                    self._put(c, Request(rt, m.get("namespace", ""), m["name"]))
            self._tasks.append(asyncio.get_running_loop().create_task(self._run(c)))

    async def stop(self) -> None:
        for h in list(self._timers):
            h.cancel()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for c in self.controllers:
            try:
                await c.stop()
            except Exception:
                log.exception("controller %s failed to stop", c.name)

    async def _run(self, c: Controller) -> None:
        q = self._queues[c.name]
        while True:
            await q.event.wait()
            q.event.clear()
            deleted = [d for d in self._deleted if d[0] is c]
            self._deleted = [d for d in self._deleted if d[0] is not c]
            for _, rt, obj in deleted:
                try:
                    await c.on_deleted(rt, obj)
                except Exception:
                    log.exception("%s.on_deleted failed for %s", c.name, obj["metadata"].get("name"))
            while q.pending:
                req = next(iter(q.pending))
                del q.pending[req]
                await self._reconcile_one(c, q, req)
                # A reconcile that never suspends must not starve the API server.
                await asyncio.sleep(0)

    async def _reconcile_one(self, c: Controller, q: _Queue, req: Request) -> None:
        try:
            after = await c.reconcile(req)
            q.failures.pop(req, None)
        except asyncio.CancelledError:
            raise
        except apierrors.ApiError as e:
            if e.code in (404, 409):
                # The object changed under us: its change event has already enqueued it again.
                after = 0.2 if e.code == 409 else None
            else:
                after = self._backoff(q, req)
                log.warning("%s: reconcile of %s/%s failed: %s", c.name, req.namespace, req.name, e)
        except Exception:
            after = self._backoff(q, req)
            log.exception("%s: reconcile of %s/%s failed", c.name, req.namespace, req.name)
        if after is not None:
            self.enqueue_for(c, req, after)

    def _backoff(self, q: _Queue, req: Request) -> float:
        n = q.failures.get(req, 0) + 1
        q.failures[req] = n
        return float(min(0.2 * 2**n, 30.0))

    def enqueue_for(self, c: Controller, req: Request, after: float) -> None:
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            self._put(c, req)

        holder.append(asyncio.get_running_loop().call_later(max(after, 0.0), fire))
        self._timers.add(holder[0])


ControllerFactory = Callable[[], Controller]
