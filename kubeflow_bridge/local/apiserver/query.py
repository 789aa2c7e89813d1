"""Query parameters as the Kubernetes API server reads them."""

from __future__ import annotations

# Go's strconv.ParseBool truth values: the official Python clients send ``True``, kubectl ``true``.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def query_bool(value: str | None) -> bool:
    """True for the values the real API server takes as true (``?previous=True``, ``?watch=1`` ...)."""
    return value in _TRUE
