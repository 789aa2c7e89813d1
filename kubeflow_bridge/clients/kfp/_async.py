"""The asynchronous KFP v2beta1 client (same methods as the sync one, awaitable)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from kubeflow_bridge.clients._retry import RetryPolicy, unreachable
from kubeflow_bridge.clients.kfp._auth import (
    KfpAuth,
    KfpAuthError,
    local_connector_url,
    login_form_action,
    session_cookie,
)
from kubeflow_bridge.clients.kfp._base import (
    API,
    KfpApiError,
    RunOutcome,
    _check_run_body,
    _KfpBase,
    equals_filter,
    run_outcome,
    timeout_outcome,
)

log = logging.getLogger(__name__)


class AsyncKfpClient(_KfpBase):
    """Asynchronous twin of :class:`KfpClient` (same arguments and methods, awaitable)."""

    def __init__(
        self,
        host: str,
        *,
        auth: KfpAuth | None = None,
        verify: bool = True,
        namespace: str | None = None,
        timeout: float = 30,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(host, auth=auth, verify=verify, namespace=namespace, timeout=timeout, retry=retry)
        self._http = httpx.AsyncClient(
            base_url=self.host, verify=verify, timeout=timeout, follow_redirects=False
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncKfpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def login(self) -> None:
        """Log in through oauth2-proxy/Dex and keep the session cookie."""
        auth = self.auth
        self._http.cookies.clear()
        async with httpx.AsyncClient(
            verify=self.verify, timeout=self.timeout, follow_redirects=True, cookies=self._http.cookies
        ) as web:
            page = await web.get(self.host + "/")
            if (connector := local_connector_url(str(page.url))) is not None:
                page = await web.get(connector)
            if session_cookie(web.cookies) is None:
                action = login_form_action(str(page.url), page.text)
                page = await web.post(
                    action, data={"login": auth.username or "", "password": auth.password or ""}
                )
                if "/approval" in page.url.path:
                    page = await web.post(str(page.url), data={"approval": "approve"})
            name = session_cookie(web.cookies)
            for cookie in web.cookies.jar:
                self._http.cookies.jar.set_cookie(cookie)
        if name is None:
            raise KfpAuthError(
                f"Dex login as {auth.username!r} at {self.host} did not yield a session cookie (status {page.status_code}); check the username and password"
            )
        log.info("logged in to KFP at %s as %s", self.host, auth.username)

    async def _request(
        self, method: str, path: str, *, recover: Callable[[], Any] | None = None, **kwargs: Any
    ) -> Any:
        attempt, relogged = 0, False
        if self.auth.mode == "dex" and session_cookie(self._http.cookies) is None:
            await self.login()
        while True:
            attempt += 1
            try:
                resp = await self._http.request(
                    method, path, headers=self._auth_headers(force_reload=relogged), **kwargs
                )
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_attempts:
                    raise KfpApiError(0, unreachable("KFP API", self.host, exc), path) from exc
                await asyncio.sleep(self.retry.delay(attempt))
                if recover is not None and (done := await recover()) is not None:
                    return done  # the lost response's request was applied: do not apply it twice
                continue
            if self._needs_login(resp) and not relogged and self.auth.mode in ("dex", "sa_token_file"):
                relogged = True
                if self.auth.mode == "dex":
                    await self.login()
                continue
            if self._retryable(resp) and attempt < self.retry.max_attempts:
                await asyncio.sleep(self.retry.delay(attempt, self._retry_after(resp)))
                if resp.status_code >= 500 and recover is not None and (done := await recover()) is not None:
                    return done  # a 5xx may come after the server applied the request
                continue
            return self._result(resp, path)

    async def healthz(self) -> dict[str, Any]:
        return await self._request("GET", f"{API}/healthz")

    async def create_experiment(
        self, display_name: str, *, namespace: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"display_name": display_name, **self._ns_params(namespace)}
        if description:
            body["description"] = description
        return await self._request("POST", f"{API}/experiments", json=body)

    async def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        return await self._request("GET", f"{API}/experiments/{experiment_id}")

    async def list_experiments(
        self,
        *,
        namespace: str | None = None,
        filter: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        return await self._request(
            "GET", f"{API}/experiments", params=self._list_params(namespace, page_size, page_token, filter)
        )

    async def get_or_create_experiment(
        self, display_name: str, *, namespace: str | None = None
    ) -> dict[str, Any]:
        found = await self.list_experiments(
            namespace=namespace, filter=equals_filter("display_name", display_name), page_size=1
        )
        for exp in found.get("experiments") or []:
            if exp.get("display_name") == display_name:
                return exp
        try:
            return await self.create_experiment(display_name, namespace=namespace)
        except KfpApiError as err:
            if err.status != 409:
                raise
            again = await self.list_experiments(
                namespace=namespace, filter=equals_filter("display_name", display_name), page_size=1
            )
            return (again.get("experiments") or [{}])[0]

    async def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        _check_run_body(body)
        # Idempotent under lost responses: a retry first looks for the run the lost attempt created
        # (same display name and experiment, not there before), as KFP has no request ids.
        before = {run["run_id"] for run in await self._runs_named(body)}

        async def created() -> dict[str, Any] | None:
            return next((r for r in await self._runs_named(body) if r["run_id"] not in before), None)

        return await self._request("POST", f"{API}/runs", json=body, recover=created)

    async def _runs_named(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        found = await self.list_runs(
            experiment_id=body.get("experiment_id") or None,
            filter=equals_filter("display_name", body["display_name"]),
            sort_by="created_at desc",
            page_size=100,
        )
        return list(found.get("runs") or [])

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return await self._request("GET", f"{API}/runs/{run_id}")

    async def list_runs(
        self,
        *,
        experiment_id: str | None = None,
        namespace: str | None = None,
        filter: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
        sort_by: str | None = None,
    ) -> dict[str, Any]:
        params = self._list_params(
            namespace, page_size, page_token, filter, experiment_id=experiment_id, sort_by=sort_by
        )
        return await self._request("GET", f"{API}/runs", params=params)

    async def terminate_run(self, run_id: str) -> None:
        await self._request("POST", f"{API}/runs/{run_id}:terminate")

    async def retry_run(self, run_id: str) -> None:
        await self._request("POST", f"{API}/runs/{run_id}:retry")

    async def create_recurring_run(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", f"{API}/recurringruns", json=body)

    async def upload_pipeline(
        self, path: str | Path, *, name: str, description: str | None = None, namespace: str | None = None
    ) -> dict[str, Any]:
        file = Path(path)
        params = {"name": name, "display_name": name, **self._ns_params(namespace)}
        if description:
            params["description"] = description
        files = {"uploadfile": (file.name, file.read_bytes(), "application/x-yaml")}
        return await self._request("POST", f"{API}/pipelines/upload", params=params, files=files)

    async def upload_pipeline_version(
        self, path: str | Path, *, pipeline_id: str, name: str
    ) -> dict[str, Any]:
        file = Path(path)
        files = {"uploadfile": (file.name, file.read_bytes(), "application/x-yaml")}
        return await self._request(
            "POST",
            f"{API}/pipelines/upload_version",
            params={"pipelineid": pipeline_id, "name": name, "display_name": name},
            files=files,
        )

    async def list_pipeline_versions(
        self, pipeline_id: str, *, page_size: int = 100, page_token: str | None = None
    ) -> dict[str, Any]:
        return await self._request(
            "GET",
            f"{API}/pipelines/{pipeline_id}/versions",
            params=self._list_params(None, page_size, page_token, None),
        )

    async def wait_for_run(
        self,
        run_id: str,
        *,
        timeout: float,
        poll_interval: float = 5,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> RunOutcome:
        """Poll until :func:`run_outcome` says the run is done, or ``timeout``; ``on_poll`` sees each read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            run = await self.get_run(run_id)
            if on_poll is not None:
                on_poll(run)
            if (outcome := run_outcome(run, run_id)) is not None:
                return outcome
            remaining = deadline - loop.time()
            if remaining <= 0:
                return timeout_outcome(run, run_id, timeout)
            await asyncio.sleep(min(poll_interval, remaining))
