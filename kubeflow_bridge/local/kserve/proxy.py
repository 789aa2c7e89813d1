"""The per-InferenceService HTTP proxy at ``status.url``: splits requests between revisions by percent.

It stands where Knative's route stands: each request goes to one revision, chosen at random with the
traffic percentages as weights, and the answer carries ``x-kserve-revision: <revision>`` so callers
(and tests) can see which revision served it.
"""

from __future__ import annotations

import random
import socket

import aiohttp
from aiohttp import web

REVISION_HEADER = "x-kserve-revision"
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade"}


class TrafficProxy:
    """One proxy on 127.0.0.1.

    Args:
        port: The port to listen on (0: a free one).
        timeout: Seconds a predictor may take to answer.
    """

    def __init__(self, port: int = 0, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout
        self.routes: list[tuple[str, int, int]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._random = random.Random()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_routes(self, routes: list[tuple[str, int, int]]) -> None:
        """(revision, port, percent) triples; percent 0 entries get no traffic."""
        self.routes = list(routes)

    def pick(self) -> tuple[str, int] | None:
        """The revision and port for one request."""
        live = [(rev, port, pct) for rev, port, pct in self.routes if pct > 0]
        if not live:
            return None
        roll = self._random.uniform(0, sum(p for _, _, p in live))
        for rev, port, pct in live:
            roll -= pct
            if roll <= 0:
                return rev, port
        return live[-1][0], live[-1][1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = self.pick()
        if target is None:
            return web.json_response(
                {"error": "no ready revision serves this InferenceService yet"}, status=503
            )
        revision, port = target
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        body = await request.read()
        try:
            async with self._session.request(
                request.method, f"http://127.0.0.1:{port}{request.rel_url}", headers=headers, data=body
            ) as upstream:
                payload = await upstream.read()
                out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
                out_headers[REVISION_HEADER] = revision
                return web.Response(body=payload, status=upstream.status, headers=out_headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.json_response(
                {"error": f"revision {revision} did not answer: {exc}"},
                status=502,
                headers={REVISION_HEADER: revision},
            )

    async def start(self) -> None:
        """Listen (on ``port``, or a free port if it is taken or 0)."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, shutdown_timeout=0.5).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
