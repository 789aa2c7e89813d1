"""The local KFP v2beta1 API over raw HTTP: bad input, error shapes, list filter/paging, storage state."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from . import kfp_fixtures as fx

kfp_server = fx.kfp_server
http = fx.http
kfp_client = fx.kfp_client
packages = fx.packages


@pytest.fixture(scope="module")
def demo_spec(packages: dict[str, Path]) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(packages["demo"].read_text())
    return spec


def _flt(*predicates: dict[str, Any]) -> str:
    return json.dumps({"predicates": list(predicates)})


def test_healthz_and_kfp_client_construction(http: httpx.Client, kfp_client: Any) -> None:
    body = http.get("/apis/v2beta1/healthz").json()
    assert body["multi_user"] is False
    assert kfp_client.get_kfp_healthz().multi_user is False


def test_experiments_create_get_list_archive_delete(http: httpx.Client) -> None:
    created = http.post(
        "/apis/v2beta1/experiments", json={"display_name": "exp-a", "description": "first"}
    ).json()
    assert created["storage_state"] == "AVAILABLE" and created["description"] == "first"
    assert http.get(f"/apis/v2beta1/experiments/{created['experiment_id']}").json() == created
    dup = http.post("/apis/v2beta1/experiments", json={"display_name": "exp-a"})
    assert dup.status_code == 409 and "already exists" in dup.json()["message"]
    http.post("/apis/v2beta1/experiments", json={"display_name": "exp-b"})
    listed = http.get(
        "/apis/v2beta1/experiments",
        params={"filter": _flt({"key": "display_name", "operation": "IS_SUBSTRING", "string_value": "exp-"})},
    ).json()
    assert {e["display_name"] for e in listed["experiments"]} == {"exp-a", "exp-b"}
    assert listed["total_size"] == 2
    eid = created["experiment_id"]
    assert http.post(f"/apis/v2beta1/experiments/{eid}:archive").status_code == 200
    assert http.get(f"/apis/v2beta1/experiments/{eid}").json()["storage_state"] == "ARCHIVED"
    assert http.post(f"/apis/v2beta1/experiments/{eid}:unarchive").status_code == 200
    assert http.get(f"/apis/v2beta1/experiments/{eid}").json()["storage_state"] == "AVAILABLE"
    assert http.delete(f"/apis/v2beta1/experiments/{eid}").status_code == 200
    assert http.get(f"/apis/v2beta1/experiments/{eid}").status_code == 404


def test_names_longer_than_kfp_stores_are_refused(http: httpx.Client, demo_spec: dict[str, Any]) -> None:
    """KFP's own limits (apiserver/validation/length.go), in its words; nothing is stored."""
    before = http.get("/apis/v2beta1/experiments").json().get("total_size", 0)
    long = http.post("/apis/v2beta1/experiments", json={"display_name": "e" * 10_000})
    assert long.status_code == 400 and "Experiment.Name length cannot exceed 128" in long.json()["message"]
    assert http.get("/apis/v2beta1/experiments").json().get("total_size", 0) == before
    pipelines = http.get("/apis/v2beta1/pipelines").json().get("total_size", 0)
    r = http.post("/apis/v2beta1/pipelines", json={"name": "p" * 129, "display_name": "p"})
    assert r.status_code == 400 and "Pipeline.Name length cannot exceed 128" in r.json()["message"]
    assert http.get("/apis/v2beta1/pipelines").json().get("total_size", 0) == pipelines
    limit = http.post("/apis/v2beta1/experiments", json={"display_name": "x" * 128})
    assert limit.status_code == 200, limit.text


def test_not_found_is_a_googlerpc_status(http: httpx.Client) -> None:
    resp = http.get("/apis/v2beta1/runs/no-such-run")
    assert resp.status_code == 404
    body = resp.json()
    assert body["code"] == 5 and "no-such-run" in body["message"] and body["error"] == body["message"]
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.Status"
    assert http.post("/apis/v2beta1/runs/no-such-run:terminate").status_code == 404
    assert http.get("/apis/v2beta1/pipelines/nope/versions").status_code == 404


def _bad_bodies(spec: dict[str, Any]) -> list[tuple[str, Any, str]]:
    no_root = copy.deepcopy(spec)
    del no_root["root"]
    bad_field = copy.deepcopy(spec)
    bad_field["root"]["dag"]["tasks"]["add"]["componentRef"] = {"name": 42, "bogus": True}
    dangling = copy.deepcopy(spec)
    dangling["root"]["dag"]["tasks"]["add"]["componentRef"]["name"] = "comp-missing"
    future = copy.deepcopy(spec)
    future["schemaVersion"] = "9.9.9"

    def run(parameters: dict[str, Any], pipeline_spec: Any = spec, **extra: Any) -> dict[str, Any]:
        return {
            "display_name": "bad",
            "pipeline_spec": pipeline_spec,
            "runtime_config": {"parameters": parameters},
            **extra,
        }

    return [
        ("unknown parameter", run({"a": 1, "nope": 2}), "nope"),
        ("wrong type", run({"a": "three"}), "must be an integer"),
        ("wrong bool", run({"fail": "maybe"}), "must be a boolean"),
        ("missing root", run({}, no_root), "missing 'root'"),
        ("bad field type", run({}, bad_field), "malformed pipeline_spec"),
        ("dangling component", run({}, dangling), "comp-missing"),
        ("unknown schema version", run({}, future), "schemaVersion '9.9.9'"),
        ("spec is not an object", run({}, "[1, 2"), "not valid YAML"),
        ("no spec", {"display_name": "x"}, "exactly one of pipeline_spec"),
        ("no display name", run({}, display_name=""), "display_name is empty"),
        ("unknown field", run({}, colour="red"), "unknown field"),
        ("unknown experiment", run({}, experiment_id="no-such-exp"), "no-such-exp"),
        (
            "gcs pipeline root",
            {**run({}), "runtime_config": {"pipeline_root": "gs://b/p"}},
            "use s3://bucket/prefix",
        ),
        (
            "s3 root without S3",
            {**run({}), "runtime_config": {"pipeline_root": "s3://b/p"}},
            "no S3 endpoint",
        ),
        (
            "unknown version",
            {
                "display_name": "x",
                "pipeline_version_reference": {"pipeline_id": "p", "pipeline_version_id": "v"},
            },
            "not found",
        ),
    ]


def test_bad_run_requests_are_refused_and_nothing_is_stored(
    http: httpx.Client, demo_spec: dict[str, Any]
) -> None:
    before = http.get("/apis/v2beta1/runs").json()["total_size"]
    for label, body, needle in _bad_bodies(demo_spec):
        resp = http.post("/apis/v2beta1/runs", json=body)
        assert resp.status_code in (400, 404), (label, resp.text)
        assert needle in resp.json()["message"], (label, resp.json()["message"])
    assert http.post("/apis/v2beta1/runs", content=b"{not json").status_code == 400
    assert http.get("/apis/v2beta1/runs").json()["total_size"] == before


def test_missing_required_parameter(http: httpx.Client, packages: dict[str, Path]) -> None:
    spec = yaml.safe_load(packages["slow"].read_text())
    resp = http.post("/apis/v2beta1/runs", json={"display_name": "x", "pipeline_spec": spec})
    assert resp.status_code == 400
    assert "pid_file" in resp.json()["message"] and "required" in resp.json()["message"]


def test_bad_uploads_and_recurring_runs(http: httpx.Client, demo_spec: dict[str, Any]) -> None:
    before = http.get("/apis/v2beta1/pipelines").json()["total_size"]
    garbage = http.post(
        "/apis/v2beta1/pipelines/upload", params={"name": "junk"}, files={"uploadfile": ("x.yaml", b"a: [1")}
    )
    assert garbage.status_code == 400 and "not valid YAML" in garbage.json()["message"]
    no_file = http.post(
        "/apis/v2beta1/pipelines/upload", params={"name": "junk"}, files={"other": ("x", b"")}
    )
    assert no_file.status_code == 400 and "uploadfile" in no_file.json()["message"]
    not_pipeline = http.post(
        "/apis/v2beta1/pipelines/upload",
        params={"name": "junk"},
        files={"uploadfile": ("x.yaml", b"kind: Pod\n")},
    )
    assert not_pipeline.status_code == 400 and "malformed pipeline_spec" in not_pipeline.json()["message"]
    unknown = http.post(
        "/apis/v2beta1/pipelines/upload_version",
        params={"name": "v", "pipelineid": "no-such-pipeline"},
        files={"uploadfile": ("x.yaml", yaml.safe_dump(demo_spec).encode())},
    )
    assert unknown.status_code == 404
    assert http.get("/apis/v2beta1/pipelines").json()["total_size"] == before

    def recurring(trigger: dict[str, Any], **extra: Any) -> httpx.Response:
        body = {"display_name": "r", "pipeline_spec": demo_spec, "trigger": trigger, **extra}
        return http.post("/apis/v2beta1/recurringruns", json=body)

    assert "6 fields" in recurring({"cron_schedule": {"cron": "* * *"}}).json()["message"]
    assert "outside 0-59" in recurring({"cron_schedule": {"cron": "99 * * * * *"}}).json()["message"]
    assert "exactly one" in recurring({}).json()["message"]
    assert "positive" in recurring({"periodic_schedule": {"interval_second": "0"}}).json()["message"]
    assert (
        "max_concurrency"
        in recurring({"periodic_schedule": {"interval_second": "5"}}, max_concurrency="50").json()["message"]
    )
    bad_param = recurring(
        {"periodic_schedule": {"interval_second": "5"}}, runtime_config={"parameters": {"zz": 1}}
    )
    assert bad_param.status_code == 400 and "zz" in bad_param.json()["message"]
    assert http.get("/apis/v2beta1/recurringruns").json()["total_size"] == 0


def test_list_runs_filter_sort_and_paging(
    http: httpx.Client, demo_spec: dict[str, Any], kfp_server: Any
) -> None:
    exp = http.post("/apis/v2beta1/experiments", json={"display_name": "listing"}).json()["experiment_id"]
    ids = []
    for name in ("list-alpha", "list-beta", "list-gamma"):
        body = {"display_name": name, "pipeline_spec": demo_spec, "experiment_id": exp}
        ids.append(http.post("/apis/v2beta1/runs", json=body).json()["run_id"])
    for run_id in ids:
        assert fx.wait_run(http, run_id)["state"] == "SUCCEEDED"

    def names(**params: Any) -> list[str]:
        resp = http.get("/apis/v2beta1/runs", params={"experiment_id": exp, **params})
        assert resp.status_code == 200, resp.text
        return [r["display_name"] for r in resp.json()["runs"]]

    assert names(sort_by="name desc") == ["list-gamma", "list-beta", "list-alpha"]
    assert names(filter=_flt({"key": "name", "operation": "EQUALS", "string_value": "list-beta"})) == [
        "list-beta"
    ]
    assert names(
        filter=_flt({"key": "display_name", "operation": "NOT_EQUALS", "stringValue": "list-beta"}),
        sort_by="name",
    ) == [
        "list-alpha",
        "list-gamma",
    ]
    in_pred = {"key": "run_id", "operation": 8, "string_values": {"values": [ids[0], ids[2]]}}
    assert names(filter=_flt(in_pred), sort_by="name") == ["list-alpha", "list-gamma"]
    assert len(names(filter=_flt({"key": "state", "operation": "EQUALS", "string_value": "SUCCEEDED"}))) == 3
    assert names(filter=_flt({"key": "state", "operation": "EQUALS", "string_value": "FAILED"})) == []
    past = {"key": "created_at", "operation": "GREATER_THAN", "timestamp_value": "2020-01-01T00:00:00Z"}
    future = {"key": "created_at", "operation": "GREATER_THAN", "timestamp_value": "2999-01-01T00:00:00Z"}
    assert len(names(filter=_flt(past))) == 3 and names(filter=_flt(future)) == []
    assert names(filter=_flt({"key": "name", "operation": "IS_SUBSTRING", "string_value": "amm"})) == [
        "list-gamma"
    ]

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        body = http.get(
            "/apis/v2beta1/runs",
            params={"experiment_id": exp, "page_size": 2, "page_token": token, "sort_by": "created_at"},
        ).json()
        assert body["total_size"] == 3
        seen += [r["run_id"] for r in body["runs"]]
        pages += 1
        token = body["next_page_token"]
        if not token:
            break
    assert pages == 2 and sorted(seen) == sorted(ids)

    bad_key = http.get(
        "/apis/v2beta1/runs",
        params={"filter": _flt({"key": "colour", "operation": "EQUALS", "string_value": "x"})},
    )
    assert bad_key.status_code == 400 and "colour" in bad_key.json()["message"]
    assert http.get("/apis/v2beta1/runs", params={"filter": "{oops"}).status_code == 400
    assert http.get("/apis/v2beta1/runs", params={"page_token": "garbage"}).status_code == 400

    # archive / unarchive / delete
    assert http.post(f"/apis/v2beta1/runs/{ids[0]}:archive").status_code == 200
    archived = _flt({"key": "storage_state", "operation": "EQUALS", "string_value": "ARCHIVED"})
    assert names(filter=archived) == ["list-alpha"]
    assert http.post(f"/apis/v2beta1/runs/{ids[0]}:unarchive").status_code == 200
    assert names(filter=archived) == []
    assert (kfp_server.state_dir / "runs" / ids[1]).is_dir()
    assert http.delete(f"/apis/v2beta1/runs/{ids[1]}").status_code == 200
    assert http.get(f"/apis/v2beta1/runs/{ids[1]}").status_code == 404
    assert not (kfp_server.state_dir / "runs" / ids[1]).exists()
    assert http.post(f"/apis/v2beta1/runs/{ids[2]}:terminate").status_code == 400  # already finished


def test_pipelines_create_list_versions_and_delete(http: httpx.Client, demo_spec: dict[str, Any]) -> None:
    body = {
        "pipeline": {"display_name": "made-by-json", "description": "json"},
        "pipeline_version": {"display_name": "v1", "pipeline_spec": demo_spec},
    }
    pipeline = http.post("/apis/v2beta1/pipelines/create", json=body).json()
    pid = pipeline["pipeline_id"]
    assert http.get(f"/apis/v2beta1/pipelines/names/made-by-json").json()["pipeline_id"] == pid  # noqa: F541
    version = http.post(
        f"/apis/v2beta1/pipelines/{pid}/versions", json={"display_name": "v2", "pipeline_spec": demo_spec}
    ).json()
    got = http.get(f"/apis/v2beta1/pipelines/{pid}/versions/{version['pipeline_version_id']}").json()
    assert got["pipeline_spec"]["pipelineInfo"]["name"] == "demo"
    versions = http.get(f"/apis/v2beta1/pipelines/{pid}/versions", params={"sort_by": "name desc"}).json()
    assert [v["name"] for v in versions["pipeline_versions"]] == ["v2", "made-by-json"]
    refused = http.delete(f"/apis/v2beta1/pipelines/{pid}")
    assert refused.status_code == 400 and "cascade" in refused.json()["message"]
    assert http.delete(f"/apis/v2beta1/pipelines/{pid}", params={"cascade": "true"}).status_code == 200
    assert http.get(f"/apis/v2beta1/pipelines/{pid}").status_code == 404
