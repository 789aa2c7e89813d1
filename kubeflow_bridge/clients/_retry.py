"""What every client here shares: the retry policy, the retryable statuses, and the Status body parser."""

from __future__ import annotations

import email.utils
import json
import random
import time
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


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header value (delta seconds or an HTTP date) in seconds, else None."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def parse_status(body: Any, fallback_reason: str = "") -> tuple[str, str, list[dict[str, Any]]]:
    """``(reason, message, causes)`` of an error answer: a Kubernetes ``Status`` or KFP's ``{"message"}``.

    Args:
        body: The answer's body (bytes, text or already parsed).
        fallback_reason: The reason when the body names none (the HTTP reason phrase).
    """
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    parsed: Any = body
    if isinstance(body, str):
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            return fallback_reason, body[:500], []
    if not isinstance(parsed, dict):
        return fallback_reason, "" if parsed is None else str(parsed)[:500], []
    reason = str(parsed.get("reason") or fallback_reason)
    message = str(parsed.get("message") or parsed.get("error") or fallback_reason)[:1000]
    causes = list((parsed.get("details") or {}).get("causes") or [])
    return reason, message, causes


def unreachable(what: str, url: str, exc: BaseException) -> str:
    """The message for an endpoint that did not answer: which one, why, and what to do about it."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        hint = (
            "is the local runtime up? Run `kubeflow-bridge local up` and re-source its env file "
            "(`source .state/local/env`) so the connections name its current ports"
        )
    else:
        hint = "check the endpoint in the connection and that this machine can reach it"
    return f"cannot reach the {what} at {url} ({type(exc).__name__}: {exc}); {hint}"
