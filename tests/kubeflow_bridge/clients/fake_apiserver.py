"""A small Kubernetes-API test server (aiohttp, in a background thread) with injectable faults.

Speaks what the bridge's clients use: custom-object CRUD, merge patch, the status subresource,
list + watch (resourceVersion, bookmarks, 410 Gone past a bounded history, timeoutSeconds, label and
metadata.name field selectors), pods list and log, Status error bodies and bearer-token auth.
Faults are queued per request pattern: an HTTP status (409/429/500/401, with Retry-After), a dropped
connection, a watch that answers 410, or a watch cut after N events.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

_COLLECTION = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status|log))?$"
)


@dataclass
class Fault:
    """One injected failure for requests that match.

    Args:
        method: HTTP method to match ("*" any).
        path: Regex searched in the request path.
        action: "status" (answer ``code``), "drop" (close the connection), "gone" (watch: ERROR 410 event),
            "cut" (watch: send ``after_events`` events then close the connection mid-stream).
        code: HTTP status for "status".
        retry_after: Retry-After header seconds for "status".
        times: How many matching requests it applies to.
        watch: Match only watch requests (True), only non-watch (False) or both (None).
    """

    method: str = "*"
    path: str = ""
    action: str = "status"
    code: int = 500
    retry_after: float | None = None
    times: int = 1
    watch: bool | None = None
    after_events: int = 0


_FAULT_KEY = web.RequestKey("fault", Fault)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    watch: bool


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class FakeApiServer:
    history_size: int = 1000
    bookmark_interval: float = 0.5
    delete_delay: float = 0.0
    tokens: set[str] | None = None
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    pod_logs: dict[tuple[str, str], str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._rv = 100
        self._events: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, collection, type, obj)
        self._loop = asyncio.new_event_loop()
        self._changed: asyncio.Condition | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.open_watches = 0

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeApiServer:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-apiserver")
        self._thread.start()
        ready.wait(10)
        return self

    async def _start(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        async def _stop() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (sync or coroutine function) on the server's loop and return its result."""

        async def wrapper() -> Any:
            out = fn()
            if asyncio.iscoroutine(out):
                out = await out
            return out

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(10)

    # ---- test helpers (thread-safe) ----------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def watch_requests(self, path_part: str = "") -> list[Seen]:
        return [s for s in self.seen if s.watch and path_part in s.path]

    def put(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object directly (no faults, no auth)."""
        return self.call(lambda: self._store(collection, copy.deepcopy(obj)))

    def set_status(
        self, collection: str, name: str, status: dict[str, Any], *, generation: int | None = None
    ) -> dict[str, Any]:
        ns = collection.split("/namespaces/")[1].split("/")[0]

        async def _set() -> dict[str, Any]:
            obj = copy.deepcopy(self.objects[(collection, ns, name)])
            obj["status"] = status
            if generation is not None:
                obj["metadata"]["generation"] = generation
            return await self._store_async(collection, obj)

        return self.call(_set)

    def remove(self, collection: str, name: str) -> None:
        ns = collection.split("/namespaces/")[1].split("/")[0]
        self.call(lambda: self._delete_now(collection, ns, name))

    def compact(self) -> None:
        """Forget the whole event history: every watch from an older resourceVersion gets 410."""
        self.call(lambda: self._events.clear())

    # ---- store ---------------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, collection: str, etype: str, obj: dict[str, Any]) -> None:
        self._events.append((int(obj["metadata"]["resourceVersion"]), collection, etype, copy.deepcopy(obj)))
        del self._events[: -self.history_size]
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _store(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        ns = collection.split("/namespaces/")[1].split("/")[0]
        meta["namespace"] = ns
        key = (collection, ns, meta["name"])
        existed = key in self.objects
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next_rv()
        self.objects[key] = obj
        self._emit(collection, "MODIFIED" if existed else "ADDED", obj)
        return copy.deepcopy(obj)

    async def _store_async(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self._store(collection, obj)

    def _delete_now(self, collection: str, ns: str, name: str) -> None:
        obj = self.objects.pop((collection, ns, name), None)
        if obj is not None:
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._emit(collection, "DELETED", obj)

    # ---- HTTP ----------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        is_watch = request.query.get("watch") in ("true", "1", "True")
        self.seen.append(Seen(request.method, request.path, dict(request.query), is_watch))
        if self.tokens is not None:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return web.json_response(status_body(401, "Unauthorized", "Unauthorized"), status=401)
        for fault in self.faults:
            if fault.times <= 0 or (fault.method not in ("*", request.method)):
                continue
            if fault.watch is not None and fault.watch != is_watch:
                continue
            if not re.search(fault.path, request.path):
                continue
            fault.times -= 1
            if fault.action == "status":
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                reason = {409: "AlreadyExists", 429: "TooManyRequests", 401: "Unauthorized", 410: "Gone"}.get(
                    fault.code, "InternalError"
                )
                return web.json_response(
                    status_body(fault.code, reason, f"injected {fault.code}"),
                    status=fault.code,
                    headers=headers,
                )
            if fault.action == "drop":
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            request[_FAULT_KEY] = fault
            break
        return await handler(request)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        m = _COLLECTION.match(request.path)
        if not m:
            return web.json_response(status_body(404, "NotFound", f"no route {request.path}"), status=404)
        if m["cv"]:
            collection = f"/api/v1/namespaces/{m['ns']}/{m['plural']}"
        else:
            collection = f"/apis/{m['g']}/{m['v']}/namespaces/{m['ns']}/{m['plural']}"
        ns, name, sub = m["ns"], m["name"], m["sub"]
        if name is None:
            if request.method == "GET":
                if request.query.get("watch") in ("true", "1", "True"):
                    return await self._watch(request, collection)
                return web.json_response(self._list(collection, ns, request.query))
            if request.method == "POST":
                return await self._create(request, collection, ns)
        elif sub == "log":
            return self._log(request, ns, name)
        else:
            key = (collection, ns, name)
            if request.method == "GET":
                if key not in self.objects:
                    return web.json_response(status_body(404, "NotFound", f'"{name}" not found'), status=404)
                return web.json_response(self.objects[key])
            if request.method == "PATCH":
                return await self._patch(request, collection, key, status_only=sub == "status")
            if request.method == "DELETE":
                return await self._delete(request, collection, key)
        return web.json_response(status_body(405, "MethodNotAllowed", "not supported"), status=405)

    def _matches(self, obj: dict[str, Any], query: Any) -> bool:
        meta = obj.get("metadata") or {}
        fs = query.get("fieldSelector") or ""
        for term in filter(None, fs.split(",")):
            key, _, value = term.partition("=")
            if key == "metadata.name" and meta.get("name") != value:
                return False
        ls = query.get("labelSelector") or ""
        labels = meta.get("labels") or {}
        for term in filter(None, ls.split(",")):
            key, _, value = term.partition("=")
            if labels.get(key) != value:
                return False
        return True

    def _list(self, collection: str, ns: str, query: Any) -> dict[str, Any]:
        items = [
            copy.deepcopy(o)
            for (c, n, _), o in sorted(self.objects.items())
            if c == collection and n == ns and self._matches(o, query)
        ]
        return {
            "kind": "List",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    async def _create(self, request: web.Request, collection: str, ns: str) -> web.StreamResponse:
        body = await request.json()
        name = (body.get("metadata") or {}).get("name")
        if (collection, ns, name) in self.objects:
            return web.json_response(
                status_body(409, "AlreadyExists", f'"{name}" already exists'), status=409
            )
        body.get("metadata", {}).pop("resourceVersion", None)
        return web.json_response(self._store(collection, body), status=201)

    async def _patch(
        self, request: web.Request, collection: str, key: tuple[str, str, str], *, status_only: bool
    ) -> web.StreamResponse:
        if key not in self.objects:
            return web.json_response(status_body(404, "NotFound", f'"{key[2]}" not found'), status=404)
        patch = await request.json()
        old = self.objects[key]
        new = merge_patch(old, {"status": patch.get("status")} if status_only else patch)
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return web.json_response(self._store(collection, new))

    async def _delete(
        self, request: web.Request, collection: str, key: tuple[str, str, str]
    ) -> web.StreamResponse:
        obj = self.objects.get(key)
        if obj is None:
            return web.json_response(status_body(404, "NotFound", f'"{key[2]}" not found'), status=404)
        if self.delete_delay > 0:
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = _now()
            stored = self._store(collection, obj)
            asyncio.get_running_loop().call_later(self.delete_delay, self._delete_now, *key)
            return web.json_response(stored)
        self._delete_now(*key)
        return web.json_response({"kind": "Status", "status": "Success"})

    def _log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        if (f"/api/v1/namespaces/{ns}/pods", ns, name) not in self.objects:
            return web.json_response(status_body(404, "NotFound", f'pods "{name}" not found'), status=404)
        text = self.pod_logs.get(
            (name, request.query.get("container", "")), self.pod_logs.get((name, ""), "")
        )
        if "tailLines" in request.query:
            text = "\n".join(text.splitlines()[-int(request.query["tailLines"]) :]) + "\n"
        return web.Response(text=text)

    async def _watch(self, request: web.Request, collection: str) -> web.StreamResponse:
        assert self._changed is not None
        fault: Fault | None = request.get(_FAULT_KEY)
        query = request.query
        since = int(query.get("resourceVersion") or self._rv)
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1", "True")
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        self.open_watches += 1
        try:

            async def send(event: dict[str, Any]) -> None:
                await resp.write(json.dumps(event).encode() + b"\n")

            oldest = self._events[0][0] if self._events else self._rv + 1
            if (fault is not None and fault.action == "gone") or (since < oldest - 1 and since < self._rv):
                await send(
                    {
                        "type": "ERROR",
                        "object": status_body(
                            410, "Expired", f"too old resource version: {since} ({oldest - 1})"
                        ),
                    }
                )
                return resp
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            sent = 0
            last_bookmark = loop.time()
            while loop.time() < deadline:
                horizon = self._events[-1][0] if self._events else since
                pending = [
                    e
                    for e in self._events
                    if e[0] > since and e[1] == collection and self._matches(e[3], query)
                ]
                for rv, _, etype, obj in pending:
                    if fault is not None and fault.action == "cut" and sent >= fault.after_events:
                        assert request.transport is not None
                        request.transport.abort()
                        return resp
                    await send({"type": etype, "object": obj})
                    sent += 1
                    since = rv
                since = max(since, horizon)
                if bookmarks and loop.time() - last_bookmark >= self.bookmark_interval:
                    await send(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": "",
                                "apiVersion": "",
                                "metadata": {"resourceVersion": str(since)},
                            },
                        }
                    )
                    last_bookmark = loop.time()
                try:
                    async with self._changed:
                        await asyncio.wait_for(
                            self._changed.wait(),
                            timeout=min(self.bookmark_interval, max(0.01, deadline - loop.time())),
                        )
                except TimeoutError:
                    pass
            return resp
        except ConnectionResetError:  # the client went away mid-stream
            return resp
        finally:
            self.open_watches -= 1


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": server}}],
                "users": [{"name": "me", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "kubeflow-bridge-local",
                        "context": {"cluster": "local", "user": "me", "namespace": "ns"},
                    }
                ],
                "current-context": "kubeflow-bridge-local",
            }
        )
    )
    return path
