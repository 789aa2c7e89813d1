"""One watch connection per (API server, credentials, kind, namespace), shared by every async waiter.

Airflow triggers wait for thousands of objects in one triggerer process; a poll loop or a watch per
waiter would multiply requests by N. A :class:`SharedWatch` lists the collection once, then watches it
from the list's resourceVersion (with bookmarks), dispatching each event to the waiters of that object's
name. It resumes from the last resourceVersion after a dropped watch, relists on 410 Gone, backs off on
429/5xx/connection errors, and closes its connection when the last waiter leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubeflow_bridge.clients._retry import RETRYABLE_STATUSES, RetryPolicy, parse_status
from kubeflow_bridge.clients.kube._errors import (
    KubeApiError,
    http_status,
    is_retryable,
    retry_after,
    to_api_error,
)
from kubeflow_bridge.clients.kube._kinds import POD, ResourceKind

log = logging.getLogger(__name__)

#: Server-side timeout of one watch request; the watch then resumes from its last resourceVersion.
WATCH_SECONDS = 300
#: Statuses after which a shared watch keeps retrying (others end it and are reported to waiters).
_RETRY_STATUSES = RETRYABLE_STATUSES | {0}


@dataclass(eq=False)
class Subscription:
    """One waiter's view of one object, updated by the shared watch.

    Attributes:
        name: The object's name.
        obj: The latest version seen (None until the first list or event).
        deleted: The object was deleted.
        missing: A list taken after the waiter arrived did not contain the object.
        error: A non-retryable API error that ended the watch.
        changed: Set whenever any of the above changes.
    """

    name: str
    lists_before: int
    obj: dict[str, Any] | None = None
    deleted: bool = False
    missing: bool = False
    error: KubeApiError | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class WatchStats:
    """Requests a shared watch sent (for tests and the benchmark)."""

    lists: int = 0
    watches: int = 0
    events: int = 0
    errors: int = 0


class SharedWatch:
    """The watch of one (kind, namespace) on one API server, shared by many waiters in one event loop."""

    def __init__(
        self,
        key: tuple[Any, ...],
        configuration: Any,
        kind: ResourceKind,
        namespace: str,
        *,
        retry: RetryPolicy,
        reload_credentials: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self.key = key
        self.kind = kind
        self.namespace = namespace
        self.retry = retry
        self.stats = WatchStats()
        self._configuration = configuration
        self._reload = reload_credentials
        self._subs: dict[str, set[Subscription]] = {}
        self._cache: dict[str, dict[str, Any]] = {}
        self._synced = False
        self._rv: str | None = None
        self._lists_started = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def waiters(self) -> int:
        return sum(len(s) for s in self._subs.values())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def subscribe(self, name: str) -> Subscription:
        sub = Subscription(name=name, lists_before=self._lists_started)
        self._subs.setdefault(name, set()).add(sub)
        if self._synced and name in self._cache:
            sub.obj = self._cache[name]
            sub.changed.set()
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"shared-watch-{self.kind.plural}-{self.namespace}"
            )
        return sub

    def latest(self, name: str) -> dict[str, Any] | None:
        """The newest version of ``name`` this watch delivered to a waiter (None when nobody waits on it
        or nothing arrived yet): what a waiter's companion reads instead of a GET."""
        return next((sub.obj for sub in self._subs.get(name, ()) if sub.obj is not None), None)

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.name)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.name]
        if not self._subs:
            self._close()

    def _close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self._synced = False
        self._rv = None
        self._cache.clear()
        registry = _REGISTRY.get(asyncio.get_running_loop())
        if registry is not None and registry.get(self.key) is self:
            del registry[self.key]

    # ---- the loop ------------------------------------------------------------------------------------
    def _deliver(self, name: str, obj: dict[str, Any] | None, *, deleted: bool = False) -> None:
        for sub in self._subs.get(name, ()):
            if obj is not None:
                sub.obj = obj
            sub.deleted = sub.deleted or deleted
            sub.changed.set()

    async def _run(self) -> None:
        from kubernetes_asyncio import client

        api_client = client.ApiClient(self._configuration)
        custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
        failures = 0
        reloaded = False
        try:
            while self._subs:
                try:
                    if self._rv is None:
                        await self._relist(custom, core)
                    started, events_before = asyncio.get_running_loop().time(), self.stats.events
                    await self._stream(custom, core)
                    if (
                        self.stats.events == events_before
                        and asyncio.get_running_loop().time() - started < 1.0
                    ):
                        # A server that closes watches at once must not make this loop spin.
                        failures += 1
                        await asyncio.sleep(self.retry.delay(failures))
                        continue
                    failures, reloaded = 0, False
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    err = exc if isinstance(exc, KubeApiError) else to_api_error(exc)
                    self.stats.errors += 1
                    if err.status == 410:
                        self._rv = None
                        continue
                    if err.status == 401 and self._reload is not None and not reloaded:
                        reloaded = True
                        result = self._reload()
                        if asyncio.iscoroutine(result):
                            await result
                        continue
                    if err.status not in _RETRY_STATUSES and not is_retryable(exc):
                        log.warning(
                            "shared watch of %s in %s failed: %s", self.kind.plural, self.namespace, err
                        )
                        for subs in self._subs.values():
                            for sub in subs:
                                sub.error = err
                                sub.changed.set()
                        self._synced, self._rv = False, None
                        return
                    failures += 1
                    delay = self.retry.delay(failures, retry_after(exc))
                    log.info(
                        "shared watch of %s in %s interrupted (%s); resuming in %.2fs",
                        self.kind.plural,
                        self.namespace,
                        err,
                        delay,
                    )
                    await asyncio.sleep(delay)
        finally:
            await api_client.close()

    async def _relist(self, custom: Any, core: Any) -> None:
        self._lists_started += 1
        started = self._lists_started
        self.stats.lists += 1
        if self.kind == POD:
            resp = await core.list_namespaced_pod(self.namespace, _preload_content=False)
            listing = json.loads(await resp.read())
        else:
            kind = self.kind
            listing = await custom.list_namespaced_custom_object(
                kind.group, kind.version, self.namespace, kind.plural
            )
        self._cache = {i["metadata"]["name"]: i for i in listing.get("items") or []}
        self._rv = str((listing.get("metadata") or {}).get("resourceVersion") or "") or None
        self._synced = True
        for name, subs in list(self._subs.items()):
            obj = self._cache.get(name)
            for sub in subs:
                if obj is not None:
                    sub.obj = obj
                elif sub.lists_before < started:
                    # The waiter arrived before this list began: an object it waits for is gone.
                    if sub.obj is None:
                        sub.missing = True
                    else:
                        sub.deleted = True
                sub.changed.set()

    async def _stream(self, custom: Any, core: Any) -> None:
        query: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": WATCH_SECONDS,
            "_preload_content": False,
            "_request_timeout": (10, WATCH_SECONDS + 30),
        }
        if self._rv:
            query["resource_version"] = self._rv
        self.stats.watches += 1
        if self.kind == POD:
            resp = await core.list_namespaced_pod(self.namespace, **query)
        else:
            kind = self.kind
            resp = await custom.list_namespaced_custom_object(
                kind.group, kind.version, self.namespace, kind.plural, **query
            )
        try:
            if not 200 <= resp.status < 300:
                # With _preload_content=False kubernetes_asyncio does not raise for an error answer
                # (401 from an expired token, 410, 429...): turn its Status body into the error.
                error = _error_from_response(resp.status, resp.reason, await resp.read())
                error.headers = dict(resp.headers)  # type: ignore[attr-defined]  # for Retry-After
                raise error
            while True:
                line = await resp.content.readline()
                if not line:
                    return  # server closed the watch (timeout or cut): resume from self._rv
                if not line.strip():
                    continue
                event = json.loads(line)
                etype, obj = str(event.get("type")), event.get("object") or {}
                self.stats.events += 1
                if etype == "ERROR":
                    raise KubeApiError(
                        int(obj.get("code") or 500),
                        str(obj.get("reason") or "Error"),
                        str(obj.get("message") or ""),
                    )
                meta = obj.get("metadata") or {}
                self._rv = str(meta.get("resourceVersion") or self._rv)
                if etype == "BOOKMARK":
                    continue
                name = str(meta.get("name") or "")
                if etype == "DELETED":
                    self._cache.pop(name, None)
                    self._deliver(name, obj, deleted=True)
                else:
                    self._cache[name] = obj
                    self._deliver(name, obj)
        finally:
            resp.release()


def _error_from_response(status: int, reason: str | None, body: bytes) -> KubeApiError:
    """A :class:`KubeApiError` from an HTTP error answer and its Status body (if it has one)."""
    parsed_reason, message, causes = parse_status(body, reason or "")
    return KubeApiError(status, parsed_reason or "Error", message, causes)


_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], SharedWatch]] = (
    weakref.WeakKeyDictionary()
)


def credentials_fingerprint(configuration: Any) -> str:
    """A hash of what authenticates requests, so different identities never share a watch."""
    parts = [
        repr(sorted((getattr(configuration, "api_key", None) or {}).items())),
        str(getattr(configuration, "cert_file", "")),
        str(getattr(configuration, "username", "")),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def shared_watch(
    configuration: Any,
    kind: ResourceKind,
    namespace: str,
    *,
    retry: RetryPolicy,
    reload_credentials: Callable[[], Awaitable[None] | None] | None = None,
) -> SharedWatch:
    """The process-wide shared watch of (API server, credentials, kind, namespace) in the running loop."""
    loop = asyncio.get_running_loop()
    registry = _REGISTRY.setdefault(loop, {})
    key = _key(configuration, kind, namespace)
    watch = registry.get(key)
    if watch is None:
        watch = registry[key] = SharedWatch(
            key, configuration, kind, namespace, retry=retry, reload_credentials=reload_credentials
        )
    return watch


def _key(configuration: Any, kind: ResourceKind, namespace: str) -> tuple[str, ...]:
    return (
        configuration.host,
        credentials_fingerprint(configuration),
        kind.group,
        kind.version,
        kind.plural,
        namespace,
    )


def latest_watched(
    configuration: Any, kind: ResourceKind, namespace: str, name: str
) -> dict[str, Any] | None:
    """The newest version of an object a running shared watch of this loop delivered to a waiter."""
    watch = _REGISTRY.get(asyncio.get_running_loop(), {}).get(_key(configuration, kind, namespace))
    return None if watch is None else watch.latest(name)


def active_watches() -> list[SharedWatch]:
    """The shared watches of the running loop (for tests and diagnostics)."""
    with contextlib.suppress(RuntimeError):
        return list(_REGISTRY.get(asyncio.get_running_loop(), {}).values())
    return []


__all__ = [
    "SharedWatch",
    "Subscription",
    "WatchStats",
    "active_watches",
    "http_status",
    "latest_watched",
    "shared_watch",
]
