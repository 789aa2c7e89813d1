"""Errors, timestamps, and the list semantics (filter, sort_by, paging) of the KFP v2beta1 API."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# google.rpc.Code values the KFP API server returns for each HTTP status it uses.
_GRPC_CODES = {400: 3, 404: 5, 409: 6, 412: 9, 500: 13}

OPERATIONS = {
    1: "EQUALS",
    2: "NOT_EQUALS",
    3: "GREATER_THAN",
    5: "GREATER_THAN_EQUALS",
    6: "LESS_THAN",
    7: "LESS_THAN_EQUALS",
    8: "IN",
    9: "IS_SUBSTRING",
}

EPOCH = "1970-01-01T00:00:00Z"


class ApiError(Exception):
    """An error the API answers with a googlerpc Status body and an HTTP status."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message

    def body(self) -> dict[str, Any]:
        code = _GRPC_CODES.get(self.http_status, 2)
        return {
            "error": self.message,
            "code": code,
            "message": self.message,
            "details": [
                {"@type": "type.googleapis.com/google.rpc.Status", "code": code, "message": self.message}
            ],
        }


#: KFP's field length limits (apiserver/validation/length.go) for what a client names.
MAX_LENGTHS = {"Experiment.Name": 128, "Pipeline.Name": 128, "PipelineVersion.Name": 127}


def check_length(model: str, field: str, value: str) -> None:
    """Refuse a name longer than KFP stores, in KFP's words."""
    limit = MAX_LENGTHS[f"{model}.{field}"]
    if len(value) > limit:
        raise bad_request(f"{model}.{field} length cannot exceed {limit}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind} {ident!r} not found: check the id, or list {kind}s to find it")


def now_ts() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


def rfc3339(ts: float | None) -> str:
    """Renders an epoch timestamp as KFP does (seconds, UTC, `Z`); unset times render as the epoch."""
    if not ts:
        return EPOCH
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str, field: str) -> float:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError) as exc:
        raise bad_request(
            f"{field}: {value!r} is not an RFC 3339 timestamp (e.g. 2026-01-01T12:00:00Z)"
        ) from exc


@dataclass(frozen=True)
class Predicate:
    """One filter predicate, normalised from protojson (camelCase or snake_case, enum name or number)."""

    key: str
    operation: str
    value: Any
    is_time: bool


def _value_of(raw: dict[str, Any]) -> tuple[Any, bool]:
    for snake, camel in (
        ("string_value", "stringValue"),
        ("int_value", "intValue"),
        ("long_value", "longValue"),
    ):
        for name in (snake, camel):
            if name in raw:
                return (int(raw[name]) if snake != "string_value" else raw[name]), False
    for name in ("timestamp_value", "timestampValue"):
        if name in raw:
            return parse_time(raw[name], "filter timestamp_value"), True
    for snake, camel in (
        ("string_values", "stringValues"),
        ("int_values", "intValues"),
        ("long_values", "longValues"),
    ):
        for name in (snake, camel):
            if name in raw:
                values = (raw[name] or {}).get("values", [])
                return ([int(v) for v in values] if snake != "string_values" else list(values)), False
    raise bad_request(f"filter predicate on {raw.get('key')!r} has no value (set e.g. string_value)")


def parse_filter(text: str | None) -> list[Predicate]:
    """Parses the JSON-encoded Filter proto of the `filter` query parameter."""
    if not text:
        return []
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(f"filter is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("predicates", []), list):
        raise bad_request(
            'filter must be a JSON object like {"predicates": [{"key": ..., "operation": ...}]}'
        )
    predicates = []
    for item in raw.get("predicates", []):
        op = item.get("operation", item.get("op"))
        op_name = OPERATIONS.get(op) if isinstance(op, int) else op
        if op_name not in OPERATIONS.values():
            raise bad_request(f"filter operation {op!r} is not one of {sorted(OPERATIONS.values())}")
        if not item.get("key"):
            raise bad_request("filter predicate without a key")
        value, is_time = _value_of(item)
        if op_name == "IN" and not isinstance(value, list):
            raise bad_request("filter operation IN needs string_values, int_values or long_values")
        predicates.append(Predicate(str(item["key"]), str(op_name), value, is_time))
    return predicates


def _matches(pred: Predicate, actual: Any) -> bool:
    if pred.is_time and isinstance(actual, str):
        actual = parse_time(actual, pred.key) if actual else 0.0
    value = pred.value
    if pred.operation == "IN":
        return actual in value or str(actual) in [str(v) for v in value]
    if pred.operation == "IS_SUBSTRING":
        return str(value) in str(actual)
    if isinstance(value, int | float) and isinstance(actual, str):
        try:
            actual = float(actual)
        except ValueError:
            return False
    if pred.operation == "EQUALS":
        return bool(actual == value)
    if pred.operation == "NOT_EQUALS":
        return bool(actual != value)
    try:
        if pred.operation == "GREATER_THAN":
            return bool(actual > value)
        if pred.operation == "GREATER_THAN_EQUALS":
            return bool(actual >= value)
        if pred.operation == "LESS_THAN":
            return bool(actual < value)
        return bool(actual <= value)
    except TypeError:
        return False


def apply_list(
    items: list[dict[str, Any]],
    *,
    fields: dict[str, str],
    filter_text: str | None,
    sort_by: str | None,
    page_size: str | None,
    page_token: str | None,
    default_sort: str = "created_at",
) -> tuple[list[dict[str, Any]], int, str]:
    """Filters, sorts and pages API objects; returns (page, total_size, next_page_token).

    `fields` maps accepted filter/sort keys (incl. aliases such as `name` or `id`) to object fields.
    """

    def field_of(key: str) -> str:
        if key not in fields:
            raise bad_request(f"invalid filter/sort key {key!r}: use one of {sorted(fields)}")
        return fields[key]

    predicates = parse_filter(filter_text)
    for pred in predicates:
        name = field_of(pred.key)
        items = [it for it in items if _matches(pred, it.get(name))]
    total = len(items)
    sort_text = (sort_by or "").strip()
    descending = False
    sort_key = default_sort
    if sort_text:
        parts = sort_text.split()
        if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise bad_request(f"sort_by {sort_by!r}: use 'field' or 'field desc'")
        sort_key = field_of(parts[0])
        descending = len(parts) == 2 and parts[1].lower() == "desc"
    key: Callable[[dict[str, Any]], Any] = lambda it: (str(it.get(sort_key, "")), it.get("_seq", 0))  # noqa: E731
    items = sorted(items, key=key, reverse=descending)
    offset = 0
    if page_token:
        try:
            offset = int(json.loads(base64.urlsafe_b64decode(page_token.encode()).decode())["offset"])
        except (ValueError, KeyError, TypeError) as exc:
            raise bad_request(
                f"page_token {page_token!r} is invalid: pass next_page_token from the last page"
            ) from exc
    size = 20
    if page_size:
        try:
            size = int(page_size)
        except ValueError as exc:
            raise bad_request(f"page_size {page_size!r} is not an integer") from exc
        if size < 0:
            raise bad_request("page_size must not be negative")
        size = size or 20
    page = items[offset : offset + size]
    next_token = ""
    if offset + size < total:
        next_token = base64.urlsafe_b64encode(json.dumps({"offset": offset + size}).encode()).decode()
    return page, total, next_token
