"""Label and field selectors as the Kubernetes API parses them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubeflow_bridge.local.apiserver.errors import bad_request

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top(expr: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


# A requirement: (operator, key, values); operators: "=", "!=", "in", "notin", "exists", "!exists".
Requirement = tuple[str, str, frozenset[str]]


def _label_requirements(expr: str) -> list[Requirement]:
    reqs: list[Requirement] = []
    for term in _split_top(expr):
        m = _SET_RE.match(term)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append((m.group(2), m.group(1), values))
        elif "!=" in term:
            key, value = (x.strip() for x in term.split("!=", 1))
            reqs.append(("!=", key, frozenset([value])))
        elif "=" in term:
            key, value = (x.strip() for x in re.split(r"==?", term, maxsplit=1))
            reqs.append(("=", key, frozenset([value])))
        elif term.startswith("!") and re.fullmatch(r"[A-Za-z0-9_./-]+", term[1:].strip()):
            reqs.append(("!exists", term[1:].strip(), frozenset()))
        elif re.fullmatch(r"[A-Za-z0-9_./-]+", term):
            reqs.append(("exists", term, frozenset()))
        else:
            raise bad_request(f"unable to parse requirement: invalid label selector term {term!r}")
    return reqs


def _holds(op: str, value: str | None, values: frozenset[str]) -> bool:
    if op in ("=", "in"):
        return value in values
    if op in ("!=", "notin"):
        return value not in values
    if op == "exists":
        return value is not None
    return value is None


def parse_label_selector(expr: str | None) -> Matcher:
    """Return a predicate over an object for ``expr`` (``a=b,c!=d,e in (f,g),!h,i``)."""
    if not expr:
        return lambda obj: True
    reqs = _label_requirements(expr)

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(_holds(op, labels.get(key), values) for op, key, values in reqs)

    return match


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(expr: str | None) -> Matcher:
    """Return a predicate for a field selector (``metadata.name=x,status.phase!=Running``)."""
    if not expr:
        return lambda obj: True
    reqs: list[tuple[bool, str, str]] = []
    for term in _split_top(expr):
        if "!=" in term:
            path, value = (x.strip() for x in term.split("!=", 1))
            reqs.append((False, path, value))
        elif "=" in term:
            path, value = (x.strip() for x in re.split(r"==?", term, maxsplit=1))
            reqs.append((True, path, value))
        else:
            raise bad_request(f"invalid field selector term {term!r}: expected field=value or field!=value")

    def match(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, path) == value) == equal for equal, path, value in reqs)

    return match
