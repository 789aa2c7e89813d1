"""Pure parts of the local KFP API: cron triggers, filter predicates, list paging, spec checks."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kubeflow_bridge.local.kfp.query import ApiError, apply_list, parse_filter
from kubeflow_bridge.local.kfp.schedule import Cron
from kubeflow_bridge.local.kfp.spec import parse_package, unwrap_spec


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def _iso(ts: float | None) -> str:
    assert ts is not None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/5 * * * * *", "2026-01-01T00:00:01", "2026-01-01T00:00:05"),  # KFP's 6 fields, seconds first
        ("0 30 * * * *", "2026-01-01T10:31:00", "2026-01-01T11:30:00"),
        ("0 0 9 * * mon-fri", "2026-01-02T10:00:00", "2026-01-05T09:00:00"),  # Fri -> Mon
        ("15 10 * * *", "2026-01-01T10:15:00", "2026-01-02T10:15:00"),  # 5 standard fields
        ("0 0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),  # leap day
        ("@hourly", "2026-01-01T10:00:00", "2026-01-01T11:00:00"),
        ("@every 90s", "2026-01-01T10:00:00", "2026-01-01T10:01:30"),
        ("0 0 0 1,15 * ?", "2026-01-02T00:00:00", "2026-01-15T00:00:00"),
    ],
)
def test_cron_next_after(expr: str, after: str, expected: str) -> None:
    assert _iso(Cron.parse(expr).next_after(_ts(after))) == expected


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("* * *", "6 fields"),
        ("61 * * * * *", "outside 0-59"),
        ("*/0 * * * * *", "bad step"),
        ("x * * * * *", "not a number"),
    ],
)
def test_cron_errors_say_what_to_fix(expr: str, needle: str) -> None:
    with pytest.raises(ApiError) as err:
        Cron.parse(expr)
    assert err.value.http_status == 400 and needle in err.value.message


def test_filter_accepts_proto_names_camel_case_and_enum_numbers() -> None:
    items = [
        {"display_name": "a", "n": 1, "created_at": "2026-01-01T00:00:00Z", "_seq": 1},
        {"display_name": "b", "n": 2, "created_at": "2026-01-02T00:00:00Z", "_seq": 2},
        {"display_name": "c", "n": 3, "created_at": "2026-01-03T00:00:00Z", "_seq": 3},
    ]
    fields = {"name": "display_name", "n": "n", "created_at": "created_at"}

    def run(*preds: dict[str, object], sort: str | None = None) -> list[str]:
        page, _, _ = apply_list(
            items, fields=fields, filter_text=json.dumps({"predicates": list(preds)}), sort_by=sort,
            page_size=None, page_token=None,
        )  # fmt: skip
        return [p["display_name"] for p in page]

    assert run({"key": "n", "operation": "GREATER_THAN_EQUALS", "int_value": 2}) == ["b", "c"]
    assert run({"key": "n", "operation": 6, "longValue": "3"}) == ["a", "b"]
    assert run({"key": "created_at", "operation": "LESS_THAN", "timestampValue": "2026-01-02T00:00:00Z"}) == [
        "a"
    ]
    assert run(
        {"key": "name", "operation": "IN", "stringValues": {"values": ["a", "c"]}}, sort="name desc"
    ) == ["c", "a"]
    assert parse_filter(None) == []
    with pytest.raises(ApiError, match="operation"):
        parse_filter(json.dumps({"predicates": [{"key": "n", "operation": "LIKE", "int_value": 1}]}))
    with pytest.raises(ApiError, match="no value"):
        parse_filter(json.dumps({"predicates": [{"key": "n", "operation": "EQUALS"}]}))


def test_pipeline_packages_unwrap_platform_spec_documents() -> None:
    spec = {"pipelineInfo": {"name": "p"}, "root": {"dag": {"tasks": {}}}}
    two_docs = b"pipelineInfo:\n  name: p\nroot:\n  dag:\n    tasks: {}\n---\nplatforms:\n  kubernetes: {}\n"
    assert parse_package(two_docs) == spec
    assert unwrap_spec({"pipeline_spec": spec, "platform_spec": {}}) == spec
    settings = {
        "platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-a": {"nodeSelector": {}}}}}}
    }
    assert unwrap_spec({"pipeline_spec": spec, "platform_spec": settings}) == {
        **spec,
        "platformSpec": settings,
    }
    with pytest.raises(ApiError, match="empty"):
        parse_package(b"")


def test_trigger_start_and_end_times_bound_the_schedule() -> None:
    from kubeflow_bridge.local.kfp.runs_api import _next_time

    start, end = "2026-01-01T10:00:00Z", "2026-01-01T10:00:10Z"
    periodic = {
        "trigger": {"periodic_schedule": {"interval_second": "4", "start_time": start, "end_time": end}}
    }
    created = _ts("2026-01-01T09:00:00")
    first = _next_time(periodic, created)
    assert _iso(first) == "2026-01-01T10:00:00"  # nothing before start_time; the first run at it
    assert _iso(_next_time(periodic, _ts("2026-01-01T10:00:04"))) == "2026-01-01T10:00:08"
    assert _next_time(periodic, _ts("2026-01-01T10:00:08")) is None  # 10:00:12 is past end_time
    cron = {"trigger": {"cron_schedule": {"cron": "*/5 * * * * *", "start_time": start}}}
    assert _iso(_next_time(cron, created)) == "2026-01-01T10:00:00"


def test_spec_structure_is_checked_without_kfp_installed() -> None:
    """The daemon may run in the control-plane env (no kfp): field names are still checked."""
    from kubeflow_bridge.local.kfp.spec import _structure_problems

    spec = {
        "pipelineInfo": {"name": "p", "colour": "red"},
        "root": {
            "dag": {"tasks": {"t": {"componentRef": {"name": 1}, "taskInfo": {"name": "t"}, "retries": 3}}}
        },
        "deploymentSpec": {},
        "schemaVersion": "2.1.0",
        "extra": True,
    }
    problems = " | ".join(_structure_problems(spec))
    assert "pipeline_spec has unknown field(s) ['extra']" in problems
    assert "pipelineInfo has unknown field(s) ['colour']" in problems
    assert "task 't' in 'root' has unknown field(s) ['retries']" in problems
    assert "componentRef.name must be a string" in problems
    good = {**spec, "pipelineInfo": {"name": "p"}, "root": {"dag": {"tasks": {}}}}
    del good["extra"]
    assert _structure_problems(good) == []
