"""Errors of the Kubernetes clients, and how ApiExceptions of ``kubernetes``/``kubernetes_asyncio`` map to them."""

from __future__ import annotations

from typing import Any

from kubeflow_bridge.clients._retry import RETRYABLE_STATUSES, parse_status, retry_after_seconds, unreachable


class KubeApiError(RuntimeError):
    """The Kubernetes API answered with an error the client does not retry.

    Attributes:
        status: HTTP status (0 for a connection error).
        reason: The Status reason (``NotFound``, ``Forbidden``, ``Invalid`` ...).
        message: The Status message.
        causes: The Status details' causes, when the API sent them.
    """

    def __init__(self, status: int, reason: str, message: str, causes: list[dict[str, Any]] | None = None):
        self.status = status
        self.reason = reason
        self.message = message
        self.causes = causes or []
        detail = "; ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in self.causes)
        super().__init__(f"{status} {reason}: {message}" + (f" ({detail})" if detail else ""))


class IdentityMismatchError(KubeApiError):
    """An object with the requested name exists but was created by someone else (identity label differs)."""


class AlreadyExistsError(KubeApiError):
    """The object exists and ``if_exists=fail`` was asked for."""


def http_status(exc: BaseException) -> int | None:
    """HTTP status of a ``kubernetes``/``kubernetes_asyncio`` ApiException, else None."""
    status = getattr(exc, "status", None)
    # kubernetes >= 35 raises subclasses (NotFoundException, ServiceException ...) of ApiException.
    is_api_exception = any(cls.__name__ == "ApiException" for cls in type(exc).__mro__)
    return status if isinstance(status, int) and is_api_exception else None


def retry_after(exc: BaseException) -> float | None:
    """The Retry-After header of an ApiException in seconds (delta or HTTP date), else None."""
    headers = getattr(exc, "headers", None) or {}
    return retry_after_seconds(next((v for k, v in headers.items() if k.lower() == "retry-after"), None))


def is_connection_error(exc: BaseException) -> bool:
    """True for transport failures worth a retry (refused, reset, timeouts, truncated streams)."""
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    module = type(exc).__module__
    return module.startswith(("urllib3", "aiohttp", "http.client")) or isinstance(exc, EOFError)


def is_retryable(exc: BaseException) -> bool:
    status = http_status(exc)
    if status is not None:
        return status in RETRYABLE_STATUSES
    return is_connection_error(exc)


def to_api_error(exc: BaseException, host: str | None = None) -> KubeApiError:
    """Translate an ApiException (with its Status body) into a :class:`KubeApiError`; a connection
    error names the API server ``host`` and what to check."""
    status = http_status(exc)
    if status is None:
        if host and is_connection_error(exc):
            return KubeApiError(0, "Unreachable", unreachable("Kubernetes API", host, exc))
        return KubeApiError(0, type(exc).__name__, str(exc))
    reason, message, causes = parse_status(getattr(exc, "body", None), str(getattr(exc, "reason", "") or ""))
    return KubeApiError(status, reason, message or reason, causes)
