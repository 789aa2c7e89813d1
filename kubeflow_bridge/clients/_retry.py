"""Retry policy, error translation and backoff shared by the sync and async Kubernetes clients."""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: HTTP statuses worth retrying: throttling and server-side trouble.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for 429/5xx/connection errors.

    Args:
        max_attempts: Tries per call (the first one included) before the error is raised.
        initial_delay: Base delay in seconds before the second try.
        max_delay: Upper bound of one delay (Retry-After is honoured up to ``max_retry_after``).
        multiplier: Growth factor per try.
        jitter: Fraction of the delay drawn at random (0 = none, 1 = full jitter).
        max_retry_after: Longest Retry-After the client waits for.
    """

    max_attempts: int = 6
    initial_delay: float = 0.2
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before try ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_retry_after))
        base = min(self.max_delay, self.initial_delay * (self.multiplier ** max(0, attempt - 1)))
        return base * (1 - self.jitter) + random.uniform(0, base * self.jitter)


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
    headers: Mapping[str, str] | None = getattr(exc, "headers", None)
    if not headers:
        return None
    value = None
    for key in headers:
        if key.lower() == "retry-after":
            value = headers[key]
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


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


def to_api_error(exc: BaseException) -> KubeApiError:
    """Translate an ApiException (with its Status body) into a :class:`KubeApiError`."""
    status = http_status(exc)
    if status is None:
        return KubeApiError(0, type(exc).__name__, str(exc))
    body: Any = getattr(exc, "body", None)
    reason = str(getattr(exc, "reason", "") or "")
    message = reason
    causes: list[dict[str, Any]] = []
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            message = body[:500]
        else:
            if isinstance(parsed, dict):
                reason = str(parsed.get("reason") or reason)
                message = str(parsed.get("message") or message)
                causes = list((parsed.get("details") or {}).get("causes") or [])
    return KubeApiError(status, reason, message, causes)
