"""Watch streams: newline-delimited JSON events over a chunked HTTP response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver import jsonfast
from kubeflow_bridge.local.apiserver.errors import ApiError
from kubeflow_bridge.local.apiserver.faults import Faults
from kubeflow_bridge.local.apiserver.kinds import ResourceType
from kubeflow_bridge.local.apiserver.query import query_bool
from kubeflow_bridge.local.apiserver.store import Obj, Store
from kubeflow_bridge.local.apiserver.tables import table, wants_table

DEFAULT_TIMEOUT = 1800.0


class WatchSource(Protocol):
    """What a watch reads from the API server (so this module does not import the server)."""

    store: Store
    faults: Faults
    bookmark_interval: float


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return jsonfast.dumps({"type": event_type, "object": obj}) + b"\n"


async def serve_watch(
    request: web.Request,
    server: WatchSource,
    rt: ResourceType,
    namespace: str | None,
    matcher: Callable[[Obj], bool],
) -> web.StreamResponse:
    """Stream events. ``resourceVersion`` unset or "0": ADDED for every current object first, then
    changes; otherwise changes after it (410 Gone as an ERROR event if it is older than the history).
    ``timeoutSeconds`` ends the stream; ``allowWatchBookmarks`` adds periodic BOOKMARK events."""
    q = request.query
    rv_param = q.get("resourceVersion", "")
    try:
        timeout = float(q.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    except ValueError:
        raise apierrors.bad_request("timeoutSeconds must be a number") from None
    bookmarks = query_bool(q.get("allowWatchBookmarks"))
    as_table = wants_table(request.headers.get("Accept", ""))
    store = server.store
    faults = server.faults

    def encode(event_type: str, obj: Obj) -> bytes:
        if as_table and event_type != "ERROR" and event_type != "BOOKMARK":
            return _line(event_type, table(rt, [obj], obj["metadata"].get("resourceVersion", "")))
        return _line(event_type, obj)

    resp = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Cache-Control": "no-cache"}
    )
    resp.enable_chunked_encoding()

    initial: list[Obj] = []
    gone: ApiError | None = None
    if faults.take_watch_gone():
        gone = apierrors.gone("too old resource version (injected fault)")
        watcher = None
    else:
        try:
            if rv_param in ("", "0"):
                initial = store.list(rt, namespace, matcher, copy_obj=False)
                watcher = store.watch(rt, namespace, None, matcher)
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise apierrors.bad_request(f"resourceVersion {rv_param!r} is not valid") from None
                watcher = store.watch(rt, namespace, since, matcher)
        except ApiError as e:
            if e.code != 410:
                raise
            gone, watcher = e, None
    await resp.prepare(request)
    if gone is not None:
        await resp.write(_line("ERROR", gone.status()))
        await resp.write_eof()
        return resp
    assert watcher is not None
    wake = asyncio.Event()
    watcher.wakeup = wake.set
    if watcher.queue:
        wake.set()
    start = time.monotonic()
    deadline = start + timeout
    cut_after = faults.config.watch_cut_after
    last_bookmark = start
    try:
        for obj in initial:
            await resp.write(encode("ADDED", obj))
        if bookmarks and initial:
            await resp.write(_bookmark(rt, store.resource_version))
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if cut_after and now - start >= cut_after:
                faults.injected["watch_cut"] += 1
                if request.transport is not None:
                    request.transport.abort()
                return resp
            wait = deadline - now
            if bookmarks:
                wait = min(wait, max(0.0, last_bookmark + server.bookmark_interval - now))
            if cut_after:
                wait = min(wait, max(0.0, start + cut_after - now))
            try:
                await asyncio.wait_for(wake.wait(), timeout=max(wait, 0.01))
            except TimeoutError:
                pass
            wake.clear()
            while watcher.queue:
                ev = watcher.queue.popleft()
                await resp.write(encode(ev.type, ev.obj))
            if bookmarks and time.monotonic() - last_bookmark >= server.bookmark_interval:
                await resp.write(_bookmark(rt, store.resource_version))
                last_bookmark = time.monotonic()
        await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unwatch(watcher)
    return resp


def _bookmark(rt: ResourceType, rv: int) -> bytes:
    return _line(
        "BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": str(rv)}}
    )
