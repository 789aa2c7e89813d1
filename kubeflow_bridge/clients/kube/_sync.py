"""The synchronous Kubeflow object client, on the official ``kubernetes`` client."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

#: Longest single watch request; the client reconnects from the last resourceVersion after it.
WATCH_SECONDS = 300


def iter_lines(resp: Any) -> Iterator[str]:
    """Lines of a chunked urllib3 response as they arrive."""
    buffer = bytearray()
    for segment in resp.stream(amt=None, decode_content=False):
        buffer.extend(segment if isinstance(segment, bytes) else str(segment).encode())
        while (cut := buffer.find(b"\n")) != -1:
            line = buffer[:cut].decode("utf-8", "replace")
            del buffer[: cut + 1]
            if line.strip():
                yield line


class KubeflowObjectClient:
    """Create, read, wait for, cancel and read logs of Kubeflow objects (sync).

    Args:
        api_client: A ``kubernetes.client.ApiClient`` (e.g. from the cncf provider's KubernetesHook).
        retry: Backoff for 429/5xx/connection errors.
        credentials_reloader: Called once on a 401 to refresh credentials (e.g. re-read a kubeconfig
            whose token rotated) before the request is retried.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        retry: RetryPolicy | None = None,
        credentials_reloader: Callable[[], None] | None = None,
    ) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.retry = retry or RetryPolicy()
        self._reload = credentials_reloader
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    def __repr__(self) -> str:
        return f"KubeflowObjectClient(host={self.api_client.configuration.host!r})"

    @classmethod
    def from_kubeconfig(
        cls, config_file: str | None = None, context: str | None = None, *, retry: RetryPolicy | None = None
    ) -> KubeflowObjectClient:
        """Build a client from a kubeconfig (``$KUBECONFIG`` or ``~/.kube/config`` when None).

        A 401 re-reads the same kubeconfig, so a rotated token is picked up without a restart.
        """
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=config_file, context=context, client_configuration=configuration)

        def reload() -> None:
            config.load_kube_config(
                config_file=config_file, context=context, client_configuration=configuration
            )

        return cls(client.ApiClient(configuration), retry=retry, credentials_reloader=reload)

    def close(self) -> None:
        self.api_client.close()

    def __enter__(self) -> KubeflowObjectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing --------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, deadline: float | None = None, **kwargs: Any) -> Any:
        """Call ``fn`` with retries on 429/5xx/connection errors and one credential reload on 401."""
        attempt = 0
        reloaded = False
        while True:
            attempt += 1
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                status = http_status(exc)
                if status == 401 and self._reload is not None and not reloaded:
                    reloaded = True
                    log.info("401 from the API server: reloading credentials")
                    self._reload()
                    continue
                host = self.api_client.configuration.host
                if not is_retryable(exc) or attempt >= self.retry.max_attempts:
                    raise to_api_error(exc, host) from exc
                delay = self.retry.delay(attempt, retry_after(exc))
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise to_api_error(exc, host) from exc
                log.info("retrying after %s (try %d, %.2fs)", to_api_error(exc), attempt, delay)
                time.sleep(delay)

    @staticmethod
    def _json(resp: Any) -> Any:
        return json.loads(resp.data)

    def _create_raw(self, kind: ResourceKind, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        if kind == POD:
            return self._json(
                self._call(self._core.create_namespaced_pod, namespace, body, _preload_content=False)
            )
        return self._call(
            self._custom.create_namespaced_custom_object,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            body,
        )

    def _list(
        self, kind: ResourceKind, namespace: str, *, deadline: float | None = None, **query: Any
    ) -> dict[str, Any]:
        if kind == POD:
            resp = self._call(
                self._core.list_namespaced_pod, namespace, deadline=deadline, _preload_content=False, **query
            )
            return self._json(resp)
        return self._call(
            self._custom.list_namespaced_custom_object,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            deadline=deadline,
            **query,
        )

    # ---- public API ---------------------------------------------------------------------------------
    def create(
        self,
        kind: ResourceKind,
        body: dict[str, Any],
        *,
        namespace: str,
        if_exists: IfExists | str = IfExists.REATTACH,
        replace_timeout: float = 120.0,
    ) -> CreateResult:
        """Create ``body``; on 409 reattach, fail or replace according to ``if_exists``.

        Raises:
            IdentityMismatchError: The existing object carries another identity label.
            AlreadyExistsError: It exists and ``if_exists=fail``.
            KubeApiError: Any other API error (after retries).
        """
        mode = IfExists(if_exists)
        name = object_name(body)
        body = with_kind(kind, body)
        for _ in range(3):
            try:
                return CreateResult(self._create_raw(kind, body, namespace), True)
            except KubeApiError as err:
                if err.status != 409:
                    raise
            existing = self.get(kind, name, namespace=namespace)
            if existing is None:
                continue  # deleted in between: create again
            if resolve_conflict(kind, body, existing, mode, namespace):
                log.info("reattached to existing %s %s/%s", kind.kind, namespace, name)
                return CreateResult(existing, False)
            self.delete(kind, name, namespace=namespace)
            self._wait_gone(kind, name, namespace, replace_timeout)
        raise KubeApiError(
            409, "Conflict", f'{kind.kind} "{name}" kept reappearing while being created; try again'
        )

    def _wait_gone(self, kind: ResourceKind, name: str, namespace: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while self.get(kind, name, namespace=namespace) is not None:
            if time.monotonic() > deadline:
                raise KubeApiError(
                    408,
                    "Timeout",
                    f'{kind.kind} "{name}" was not gone {timeout}s after its deletion; check its finalizers',
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def get(self, kind: ResourceKind, name: str, *, namespace: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            if kind == POD:
                return self._json(
                    self._call(self._core.read_namespaced_pod, name, namespace, _preload_content=False)
                )
            if not kind.namespaced:
                return self._call(
                    self._custom.get_cluster_custom_object, kind.group, kind.version, kind.plural, name
                )
            return self._call(
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

    def patch(
        self, kind: ResourceKind, name: str, patch: dict[str, Any], *, namespace: str
    ) -> dict[str, Any]:
        """Apply a JSON merge patch and return the updated object."""
        if kind == POD:
            return self._json(
                self._call(self._core.patch_namespaced_pod, name, namespace, patch, _preload_content=False)
            )
        return self._call(
            self._custom.patch_namespaced_custom_object,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            patch,
        )

    def delete(
        self, kind: ResourceKind, name: str, *, namespace: str, propagation: str = "Foreground"
    ) -> bool:
        """Delete with ``propagation`` (Foreground/Background/Orphan). False when it did not exist."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            if kind == POD:
                self._call(
                    self._core.delete_namespaced_pod, name, namespace, body=body, _preload_content=False
                )
            else:
                self._call(
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

    def cancel(self, kind: ResourceKind, name: str, *, namespace: str, mode: str = "delete") -> None:
        """Stop a running object.

        ``mode="delete"`` (default) deletes it with Foreground propagation, so its pods go too; this works
        for every kind. ``mode="suspend"`` sets ``runPolicy.suspend`` (PyTorchJob) or ``spec.suspend``
        (batch Job), keeping the object (and its pods are removed by the operator); a suspended job is not
        terminal, so waits keep waiting until it is resumed or deleted. Katib v0.19 has no suspend, so
        Experiments (and other kinds) are deleted.
        """
        if mode == "suspend" and kind.kind in SUSPEND_PATCHES:
            try:
                self.patch(kind, name, SUSPEND_PATCHES[kind.kind], namespace=namespace)
            except KubeApiError as err:
                if err.status != 404:
                    raise
            return
        if mode not in ("delete", "suspend"):
            raise ValueError(f"cancel mode must be 'delete' or 'suspend', not {mode!r}")
        self.delete(kind, name, namespace=namespace)

    def wait(
        self,
        kind: ResourceKind,
        name: str,
        *,
        namespace: str,
        timeout: float,
        min_generation: int | None = None,
    ) -> WaitOutcome:
        """Watch the object until ``classify`` says it is terminal, it is deleted, or ``timeout`` passes.

        Resumes from the last resourceVersion after a dropped or expired watch, relists on 410 Gone and
        backs off on 429/5xx/connection errors; only non-retryable API errors end it as ``error``.
        """
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        rv: str | None = None
        failures = 0
        reloaded = False
        selector = f"metadata.name={name}"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return WaitOutcome(
                    "timeout", "Timeout", f'{kind.kind} "{name}" did not finish within {timeout:g}s', last
                )
            try:
                if rv is None:
                    listing = self._list(kind, namespace, deadline=deadline, field_selector=selector)
                    rv = str((listing.get("metadata") or {}).get("resourceVersion") or "") or None
                    items = [
                        i for i in listing.get("items") or [] if (i.get("metadata") or {}).get("name") == name
                    ]
                    if not items:
                        if last is None:
                            return not_found_outcome(kind, name, namespace)
                        return deleted_outcome(kind, name, last)
                    last = items[0]
                    if done := outcome_of(kind, last, min_generation):
                        return done
                started, seen = time.monotonic(), 0
                for etype, obj in self._watch(kind, namespace, selector, rv, remaining):
                    seen += 1
                    failures, reloaded = 0, False
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            log.info("watch of %s %s/%s expired (410): relisting", kind.kind, namespace, name)
                            rv = None
                            break
                        raise KubeApiError(
                            int(obj.get("code") or 500),
                            str(obj.get("reason") or "Error"),
                            str(obj.get("message") or ""),
                        )
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if etype == "BOOKMARK" or (obj.get("metadata") or {}).get("name") != name:
                        continue
                    if etype == "DELETED":
                        return deleted_outcome(kind, name, obj)
                    last = obj
                    if done := outcome_of(kind, last, min_generation):
                        return done
                if rv is not None and seen == 0 and time.monotonic() - started < 1.0:
                    # A server that closes watches at once must not make this loop spin.
                    failures += 1
                    time.sleep(min(self.retry.delay(failures), max(0.0, deadline - time.monotonic())))
            except Exception as exc:
                err = exc if isinstance(exc, KubeApiError) else to_api_error(exc)
                if err.status == 410:
                    rv = None
                    continue
                if err.status == 401 and self._reload is not None and not reloaded:
                    reloaded = True
                    self._reload()
                    continue
                if err.status not in (0, 429, 500, 502, 503, 504) and not is_retryable(exc):
                    return WaitOutcome("error", err.reason, err.message, last)
                failures += 1
                delay = min(
                    self.retry.delay(failures, retry_after(exc)), max(0.0, deadline - time.monotonic())
                )
                log.info(
                    "watch of %s %s/%s interrupted (%s); resuming in %.2fs",
                    kind.kind,
                    namespace,
                    name,
                    err,
                    delay,
                )
                time.sleep(delay)

    def _watch(
        self, kind: ResourceKind, namespace: str, selector: str, rv: str | None, remaining: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        seconds = max(1, min(WATCH_SECONDS, int(remaining)))
        query: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": seconds,
            "field_selector": selector,
            "_preload_content": False,
            "_request_timeout": (10, min(remaining, seconds) + 5),
        }
        if rv:
            query["resource_version"] = rv
        if kind == POD:
            resp = self._core.list_namespaced_pod(namespace, **query)
        else:
            resp = self._custom.list_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, **query
            )
        try:
            for line in iter_lines(resp):
                event = json.loads(line)
                yield str(event.get("type")), event.get("object") or {}
        finally:
            resp.release_conn()

    def job_logs(
        self,
        kind: ResourceKind,
        name: str,
        *,
        namespace: str,
        role: str = "master",
        tail_lines: int | None = None,
    ) -> dict[str, str]:
        """Logs of the pods of a job's ``role`` (``master``, ``worker``, ``all``), by pod name.

        PyTorchJob pods are found by the training operator's labels, batch Job and Katib trial pods by
        ``job-name``; the ``pytorch`` container is read when present.
        """
        pods: list[dict[str, Any]] = []
        if kind == POD:
            pod = self.get(POD, name, namespace=namespace)
            pods = [pod] if pod else []
        for selector in log_selectors(kind, name, role):
            pods = self._list(POD, namespace, label_selector=selector).get("items") or []
            if pods:
                break
        logs: dict[str, str] = {}
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            kwargs: dict[str, Any] = {"_preload_content": False}
            if (container := log_container(kind, pod)) is not None:
                kwargs["container"] = container
            if tail_lines is not None:
                kwargs["tail_lines"] = tail_lines
            try:
                resp = self._call(self._core.read_namespaced_pod_log, pod_name, namespace, **kwargs)
                text = resp.data.decode("utf-8", "replace")
            except KubeApiError as err:
                logs[pod_name] = f"<log unavailable: {err}>"
                continue
            if has_restarted(pod, kwargs.get("container")) or not text.strip():
                with contextlib.suppress(KubeApiError):  # 400 when there is no previous container
                    prev = self._call(
                        self._core.read_namespaced_pod_log, pod_name, namespace, previous=True, **kwargs
                    )
                    text = join_logs(prev.data.decode("utf-8", "replace"), text)
            logs[pod_name] = text
        return logs
