"""The API server's conf check at submit: every bad field named, nothing passed on; others untouched.

The param lookup is the named seam (the real one reads the serialized DAG from the metadata DB; the
standalone test in tests/dags/test_e2e_compare.py exercises it through the real API server).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from kubeflow_bridge import workflow
from kubeflow_bridge.conf_check import DagRunConfCheck, conf_problems

SCHEMAS = {name: workflow.PARAM_SCHEMAS[name] for name in ("rows", "window_end", "source")}


def client(seen: list[Any]) -> TestClient:
    async def trigger(request: Request) -> JSONResponse:
        seen.append(await request.body())
        return JSONResponse({"dag_run_id": "manual__1"})

    app = Starlette(routes=[Route("/api/v2/dags/{dag_id}/dagRuns", trigger, methods=["POST", "GET"])])
    lookup = {"ours": SCHEMAS}.get
    return TestClient(DagRunConfCheck(app, lookup=lookup))


def test_every_bad_field_is_named_and_nothing_is_passed_on() -> None:
    seen: list[Any] = []
    conf = {"rowz": 5000, "rows": 5, "window_end": "yesterday", "source": "synthetic"}
    response = client(seen).post("/api/v2/dags/ours/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 400 and seen == []
    problems = response.json()["detail"].split("; ")
    assert problems == [
        "Unknown param 'rowz' (did you mean 'rows'?): the params are rows, source, window_end",
        "Invalid input for param rows: 5 is less than the minimum of 1000 (minimum)",
        "Invalid input for param window_end: 'yesterday' is not a 'date-time' (format)",
    ]


def test_a_good_conf_and_other_requests_pass_through_unchanged() -> None:
    seen: list[Any] = []
    c = client(seen)
    body = {"logical_date": None, "conf": {"rows": 5000, "window_end": "2026-02-01T00:00:00Z"}}
    assert c.post("/api/v2/dags/ours/dagRuns", json=body).json() == {"dag_run_id": "manual__1"}
    assert [json.loads(b) for b in seen] == [body]  # the body reaches Airflow as sent
    # A DAG that does not take the check (not tagged kubeflow-bridge), no conf, a body that is no JSON
    # (Airflow answers that itself), and other methods: all passed on as they came.
    assert c.post("/api/v2/dags/theirs/dagRuns", json={"conf": {"rowz": 1}}).status_code == 200
    assert c.post("/api/v2/dags/ours/dagRuns", json={"logical_date": None}).status_code == 200
    assert c.post("/api/v2/dags/ours/dagRuns", content=b"not json").status_code == 200
    assert c.get("/api/v2/dags/ours/dagRuns").status_code == 200
    assert seen[1:] == [b'{"conf":{"rowz":1}}', b'{"logical_date":null}', b"not json", b""]


def test_conf_problems_by_hand() -> None:
    assert conf_problems(None, SCHEMAS) == [] and conf_problems({"rows": 2000}, SCHEMAS) == []
    assert conf_problems([1], SCHEMAS) == ["conf must be a JSON object of params, not list"]
    assert json.dumps(conf_problems({"zzz": 1}, SCHEMAS)).count("Unknown param 'zzz'") == 1
    assert conf_problems({"window_end": "2026-02-01T00:00:00Z"}, SCHEMAS) == []
    assert conf_problems({"window_end": None}, SCHEMAS) == []  # empty: the run's data interval
