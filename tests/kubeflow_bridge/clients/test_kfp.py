from __future__ import annotations

import inspect
import logging
import os
import time
from typing import Any

import pytest

from kubeflow_bridge.clients._retry import RetryPolicy
from kubeflow_bridge.clients.kfp import (
    AsyncKfpClient,
    KfpApiError,
    KfpAuth,
    KfpAuthError,
    KfpClient,
    run_output_artifacts,
    run_output_parameters,
    run_state,
)

FAST = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05)
RUN_BODY = {
    "display_name": "anomaly run",
    "pipeline_spec": {"pipelineInfo": {"name": "p"}},
    "runtime_config": {"parameters": {"epochs": 3}},
}


async def call(client: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    out = getattr(client, method)(*args, **kwargs)
    return await out if inspect.isawaitable(out) else out


@pytest.fixture(params=["sync", "async"])
async def make_client(request, kfp_server):  # type: ignore[no-untyped-def]
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        cls = KfpClient if request.param == "sync" else AsyncKfpClient
        client = cls(kfp_server.url, retry=FAST, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await call(client, "close")


def test_run_state_mapping() -> None:
    assert [run_state({"state": s}) for s in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELING", "CANCELED", "PAUSED", "RUNTIME_STATE_UNSPECIFIED")] == [
        "pending", "running", "succeeded", "failed", "skipped", "cancelled", "cancelled", "running", "pending",
    ]  # fmt: skip


def test_output_parameters_extension_field() -> None:
    run = {
        "run_details": {
            "task_details": [
                {
                    "display_name": "evaluate",
                    "output_parameters": {"f_score": 0.91, "deploy": True},
                    "output_artifacts": {"plot": "s3://b/plot.png"},
                },
                {"display_name": "root"},
            ]
        }
    }
    assert run_output_parameters(run) == {"evaluate": {"f_score": 0.91, "deploy": True}}
    assert run_output_artifacts(run) == {"evaluate": {"plot": "s3://b/plot.png"}}
    assert run_output_parameters({"run_details": None}) == {}


def test_auth_repr_hides_secrets_and_validates() -> None:
    auth = KfpAuth(mode="dex", username="user@example.com", password="s3cret-pw")
    client = KfpClient("http://127.0.0.1:1", auth=auth)
    assert (
        "s3cret-pw" not in repr(auth) and "s3cret-pw" not in repr(client) and "user@example.com" in repr(auth)
    )
    assert "tok-123" not in repr(KfpAuth(mode="token", token="tok-123"))
    client.close()
    with pytest.raises(ValueError, match="needs username"):
        KfpAuth(mode="dex", username="u")
    with pytest.raises(ValueError, match="mode must be one of"):
        KfpAuth(mode="basic")
    with pytest.raises(ValueError, match="http"):
        KfpClient("127.0.0.1:8888")


async def test_experiments_runs_paging_and_filter(make_client, kfp_server) -> None:  # type: ignore[no-untyped-def]
    client = make_client(namespace="team-a")
    assert await call(client, "healthz") == {"multi_user": False}
    exp = await call(client, "get_or_create_experiment", "anomaly")
    assert exp["namespace"] == "team-a"
    assert (await call(client, "get_or_create_experiment", "anomaly"))["experiment_id"] == exp[
        "experiment_id"
    ]
    assert len(kfp_server.experiments) == 1
    assert (await call(client, "get_experiment", exp["experiment_id"]))["display_name"] == "anomaly"
    for i in range(5):
        await call(
            client,
            "create_run",
            {**RUN_BODY, "display_name": f"run-{i}", "experiment_id": exp["experiment_id"]},
        )
    first = await call(client, "list_runs", experiment_id=exp["experiment_id"], page_size=2)
    assert len(first["runs"]) == 2 and first["next_page_token"]
    second = await call(
        client,
        "list_runs",
        experiment_id=exp["experiment_id"],
        page_size=2,
        page_token=first["next_page_token"],
    )
    assert {r["display_name"] for r in second["runs"]} == {"run-2", "run-3"}
    only = await call(
        client,
        "list_runs",
        filter='{"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": "run-4"}]}',
    )
    assert [r["display_name"] for r in only["runs"]] == ["run-4"]
    with pytest.raises(ValueError, match="pipeline_spec"):
        await call(client, "create_run", {"display_name": "x"})
    with pytest.raises(KfpApiError, match="404") as info:
        await call(client, "get_run", "nope")
    assert info.value.status == 404 and "nope not found" in info.value.message


async def test_terminate_is_cancelled_never_succeeded(make_client, kfp_server) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    run = await call(client, "create_run", RUN_BODY)
    kfp_server.set_run(run["run_id"], state="RUNNING")
    await call(client, "terminate_run", run["run_id"])
    outcome = await call(client, "wait_for_run", run["run_id"], timeout=5, poll_interval=0.05)
    assert outcome.state == "cancelled" and not outcome.succeeded
    assert kfp_server.runs[run["run_id"]]["state"] == "CANCELING"


async def test_wait_for_run_success_timeout_and_retry(make_client, kfp_server) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    run = await call(client, "create_run", RUN_BODY)
    timed = await call(client, "wait_for_run", run["run_id"], timeout=0.2, poll_interval=0.05)
    assert timed.state == "timeout" and timed.run["state"] == "PENDING"
    kfp_server.set_run(run["run_id"], state="FAILED", error={"message": "task train failed"})
    failed = await call(client, "wait_for_run", run["run_id"], timeout=5, poll_interval=0.05)
    assert failed.state == "failed" and failed.message == "task train failed"
    await call(client, "retry_run", run["run_id"])
    assert kfp_server.runs[run["run_id"]]["state"] == "RUNNING"
    kfp_server.set_run(
        run["run_id"],
        state="SUCCEEDED",
        run_details={"task_details": [{"display_name": "evaluate", "output_parameters": {"f_score": 0.8}}]},
    )
    done = await call(client, "wait_for_run", run["run_id"], timeout=5, poll_interval=0.05)
    assert done.succeeded and run_output_parameters(done.run) == {"evaluate": {"f_score": 0.8}}


async def test_create_run_is_not_repeated_when_its_response_is_lost(make_client, kfp_server) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    await call(client, "create_run", {**RUN_BODY, "display_name": "earlier"})  # not ours: never returned
    returned = {}
    for mode in ("drop", "503"):
        kfp_server.lose_after_create.append(mode)
        body = {**RUN_BODY, "display_name": f"lost-{mode}"}
        returned[mode] = (await call(client, "create_run", body))["run_id"]
        named = [r for r in kfp_server.runs.values() if r["display_name"] == body["display_name"]]
        assert [r["run_id"] for r in named] == [returned[mode]]  # applied once, and that run returned
    again = await call(client, "create_run", {**RUN_BODY, "display_name": "lost-drop"})  # a new request
    assert again["run_id"] != returned["drop"]


async def test_retries_429_and_503(make_client, kfp_server) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    kfp_server.fail_next = [(429, 0.3), (503, None)]
    start = time.monotonic()
    assert await call(client, "healthz") == {"multi_user": False}
    assert time.monotonic() - start >= 0.3 and len(kfp_server.api_requests("GET", "healthz")) == 3
    kfp_server.fail_next = [(500, None)] * 10
    with pytest.raises(KfpApiError) as info:
        await call(client, "healthz")
    assert info.value.status == 500


async def test_recurring_run_and_upload(make_client, kfp_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    rec = await call(
        client,
        "create_recurring_run",
        {
            "display_name": "nightly",
            "trigger": {"cron_schedule": {"cron": "0 0 3 * * *"}},
            "max_concurrency": "1",
        },
    )
    assert (
        rec["status"] == "ENABLED"
        and kfp_server.recurring[rec["recurring_run_id"]]["display_name"] == "nightly"
    )
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("pipelineInfo:\n  name: anomaly\n")
    pipeline = await call(client, "upload_pipeline", spec, name="anomaly", description="VAE")
    upload = kfp_server.uploads[0]
    assert (
        upload["field"] == "uploadfile"
        and upload["filename"] == "pipeline.yaml"
        and upload["content"] == spec.read_bytes()
    )
    assert upload["query"]["name"] == "anomaly" and upload["query"]["description"] == "VAE"
    await call(client, "upload_pipeline_version", spec, pipeline_id=pipeline["pipeline_id"], name="v2")
    versions = await call(client, "list_pipeline_versions", pipeline["pipeline_id"])
    assert [v["display_name"] for v in versions["pipeline_versions"]] == ["anomaly", "v2"]


async def test_bearer_token_and_no_auth(make_client, kfp_server) -> None:  # type: ignore[no-untyped-def]
    kfp_server.mode, kfp_server.tokens = "token", {"good"}
    with pytest.raises(KfpApiError) as info:
        await call(make_client(), "healthz")
    assert info.value.status == 401 and kfp_server.seen[-1][3] is None  # no credentials sent
    assert await call(make_client(auth=KfpAuth(mode="token", token="good")), "healthz") == {
        "multi_user": False
    }
    assert kfp_server.seen[-1][3] == "Bearer good"


async def test_sa_token_file_reread_on_rotation_and_401(
    make_client, kfp_server, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    token_file = tmp_path / "token"
    token_file.write_text("tok-1\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    kfp_server.mode, kfp_server.tokens = "token", {"tok-1"}
    client = make_client(auth=KfpAuth(mode="sa_token_file"))
    await call(client, "healthz")
    kfp_server.tokens = {"tok-2"}
    token_file.write_text("tok-2\n")  # kubelet rotates the projected token
    os.utime(token_file, (time.time() + 5, time.time() + 5))
    await call(client, "healthz")
    assert kfp_server.seen[-1][3] == "Bearer tok-2"
    # rotated without an mtime change we could see: the 401 forces a re-read
    kfp_server.tokens = {"tok-3"}
    token_file.write_text("tok-3\n")
    os.utime(token_file, (time.time() + 5, time.time() + 5))
    kfp_server.seen.clear()
    await call(client, "healthz")
    assert kfp_server.seen[-1][3] == "Bearer tok-3"


async def test_sa_token_file_missing_says_what_to_fix(make_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = make_client(auth=KfpAuth(mode="sa_token_file", token_path=str(tmp_path / "absent")))
    with pytest.raises(KfpAuthError, match="KF_PIPELINES_SA_TOKEN_PATH"):
        await call(client, "healthz")


@pytest.mark.parametrize("unauth", [302, 401, 403])
async def test_dex_login_keeps_cookie_and_relogs_when_session_expires(
    make_client, kfp_server, unauth, caplog
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    kfp_server.mode, kfp_server.users, kfp_server.unauthenticated_status = (
        "dex",
        {"user@example.com": "pw-123"},
        unauth,
    )
    client = make_client(auth=KfpAuth(mode="dex", username="user@example.com", password="pw-123"))
    assert await call(client, "healthz") == {"multi_user": True}
    await call(client, "list_experiments")
    assert kfp_server.logins == 1  # the cookie was kept
    kfp_server.sessions.clear()  # the session expires
    await call(client, "list_experiments")
    assert kfp_server.logins == 2
    assert "pw-123" not in caplog.text and not any(s for s in kfp_server.seen if "pw-123" in str(s))


async def test_dex_wrong_password_is_a_clear_error(make_client, kfp_server) -> None:  # type: ignore[no-untyped-def]
    kfp_server.mode, kfp_server.users = "dex", {"user@example.com": "pw-123"}
    client = make_client(auth=KfpAuth(mode="dex", username="user@example.com", password="wrong"))
    with pytest.raises(KfpAuthError, match="check the username and password") as info:
        await call(client, "healthz")
    assert "wrong" not in str(info.value)
