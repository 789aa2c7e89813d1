"""The asynchronous Kubeflow object client, on ``kubernetes_asyncio`` (what Airflow triggers use)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kubeflow_bridge.clients._retry import RetryPolicy
from kubeflow_bridge.clients.kube._common import (
    SUSPEND_PATCHES,
    CreateResult,
    IfExists,
    WaitOutcome,
    deleted_outcome,
    has_restarted,
    join_logs,
    log_container,
    log_selectors,
    not_found_outcome,
    object_name,
    outcome_of,
    resolve_conflict,
    with_kind,
)
from kubeflow_bridge.clients.kube._errors import (
    KubeApiError,
    http_status,
    is_retryable,
    retry_after,
    to_api_error,
)
from kubeflow_bridge.clients.kube._kinds import POD, ResourceKind
from kubeflow_bridge.clients.kube._watch import latest_watched, shared_watch

log = logging.getLogger(__name__)

#: Seconds a waiter waits for the shared watch to show its object before it checks with one GET.
NOT_SEEN_GRACE = 10.0


async def _raise_for_status(resp: Any) -> None:
    """Raise the client's ApiException for a non-2xx raw answer, as it does for preloaded ones (so a
    5xx is retried and a Status body never reads as a log or a listing)."""
    status = getattr(resp, "status", 200)
    if 200 <= status <= 299:
        return
    from kubernetes_asyncio.client.exceptions import ApiException

    try:
        body = await resp.read()
    finally:
        resp.release()
    exc = ApiException(status=status, reason=getattr(resp, "reason", "") or "")
    exc.body = body
    exc.headers = getattr(resp, "headers", None)
    raise exc


class AsyncKubeflowObjectClient:
    """Async twin of :class:`KubeflowObjectClient`; ``wait`` shares one watch per (server, kind, namespace).

    Args:
        api_client: A ``kubernetes_asyncio.client.ApiClient``.
        retry: Backoff for 429/5xx/connection errors.
        credentials_reloader: Called (and awaited when it returns an awaitable) once on a 401.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        retry: RetryPolicy | None = None,
        credentials_reloader: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        from kubernetes_asyncio import client

        self.api_client = api_client
        self.retry = retry or RetryPolicy()
        self._reload = credentials_reloader
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    def __repr__(self) -> str:
        return f"AsyncKubeflowObjectClient(host={self.api_client.configuration.host!r})"

    @classmethod
    async def from_kubeconfig(
        cls, config_file: str | None = None, context: str | None = None, *, retry: RetryPolicy | None = None
    ) -> AsyncKubeflowObjectClient:
        """Build a client from a kubeconfig; a 401 re-reads it (rotated tokens)."""
        from kubernetes_asyncio import client, config

        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=config_file, context=context, client_configuration=configuration
        )

        async def reload() -> None:
            await config.load_kube_config(
                config_file=config_file, context=context, client_configuration=configuration
            )

        return cls(client.ApiClient(configuration), retry=retry, credentials_reloader=reload)

    async def close(self) -> None:
        await self.api_client.close()

    async def __aenter__(self) -> AsyncKubeflowObjectClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- plumbing --------------------------------------------------------------------------------
    async def _reload_credentials(self) -> None:
        assert self._reload is not None
        result = self._reload()
        if asyncio.iscoroutine(result):
            await result

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        attempt = 0
        reloaded = False
        while True:
            attempt += 1
            try:
                result = await fn(*args, **kwargs)
                if kwargs.get("_preload_content") is False:
                    await _raise_for_status(result)  # the client checks only preloaded answers
                return result
            except Exception as exc:
                if http_status(exc) == 401 and self._reload is not None and not reloaded:
                    reloaded = True
                    log.info("401 from the API server: reloading credentials")
                    await self._reload_credentials()
                    continue
                if not is_retryable(exc) or attempt >= self.retry.max_attempts:
                    raise to_api_error(exc, self.api_client.configuration.host) from exc
                delay = self.retry.delay(attempt, retry_after(exc))
                log.info("retrying after %s (try %d, %.2fs)", to_api_error(exc), attempt, delay)
                await asyncio.sleep(delay)

    async def _raw_json(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        resp = await self._call(fn, *args, _preload_content=False, **kwargs)
        try:
            return json.loads(await resp.read())
        finally:
            resp.release()

    # ---- public API ---------------------------------------------------------------------------------
    async def create(
        self,
        kind: ResourceKind,
        body: dict[str, Any],
        *,
        namespace: str,
        if_exists: IfExists | str = IfExists.REATTACH,
        replace_timeout: float = 120.0,
    ) -> CreateResult:
        """Create ``body``; on 409 reattach, fail or replace according to ``if_exists`` (see the sync client)."""
        mode = IfExists(if_exists)
        name = object_name(body)
        body = with_kind(kind, body)
        for _ in range(3):
            try:
                if kind == POD:
                    return CreateResult(
                        await self._raw_json(self._core.create_namespaced_pod, namespace, body), True
                    )
                obj = await self._call(
                    self._custom.create_namespaced_custom_object,
                    kind.group,
                    kind.version,
                    namespace,
                    kind.plural,
                    body,
                )
                return CreateResult(obj, True)
            except KubeApiError as err:
                if err.status != 409:
                    raise
            existing = await self.get(kind, name, namespace=namespace)
            if existing is None:
                continue
            if resolve_conflict(kind, body, existing, mode, namespace):
                log.info("reattached to existing %s %s/%s", kind.kind, namespace, name)
                return CreateResult(existing, False)
            await self.delete(kind, name, namespace=namespace)
            deadline = time.monotonic() + replace_timeout
            delay = 0.05
            while await self.get(kind, name, namespace=namespace) is not None:
                if time.monotonic() > deadline:
                    raise KubeApiError(
                        408,
                        "Timeout",
                        f'{kind.kind} "{name}" was not gone {replace_timeout}s after its deletion; check its finalizers',
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise KubeApiError(
            409, "Conflict", f'{kind.kind} "{name}" kept reappearing while being created; try again'
        )

    async def get(self, kind: ResourceKind, name: str, *, namespace: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            if kind == POD:
                return await self._raw_json(self._core.read_namespaced_pod, name, namespace)
            return await self._call(
                self._custom.get_namespaced_custom_object,
                kind.group,
                kind.version,
                namespace,
                kind.plural,
                name,
            )
        except KubeApiError as err:
            if err.status == 404:
                return None
            raise

    async def patch(
        self, kind: ResourceKind, name: str, patch: dict[str, Any], *, namespace: str
    ) -> dict[str, Any]:
        """Apply a JSON merge patch and return the updated object."""
        if kind == POD:
            return await self._raw_json(self._core.patch_namespaced_pod, name, namespace, patch)
        return await self._call(
            self._custom.patch_namespaced_custom_object,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            patch,
        )

    async def delete(
        self, kind: ResourceKind, name: str, *, namespace: str, propagation: str = "Foreground"
    ) -> bool:
        """Delete with ``propagation``; False when it did not exist."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            if kind == POD:
                await self._raw_json(self._core.delete_namespaced_pod, name, namespace, body=body)
            else:
                await self._call(
                    self._custom.delete_namespaced_custom_object,
                    kind.group,
                    kind.version,
                    namespace,
                    kind.plural,
                    name,
                    body=body,
                )
        except KubeApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    async def cancel(self, kind: ResourceKind, name: str, *, namespace: str, mode: str = "delete") -> None:
        """Stop a running object: delete (default, Foreground) or suspend (PyTorchJob, batch Job)."""
        if mode not in ("delete", "suspend"):
            raise ValueError(f"cancel mode must be 'delete' or 'suspend', not {mode!r}")
        if mode == "suspend" and kind.kind in SUSPEND_PATCHES:
            try:
                await self.patch(kind, name, SUSPEND_PATCHES[kind.kind], namespace=namespace)
            except KubeApiError as err:
                if err.status != 404:
                    raise
            return
        await self.delete(kind, name, namespace=namespace)

    async def wait(
        self,
        kind: ResourceKind,
        name: str,
        *,
        namespace: str,
        timeout: float,
        min_generation: int | None = None,
    ) -> WaitOutcome:
        """Wait for a terminal state through the process-wide shared watch of (server, kind, namespace).

        Many concurrent waits on one (kind, namespace) cost one list and one watch connection in total.
        """
        watch = shared_watch(
            self.api_client.configuration, kind, namespace, retry=self.retry, reload_credentials=self._reload
        )
        sub = watch.subscribe(name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        checked = False
        try:
            while True:
                sub.changed.clear()
                if sub.error is not None:
                    return WaitOutcome("error", sub.error.reason, sub.error.message, sub.obj)
                if sub.deleted:
                    return deleted_outcome(kind, name, sub.obj)
                if sub.missing:
                    return not_found_outcome(kind, name, namespace)
                if sub.obj is not None and (done := outcome_of(kind, sub.obj, min_generation)):
                    return done
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return WaitOutcome(
                        "timeout",
                        "Timeout",
                        f'{kind.kind} "{name}" did not finish within {timeout:g}s',
                        sub.obj,
                    )
                budget = remaining if (checked or sub.obj is not None) else min(remaining, NOT_SEEN_GRACE)
                try:
                    await asyncio.wait_for(sub.changed.wait(), budget)
                except TimeoutError:
                    if sub.obj is None and not checked and loop.time() < deadline:
                        # Nothing seen yet: one GET tells a slow watch from an object that does not exist.
                        checked = True
                        try:
                            current = await self.get(kind, name, namespace=namespace)
                        except KubeApiError as err:
                            return WaitOutcome("error", err.reason, err.message, None)
                        if current is None:
                            return not_found_outcome(kind, name, namespace)
                        if sub.obj is None:
                            sub.obj = current
        finally:
            watch.unsubscribe(sub)

    def watched(self, kind: ResourceKind, name: str, *, namespace: str) -> dict[str, Any] | None:
        """The object as the shared watch last delivered it while a :meth:`wait` on it runs in this loop,
        without a request; None otherwise (then :meth:`get` it)."""
        return latest_watched(self.api_client.configuration, kind, namespace, name)

    async def job_logs(
        self,
        kind: ResourceKind,
        name: str,
        *,
        namespace: str,
        role: str = "master",
        tail_lines: int | None = None,
    ) -> dict[str, str]:
        """Logs of the pods of a job's ``role`` (``master``, ``worker``, ``all``), by pod name."""
        if kind == POD:
            pod = await self.get(POD, name, namespace=namespace)
            pods = [pod] if pod else []
        else:
            pods = await self.job_pods(kind, name, namespace=namespace, role=role)
        logs: dict[str, str] = {}
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            kwargs: dict[str, Any] = {"_preload_content": False}
            if (container := log_container(kind, pod)) is not None:
                kwargs["container"] = container
            if tail_lines is not None:
                kwargs["tail_lines"] = tail_lines
            try:
                text = await self._read_log(pod_name, namespace, **kwargs)
            except KubeApiError as err:
                logs[pod_name] = f"<log unavailable: {err}>"
                continue
            if has_restarted(pod, kwargs.get("container")) or not text.strip():
                with contextlib.suppress(KubeApiError):  # 400 when there is no previous container
                    text = join_logs(await self._read_log(pod_name, namespace, previous=True, **kwargs), text)
            logs[pod_name] = text
        return logs

    async def job_pods(
        self, kind: ResourceKind, name: str, *, namespace: str, role: str = "master"
    ) -> list[dict[str, Any]]:
        """The pods of a job's ``role`` (``master``, ``worker``, ``all``)."""
        for selector in log_selectors(kind, name, role):
            listing = await self._raw_json(self._core.list_namespaced_pod, namespace, label_selector=selector)
            if pods := listing.get("items") or []:
                return list(pods)
        return []

    async def follow_log(
        self, kind: ResourceKind, pod: dict[str, Any], *, tail_lines: int
    ) -> AsyncIterator[str]:
        """The lines of a pod's log as they are written (``follow``), starting with the last ``tail_lines``.

        Ends when the container ends or the API server closes the stream; no retry (the caller decides).
        """
        kwargs: dict[str, Any] = {"_preload_content": False, "follow": True, "tail_lines": tail_lines}
        if (container := log_container(kind, pod)) is not None:
            kwargs["container"] = container
        meta = pod["metadata"]
        resp = await self._call(self._core.read_namespaced_pod_log, meta["name"], meta["namespace"], **kwargs)
        try:
            async for raw in resp.content:
                yield raw.decode("utf-8", "replace").rstrip("\n")
        finally:
            resp.release()

    async def _read_log(self, pod_name: str, namespace: str, **kwargs: Any) -> str:
        resp = await self._call(self._core.read_namespaced_pod_log, pod_name, namespace, **kwargs)
        try:
            return str((await resp.read()).decode("utf-8", "replace"))
        finally:
            resp.release()
