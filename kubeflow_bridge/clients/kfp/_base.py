"""Pure parts of the KFP client: run-state mapping, output extraction, errors, request helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from kubeflow_bridge.clients._retry import RETRYABLE_STATUSES, RetryPolicy, parse_status, retry_after_seconds
from kubeflow_bridge.clients.kfp._auth import KfpAuth, TokenFile, default_auth, is_login_redirect

API = "/apis/v2beta1"
_STATE_MAP = {
    "PENDING": "pending",
    "RUNTIME_STATE_UNSPECIFIED": "pending",
    "": "pending",
    "RUNNING": "running",
    "PAUSED": "running",
    "SUCCEEDED": "succeeded",
    "SKIPPED": "skipped",
    "FAILED": "failed",
    "ERROR": "failed",
    "CANCELING": "cancelled",
    "CANCELED": "cancelled",
    "CANCELLED": "cancelled",
    "TERMINATING": "cancelled",
}
TERMINAL_RUN_STATES = frozenset({"succeeded", "failed", "cancelled", "skipped"})


class KfpApiError(RuntimeError):
    """The KFP API answered with an error (after retries for 429/5xx)."""

    def __init__(self, status: int, message: str, path: str = ""):
        self.status = status
        self.message = message
        super().__init__(f"KFP API {path} answered {status}: {message}")


@dataclass(frozen=True)
class RunOutcome:
    """How waiting for a run ended.

    Attributes:
        run_id: The run.
        state: ``succeeded``, ``failed`` (SKIPPED included: the run did not do its work), ``cancelled``
            (CANCELING included) or ``timeout``.
        run: The last version of the run read.
        message: The run's error message, or what happened.
        reason: KFP's own state (``SUCCEEDED``, ``CANCELING``...) or ``Timeout``.
    """

    run_id: str
    state: str
    run: dict[str, Any] | None
    message: str = ""
    reason: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


def run_state(run: dict[str, Any]) -> str:
    """The run's state mapped to pending/running/succeeded/failed/cancelled/skipped (CANCELING -> cancelled)."""
    raw = str(run.get("state") or run.get("status") or "").upper()
    return _STATE_MAP.get(raw, "pending")


def run_outcome(run: dict[str, Any], run_id: str) -> RunOutcome | None:
    """The one answer to "is this KFP run done?": its outcome when terminal, None while it runs."""
    state = run_state(run)
    if state not in TERMINAL_RUN_STATES:
        return None
    raw = str(run.get("state") or run.get("status") or "")
    message = str((run.get("error") or {}).get("message") or "")
    if state == "skipped":
        return RunOutcome(run_id, "failed", run, message or f"run {run_id} was skipped", raw)
    return RunOutcome(run_id, state, run, message or f"run {run_id} {state}", raw)


def timeout_outcome(run: dict[str, Any], run_id: str, timeout: float) -> RunOutcome:
    return RunOutcome(
        run_id, "timeout", run, f"run {run_id} still {run_state(run)} after {timeout:g}s", "Timeout"
    )


def run_task_details(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's ``run_details.task_details`` (each task's state, times, inputs/outputs; [] when absent)."""
    return [t for t in ((run.get("run_details") or {}).get("task_details") or []) if isinstance(t, dict)]


def run_output_parameters(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{task display name: {parameter: value}}`` from the ``output_parameters`` extension field.

    The real v2beta1 API keeps output parameters in ML Metadata; the local runtime adds them per task.
    Tasks without the field are left out.
    """
    return {
        str(t.get("display_name") or t.get("task_id")): dict(t["output_parameters"])
        for t in run_task_details(run)
        if isinstance(t.get("output_parameters"), dict)
    }


def run_output_artifacts(run: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{task display name: {artifact: uri}}`` from the ``output_artifacts`` extension field."""
    return {
        str(t.get("display_name") or t.get("task_id")): dict(t["output_artifacts"])
        for t in run_task_details(run)
        if isinstance(t.get("output_artifacts"), dict)
    }


def equals_filter(key: str, value: str) -> str:
    """A v2beta1 ``filter`` query value matching ``key == value`` (e.g. ``display_name``)."""
    return json.dumps({"predicates": [{"key": key, "operation": "EQUALS", "string_value": value}]})


def _error_message(resp: httpx.Response) -> str:
    _reason, message, _causes = parse_status(resp.content, resp.reason_phrase)
    return message or resp.reason_phrase


def _check_run_body(body: dict[str, Any]) -> None:
    if not isinstance(body, dict) or not body.get("display_name"):
        raise ValueError("a KFP run request needs display_name (build it with kubeflow_bridge.resources.kfp)")
    if not (body.get("pipeline_spec") or body.get("pipeline_version_reference")):
        raise ValueError(
            "a KFP run request needs pipeline_spec (the compiled pipeline) or pipeline_version_reference"
        )


class _KfpBase:
    """Request building and auth state shared by the sync and async clients."""

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
        if not host.startswith(("http://", "https://")):
            raise ValueError(f"KFP host must be an http(s) URL such as http://127.0.0.1:8888, not {host!r}")
        self.host = host.rstrip("/")
        self.auth = auth or default_auth()
        self.verify = verify
        self.namespace = namespace
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._token_file = (
            TokenFile(self.auth.token_path)
            if self.auth.mode == "sa_token_file" and self.auth.token_path
            else None
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, auth={self.auth!r}, namespace={self.namespace!r})"

    def _auth_headers(self, *, force_reload: bool = False) -> dict[str, str]:
        if self.auth.mode == "token" and self.auth.token:
            return {"Authorization": f"Bearer {self.auth.token}"}
        if self._token_file is not None:
            return {"Authorization": f"Bearer {self._token_file.token(force=force_reload)}"}
        return {}

    def _ns_params(self, namespace: str | None) -> dict[str, str]:
        ns = namespace or self.namespace
        return {"namespace": ns} if ns else {}

    @staticmethod
    def _needs_login(resp: httpx.Response) -> bool:
        return resp.status_code in (401, 403) or is_login_redirect(
            resp.status_code, resp.headers.get("location")
        )

    @staticmethod
    def _retryable(resp: httpx.Response) -> bool:
        return resp.status_code in RETRYABLE_STATUSES

    @staticmethod
    def _retry_after(resp: httpx.Response) -> float | None:
        return retry_after_seconds(resp.headers.get("retry-after"))

    def _result(self, resp: httpx.Response, path: str) -> Any:
        if resp.status_code >= 300:
            raise KfpApiError(resp.status_code, _error_message(resp), path)
        if not resp.content:
            return {}
        return resp.json()

    def _list_params(
        self, namespace: str | None, page_size: int, page_token: str | None, filter: str | None, **extra: Any
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"page_size": page_size, **self._ns_params(namespace)}
        if page_token:
            params["page_token"] = page_token
        if filter:
            params["filter"] = filter
        params.update({k: v for k, v in extra.items() if v is not None})
        return params
