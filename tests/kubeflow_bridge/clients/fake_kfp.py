"""A small KFP v2beta1 test server (aiohttp, background thread) with token checks and a Dex login flow.

Dex flow as in Kubeflow with oauth2-proxy: an unauthenticated request is redirected (302) to
/oauth2/start -> /dex/auth (connector chooser page) ; the client opens /dex/auth/local -> 302 to
/dex/auth/local/login?state=...; POST login/password -> 303 /oauth2/callback?code=... which sets the
``oauth2_proxy_kubeflow`` cookie and redirects to /.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API = "/apis/v2beta1"
SESSION = "oauth2_proxy_kubeflow"


@dataclass
class FakeKfp:
    mode: str = "none"  # none | token | dex
    tokens: set[str] = field(default_factory=set)
    users: dict[str, str] = field(default_factory=dict)
    unauthenticated_status: int = 302  # oauth2-proxy answers API calls with 302 (or 401/403 when configured)
    sessions: set[str] = field(default_factory=set)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    seen: list[tuple[str, str, dict[str, str], str | None]] = field(default_factory=list)
    fail_next: list[tuple[int, float | None]] = field(default_factory=list)
    # the seam for lost responses: the next creates are applied, then answered "drop" (connection cut)
    # or "503"; the local KFP API cannot lose a response on purpose
    lose_after_create: list[str] = field(default_factory=list)
    logins: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def start(self) -> FakeKfp:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-kfp")
        self._thread.start()
        ready.wait(10)
        return self

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get(
            "/",
            lambda _r: web.Response(text="<html>Kubeflow Central Dashboard</html>", content_type="text/html"),
        )
        r.add_get("/oauth2/start", self._oauth_start)
        r.add_get(
            "/dex/auth",
            lambda _r: web.Response(
                text='<a href="/dex/auth/local?state=s1">Log in with Email</a>', content_type="text/html"
            ),
        )
        r.add_get(
            "/dex/auth/local",
            lambda req: web.HTTPFound(f"/dex/auth/local/login?back=&state={req.query.get('state', '')}"),
        )
        r.add_get("/dex/auth/local/login", self._login_form)
        r.add_post("/dex/auth/local/login", self._login_post)
        r.add_get("/oauth2/callback", self._callback)
        r.add_get(f"{API}/healthz", lambda _r: web.json_response({"multi_user": self.mode == "dex"}))
        r.add_post(f"{API}/experiments", self._create_experiment)
        r.add_get(f"{API}/experiments", self._list_experiments)
        r.add_get(
            f"{API}/experiments/{{eid}}", lambda req: self._get(self.experiments, req.match_info["eid"])
        )
        r.add_post(f"{API}/runs", self._create_run)
        r.add_get(f"{API}/runs", self._list_runs)
        r.add_get(f"{API}/runs/{{rid}}", lambda req: self._get(self.runs, req.match_info["rid"]))
        r.add_post(f"{API}/runs/{{action}}", self._run_action)
        r.add_post(f"{API}/recurringruns", self._create_recurring)
        r.add_post(f"{API}/pipelines/upload", self._upload)
        r.add_post(f"{API}/pipelines/upload_version", self._upload_version)
        r.add_get(f"{API}/pipelines/{{pid}}/versions", self._list_versions)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)

    # ---- helpers for tests -----------------------------------------------------------------------------
    def set_run(self, run_id: str, **fields: Any) -> None:
        self.runs[run_id].update(fields)

    def api_requests(
        self, method: str | None = None, path_part: str = ""
    ) -> list[tuple[str, str, dict[str, str], str | None]]:
        return [
            s
            for s in self.seen
            if s[1].startswith(API) and (method is None or s[0] == method) and path_part in s[1]
        ]

    # ---- auth ----------------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen.append(
            (request.method, request.path, dict(request.query), request.headers.get("Authorization"))
        )
        if self.mode == "dex" and request.path == "/" and request.cookies.get(SESSION) not in self.sessions:
            raise web.HTTPFound("/oauth2/start?rd=/")
        if request.path.startswith(API):
            if self.mode == "token":
                auth = request.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                    return web.json_response(
                        {"error": "Unauthenticated", "code": 16, "message": "invalid token"}, status=401
                    )
            if self.mode == "dex" and request.cookies.get(SESSION) not in self.sessions:
                if self.unauthenticated_status in (401, 403):
                    return web.json_response(
                        {"message": "login required"}, status=self.unauthenticated_status
                    )
                raise web.HTTPFound(f"/oauth2/start?rd={request.path}")
            if self.fail_next:
                code, retry_after = self.fail_next.pop(0)
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                return web.json_response(
                    {"error": "injected", "code": 14, "message": f"injected {code}"},
                    status=code,
                    headers=headers,
                )
        return await handler(request)

    async def _oauth_start(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dex/auth?client_id=kubeflow-oidc-authservice&state=s1")

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        state = request.query.get("state", "")
        html = f'<form method="post" action="/dex/auth/local/login?back=&amp;state={state}"><input name="login"/><input name="password" type="password"/></form>'
        return web.Response(text=html, content_type="text/html")

    async def _login_post(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if self.users.get(str(form.get("login"))) != form.get("password"):
            return web.Response(
                text="Invalid Email Address and password", content_type="text/html", status=200
            )
        raise web.HTTPSeeOther(
            f"/oauth2/callback?code={secrets.token_hex(4)}&state={request.query.get('state', '')}"
        )

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        session = secrets.token_hex(8)
        self.sessions.add(session)
        self.logins += 1
        resp = web.HTTPFound("/")
        resp.set_cookie(SESSION, session, path="/", httponly=True)
        raise resp

    # ---- API -----------------------------------------------------------------------------------------
    def _get(self, table: dict[str, dict[str, Any]], key: str) -> web.Response:
        if key not in table:
            return web.json_response(
                {"error": "not found", "code": 5, "message": f"{key} not found"}, status=404
            )
        return web.json_response(table[key])

    @staticmethod
    def _filtered(items: list[dict[str, Any]], raw: str | None) -> list[dict[str, Any]]:
        if not raw:
            return items
        for pred in json.loads(raw).get("predicates", []):
            assert pred["operation"] == "EQUALS"
            items = [i for i in items if i.get(pred["key"]) == pred.get("string_value")]
        return items

    @staticmethod
    def _page(items: list[dict[str, Any]], request: web.Request, key: str) -> web.Response:
        size = int(request.query.get("page_size", 100))
        start = int(request.query.get("page_token") or 0)
        page = items[start : start + size]
        body: dict[str, Any] = {key: page, "total_size": len(items)}
        if start + size < len(items):
            body["next_page_token"] = str(start + size)
        return web.json_response(body)

    async def _create_experiment(self, request: web.Request) -> web.Response:
        body = await request.json()
        if any(e["display_name"] == body["display_name"] for e in self.experiments.values()):
            return web.json_response({"code": 6, "message": "already exists"}, status=409)
        eid = str(uuid.uuid4())
        self.experiments[eid] = {"experiment_id": eid, "storage_state": "AVAILABLE", **body}
        return web.json_response(self.experiments[eid])

    async def _list_experiments(self, request: web.Request) -> web.Response:
        items = [
            e
            for e in self.experiments.values()
            if e.get("namespace", "") == request.query.get("namespace", e.get("namespace", ""))
        ]
        return self._page(self._filtered(items, request.query.get("filter")), request, "experiments")

    async def _create_run(self, request: web.Request) -> web.Response:
        body = await request.json()
        rid = str(uuid.uuid4())
        self.runs[rid] = {"run_id": rid, "state": "PENDING", "created_at": "2026-11-22T00:00:00Z", **body}
        if self.lose_after_create:
            if self.lose_after_create.pop(0) == "drop":
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            return web.json_response({"code": 14, "message": "upstream connect error"}, status=503)
        return web.json_response(self.runs[rid])

    async def _list_runs(self, request: web.Request) -> web.Response:
        items = list(self.runs.values())
        if "experiment_id" in request.query:
            items = [r for r in items if r.get("experiment_id") == request.query["experiment_id"]]
        return self._page(self._filtered(items, request.query.get("filter")), request, "runs")

    async def _run_action(self, request: web.Request) -> web.Response:
        rid, _, action = request.match_info["action"].partition(":")
        if rid not in self.runs:
            return web.json_response({"code": 5, "message": f"run {rid} not found"}, status=404)
        if action == "terminate":
            self.runs[rid]["state"] = "CANCELING"  # Argo-backed runs never reach CANCELED
        elif action == "retry":
            if self.runs[rid]["state"] not in ("FAILED", "ERROR"):
                return web.json_response(
                    {"code": 9, "message": "only failed runs can be retried"}, status=400
                )
            self.runs[rid]["state"] = "RUNNING"
        else:
            return web.json_response({"code": 12, "message": action}, status=404)
        return web.json_response({})

    async def _create_recurring(self, request: web.Request) -> web.Response:
        body = await request.json()
        rid = str(uuid.uuid4())
        self.recurring[rid] = {"recurring_run_id": rid, "status": "ENABLED", **body}
        return web.json_response(self.recurring[rid])

    async def _upload(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        assert part is not None and part.name == "uploadfile"  # type: ignore[union-attr]
        content = await part.read()  # type: ignore[union-attr]
        pid = str(uuid.uuid4())
        self.uploads.append(
            {
                "field": part.name,
                "filename": part.filename,
                "content": bytes(content),
                "query": dict(request.query),
            }
        )  # type: ignore[union-attr]
        self.pipelines[pid] = {"pipeline_id": pid, "display_name": request.query.get("name")}
        self.versions[pid] = [
            {
                "pipeline_id": pid,
                "pipeline_version_id": str(uuid.uuid4()),
                "display_name": request.query.get("name"),
            }
        ]
        return web.json_response(self.pipelines[pid])

    async def _upload_version(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        assert part is not None and part.name == "uploadfile"  # type: ignore[union-attr]
        await part.read()  # type: ignore[union-attr]
        pid = request.query["pipelineid"]
        version = {
            "pipeline_id": pid,
            "pipeline_version_id": str(uuid.uuid4()),
            "display_name": request.query.get("name"),
        }
        self.versions.setdefault(pid, []).append(version)
        return web.json_response(version)

    async def _list_versions(self, request: web.Request) -> web.Response:
        return self._page(self.versions.get(request.match_info["pid"], []), request, "pipeline_versions")
