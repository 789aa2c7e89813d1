"""KServe controller of the local runtime: InferenceService revisions as pods, canary traffic, status.

Each change of the predictor spec (canaryTrafficPercent aside) creates a new revision
``<name>-predictor-0000N``: a Pod (run by the pod controller as a process) listening on a free port of
127.0.0.1 (see :mod:`kubeflow_bridge.local.kserve.predictor` for the supported predictors). A revision is
ready when its model server answers ``/v2/health/ready`` or ``/v1/models/<model>``; it has failed when its
pod ends or cannot start (unknown image, model that fails to load). Traffic and status follow KServe
(:mod:`kubeflow_bridge.local.kserve.status`); the per-service proxy
(:mod:`kubeflow_bridge.local.kserve.proxy`) at ``status.url`` (``http://127.0.0.1:<port>``, reachable
locally) splits requests by percent, while ``status.address.url`` keeps the in-cluster form
``http://<name>.<namespace>.svc.cluster.local``. Pods of revisions that no longer get traffic are deleted.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any
from urllib.parse import urlparse

import aiohttp

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver.kinds import INFERENCESERVICE, POD, ResourceType
from kubeflow_bridge.local.controllers.base import Controller, Request
from kubeflow_bridge.local.katib.status import now_rfc3339
from kubeflow_bridge.local.kserve.predictor import (
    ISVC_LABEL,
    PORT_ANNOTATION,
    REVISION_LABEL,
    SPEC_HASH_ANNOTATION,
    UnsupportedPredictor,
    plan_predictor,
    revision_pod,
)
from kubeflow_bridge.local.kserve.proxy import TrafficProxy
from kubeflow_bridge.local.kserve.status import Revision, compute_status

log = logging.getLogger("kubeflow_bridge.local.kserve.controller")

PENDING_REQUEUE = 0.5
PROBE_TIMEOUT = 1.0
_IMAGE_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerError")


def _revision_number(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class InferenceServiceController(Controller):
    """Reconciles InferenceServices (see the module docstring)."""

    name = "kserve-inferenceservice"
    kinds = (INFERENCESERVICE,)
    owns = (POD,)

    def __init__(self) -> None:
        super().__init__()
        self._proxies: dict[str, TrafficProxy] = {}
        self._ready: set[str] = set()  # pod uids whose model server answered ready
        self._session: aiohttp.ClientSession | None = None

    async def _proxy(self, isvc: dict[str, Any]) -> TrafficProxy:
        uid = isvc["metadata"]["uid"]
        proxy = self._proxies.get(uid)
        if proxy is None:
            old_url = (isvc.get("status") or {}).get("url") or ""
            parsed = urlparse(old_url)
            port = parsed.port if parsed.hostname == "127.0.0.1" and parsed.port else 0
            proxy = TrafficProxy(port)
            await proxy.start()
            self._proxies[uid] = proxy
        return proxy

    async def _probe(self, port: int, model_name: str) -> bool:
        """Ready when a KServe health endpoint answers 200; a server that answers 404 on both (a custom
        server without KServe's endpoints) is ready too, as Knative's default TCP probe would say."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT))
        statuses = []
        for path in ("/v2/health/ready", f"/v1/models/{model_name}"):
            try:
                async with self._session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    if resp.status == 200:
                        return True
                    statuses.append(resp.status)
            except (aiohttp.ClientError, TimeoutError, OSError):
                return False
        return statuses == [404, 404]

    def _log_tail(self, pod: dict[str, Any], lines: int = 5) -> str:
        meta = pod["metadata"]
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "kserve-container")
        path = self.ctx.pod_log_path(meta.get("namespace", "default"), meta["name"], container)
        if not path.exists():
            return ""
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])

    async def _revision(self, pod: dict[str, Any], model_name: str) -> Revision:
        meta = pod["metadata"]
        name = meta["labels"][REVISION_LABEL]
        port = int((meta.get("annotations") or {}).get(PORT_ANNOTATION, "0"))
        status = pod.get("status") or {}
        phase = status.get("phase", "Pending")
        cstatuses = status.get("containerStatuses") or []
        state = (cstatuses[0].get("state") if cstatuses else None) or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        number = _revision_number(name)
        if phase in ("Failed", "Succeeded") or terminated:
            reason = terminated.get("reason") or status.get("reason") or "Error"
            detail = terminated.get("message") or status.get("message") or ""
            code = terminated.get("exitCode")
            message = f"container exited ({reason}{f', exit code {code}' if code is not None else ''})"
            tail = detail or self._log_tail(pod)
            return Revision(
                name, number, "failed", port, "RevisionFailed", f"{message}: {tail}" if tail else message
            )
        if waiting.get("reason") in ("CrashLoopBackOff", "Completed"):
            last = (cstatuses[0].get("lastState") or {}).get("terminated") or {}
            code = last.get("exitCode")
            message = f"container exited ({last.get('reason') or 'Error'}, exit code {code})"
            tail = last.get("message") or self._log_tail(pod)
            return Revision(
                name, number, "failed", port, "RevisionFailed", f"{message}: {tail}" if tail else message
            )
        if waiting.get("reason") in _IMAGE_FAILURES:
            return Revision(
                name, number, "failed", port, waiting["reason"], waiting.get("message") or waiting["reason"]
            )
        if phase == "Running":
            uid = meta["uid"]
            if uid in self._ready or await self._probe(port, model_name):
                self._ready.add(uid)
                return Revision(name, number, "ready", port)
            return Revision(
                name, number, "pending", port, "Deploying", f"Revision {name!r} is loading its model"
            )
        return Revision(name, number, "pending", port, "Deploying", f"Revision {name!r} is starting")

    async def reconcile(self, req: Request) -> float | None:
        isvc = self.ctx.get(INFERENCESERVICE, req.namespace, req.name)
        if isvc is None:
            return None
        uid = isvc["metadata"]["uid"]
        proxy = await self._proxy(isvc)
        invalid: str | None = None
        plan = None
        try:
            plan = plan_predictor(isvc)
        except UnsupportedPredictor as exc:
            invalid = str(exc)
        pods = [
            p
            for p in self.ctx.list(POD, req.namespace, labels={ISVC_LABEL: req.name})
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
            and REVISION_LABEL in (p["metadata"].get("labels") or {})
        ]
        pods.sort(key=lambda p: _revision_number(p["metadata"]["labels"][REVISION_LABEL]))
        created_before = (
            ((isvc.get("status") or {}).get("components") or {})
            .get("predictor", {})
            .get("latestCreatedRevision")
        )
        last_number = max(
            [_revision_number(p["metadata"]["labels"][REVISION_LABEL]) for p in pods]
            + [_revision_number(created_before) if created_before else 0]
        )
        latest_hash = (
            (pods[-1]["metadata"].get("annotations") or {}).get(SPEC_HASH_ANNOTATION) if pods else None
        )
        if plan is not None and (not pods or latest_hash != plan.spec_hash):
            number = last_number + 1
            body = revision_pod(isvc, plan, number, self.ctx.free_port())
            try:
                self.ctx.create(POD, body, namespace=req.namespace, owner=isvc)
            except apierrors.ApiError as exc:
                invalid = f"cannot create the predictor pod: {exc}"
            else:
                self.ctx.event(
                    isvc, "RevisionCreated", f"Created revision {body['metadata']['labels'][REVISION_LABEL]}"
                )
                return 0.1
        model_name = plan.model_name if plan is not None else req.name
        revisions = [await self._revision(p, model_name) for p in pods]
        outcome = compute_status(
            isvc,
            revisions,
            proxy_url=proxy.url,
            now=now_rfc3339(),
            invalid=invalid,
            runtime=plan.runtime if plan else "",
        )
        proxy.set_routes(outcome.routes)
        latest_name = revisions[-1].name if revisions else ""
        for pod, revision in zip(pods, revisions, strict=True):
            if revision.name not in outcome.keep and revision.name != latest_name:
                self.ctx.delete(POD, req.namespace, pod["metadata"]["name"])
                self._ready.discard(pod["metadata"]["uid"])
        old = isvc.get("status") or {}
        if outcome.status != old:
            no_condition: dict[str, Any] = {}
            ready_before = next(
                (c for c in old.get("conditions") or [] if c["type"] == "Ready"), no_condition
            ).get("status")
            ready_now = next(c for c in outcome.status["conditions"] if c["type"] == "Ready")
            self.ctx.set_status(INFERENCESERVICE, isvc, copy.deepcopy(outcome.status))
            if ready_now["status"] != ready_before:
                kind = "Warning" if ready_now["status"] == "False" else "Normal"
                self.ctx.event(
                    isvc,
                    ready_now.get("reason") or "InferenceServiceReady",
                    ready_now.get("message") or "Ready",
                    type=kind,
                )
        if any(r.state == "pending" for r in revisions):
            return PENDING_REQUEUE
        return None

    async def on_deleted(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        proxy = self._proxies.pop(obj["metadata"]["uid"], None)
        if proxy is not None:
            await proxy.stop()

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self._proxies.values()), return_exceptions=True)
        self._proxies.clear()
        if self._session is not None:
            await self._session.close()


def install(runtime: Any) -> None:
    """Add KServe to a runtime: the InferenceService controller."""
    runtime.manager.add(InferenceServiceController())
