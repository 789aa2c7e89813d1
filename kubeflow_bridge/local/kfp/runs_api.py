"""Handlers of /apis/v2beta1/runs and /apis/v2beta1/recurringruns, and the recurring-run scheduler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from kubeflow_bridge.local.kfp.common import KfpState, new_id, read_body, respond
from kubeflow_bridge.local.kfp.platform import public_spec
from kubeflow_bridge.local.kfp.query import ApiError, apply_list, bad_request, now_ts, parse_time, rfc3339
from kubeflow_bridge.local.kfp.runs import TERMINAL, require_state
from kubeflow_bridge.local.kfp.schedule import Cron, parse_interval
from kubeflow_bridge.local.kfp.spec import unwrap_spec, validate_parameters, validate_spec
from kubeflow_bridge.local.kfp.store import public

log = logging.getLogger(__name__)

_RUN_FIELDS = {
    "experiment_id", "run_id", "display_name", "storage_state", "description", "pipeline_version_id",
    "pipeline_spec", "pipeline_version_reference", "runtime_config", "service_account", "created_at",
    "scheduled_at", "finished_at", "state", "error", "run_details", "recurring_run_id", "state_history",
    "plugins_input", "plugins_output",
}  # fmt: skip
_RUN_KEYS = {
    "name": "display_name", "display_name": "display_name", "id": "run_id", "run_id": "run_id",
    "created_at": "created_at", "finished_at": "finished_at", "scheduled_at": "scheduled_at", "state": "state",
    "storage_state": "storage_state", "experiment_id": "experiment_id", "recurring_run_id": "recurring_run_id",
    "description": "description",
}  # fmt: skip
_RECURRING_FIELDS = {
    "recurring_run_id", "display_name", "description", "pipeline_version_id", "pipeline_spec",
    "pipeline_version_reference", "runtime_config", "service_account", "max_concurrency", "trigger", "mode",
    "created_at", "updated_at", "status", "error", "no_catchup", "namespace", "experiment_id", "plugins_input",
}  # fmt: skip
_RECURRING_KEYS = {
    "name": "display_name", "display_name": "display_name", "id": "recurring_run_id",
    "recurring_run_id": "recurring_run_id", "created_at": "created_at", "updated_at": "updated_at",
    "status": "status", "experiment_id": "experiment_id", "description": "description",
}  # fmt: skip


def _resolve_spec(state: KfpState, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The spec to execute and the version reference to echo, from an inline spec or a stored version."""
    ref = body.get("pipeline_version_reference")
    if body.get("pipeline_version_id") and not ref:
        ref = {"pipeline_version_id": body["pipeline_version_id"]}
    inline = body.get("pipeline_spec")
    if bool(inline) == bool(ref):
        raise bad_request(
            "set exactly one of pipeline_spec (the compiled pipeline) or pipeline_version_reference"
        )
    if inline:
        spec = unwrap_spec(inline)
        validate_spec(spec)
        return spec, None
    assert isinstance(ref, dict)
    return state.version_spec(ref), {
        "pipeline_id": ref.get("pipeline_id", ""),
        "pipeline_version_id": ref.get("pipeline_version_id", ""),
    }


def _experiment_id(state: KfpState, body: dict[str, Any], query_id: str | None) -> str:
    exp_id = body.get("experiment_id") or query_id or ""
    if not exp_id and state.multi_user:  # the experiment gives the run its namespace
        raise bad_request("Experiment id can not be empty in multi-user mode")
    if not exp_id:
        return state.default_experiment_id()
    state.must_get("experiments", exp_id, "experiment")
    return str(exp_id)


def create_run_record(
    state: KfpState,
    body: dict[str, Any],
    *,
    query_experiment_id: str | None = None,
    recurring_run_id: str = "",
    scheduled_at: float | None = None,
) -> dict[str, Any]:
    """Validates and stores a run (state PENDING) and schedules it. Nothing is stored on a bad request."""
    display_name = (body.get("display_name") or "").strip()
    if not display_name:
        raise bad_request("run display_name is empty: give the run a name")
    spec, ref = _resolve_spec(state, body)
    runtime_config = dict(body.get("runtime_config") or {})
    params = validate_parameters(spec, runtime_config.get("parameters"))
    root = runtime_config.get("pipeline_root") or ""
    state.executor.roots(root)
    exp_id = _experiment_id(state, body, query_experiment_id)
    created = now_ts()
    run = {
        "experiment_id": exp_id,
        "run_id": new_id(),
        "display_name": display_name,
        "storage_state": "AVAILABLE",
        "description": body.get("description") or "",
        "runtime_config": {"parameters": runtime_config.get("parameters") or {}, "pipeline_root": root},
        "service_account": body.get("service_account") or "",
        "created_at": rfc3339(created),
        "scheduled_at": rfc3339(scheduled_at or created),
        "finished_at": rfc3339(None),
        "state": "PENDING",
        "error": None,
        "recurring_run_id": recurring_run_id,
        "state_history": [{"update_time": rfc3339(created), "state": "PENDING"}],
        "_spec": spec,
        "_params": params,
        "_attempt": 1,
        "_created": created,
    }
    if ref is not None:
        run["pipeline_version_reference"] = ref
    else:
        run["pipeline_spec"] = public_spec(spec)
    state.store.put("runs", str(run["run_id"]), run)
    exp = state.store.get("experiments", exp_id)
    if exp is not None:
        exp["last_run_created_at"] = run["created_at"]
        state.store.put("experiments", exp_id, exp)
    state.executor.start(run)
    return run


def _present(state: KfpState, run: dict[str, Any]) -> dict[str, Any]:
    out = public(run)
    out["run_details"] = state.executor.details(run)
    return out


def add_routes(app: web.Application, state: KfpState) -> None:
    base = "/apis/v2beta1"
    rid = "{run_id:[^/:]+}"
    r = app.router

    async def create_run(request: web.Request) -> web.Response:
        body = await read_body(request, _RUN_FIELDS, wrapper="run")
        run = create_run_record(state, body, query_experiment_id=request.query.get("experiment_id"))
        return respond(_present(state, run))

    async def get_run(request: web.Request) -> web.Response:
        run = state.must_get("runs", request.match_info["run_id"], "run")
        return respond(_present(state, run))

    async def list_runs(request: web.Request) -> web.Response:
        q = request.query
        runs = state.scoped(
            state.store.all("runs"),
            q.get("namespace") or "",
            q.get("experiment_id") or "",
            by_experiment=True,
        )
        if q.get("experiment_id"):
            state.must_get("experiments", q["experiment_id"], "experiment")
            runs = [x for x in runs if x["experiment_id"] == q["experiment_id"]]
        page, total, token = apply_list(
            runs,
            fields=_RUN_KEYS,
            filter_text=q.get("filter"),
            sort_by=q.get("sort_by"),
            page_size=q.get("page_size"),
            page_token=q.get("page_token"),
        )
        return respond(
            {"runs": [_present(state, x) for x in page], "total_size": total, "next_page_token": token}
        )

    async def delete_run(request: web.Request) -> web.Response:
        run = state.must_get("runs", request.match_info["run_id"], "run")
        if run["state"] not in TERMINAL and run["state"] != "CANCELING":
            await state.executor.terminate(run)
        state.store.delete("runs", run["run_id"])
        state.executor.forget(run["run_id"])
        return respond({})

    async def terminate_run(request: web.Request) -> web.Response:
        run = state.must_get("runs", request.match_info["run_id"], "run")
        require_state(run, ("PENDING", "RUNNING", "CANCELING"), "terminate")
        if run["state"] != "CANCELING":
            await state.executor.terminate(run)
        return respond({})

    async def retry_run(request: web.Request) -> web.Response:
        run = state.must_get("runs", request.match_info["run_id"], "run")
        require_state(run, ("FAILED", "CANCELING", "CANCELED"), "retry")
        if state.executor.alive(run["run_id"]):
            raise bad_request(f"run {run['run_id']!r} is still stopping; retry it in a few seconds")
        run["_attempt"] = run.get("_attempt", 1) + 1
        run["error"] = None
        run["finished_at"] = rfc3339(None)
        run["_finished"] = None
        run["state"] = "PENDING"
        run["state_history"].append({"update_time": rfc3339(now_ts()), "state": "PENDING"})
        state.store.put("runs", run["run_id"], run)
        state.executor.start(run)
        return respond({})

    def storage(value: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            run = state.must_get("runs", request.match_info["run_id"], "run")
            run["storage_state"] = value
            state.store.put("runs", run["run_id"], run)
            return respond({})

        return handler

    async def pod_logs(request: web.Request) -> web.Response:
        """The KFP UI's log endpoint: a task's output by its pod name."""
        pod, run_id = request.query.get("podname", ""), request.query.get("runid", "")
        if not pod or not run_id:
            raise bad_request("pass podname and runid (task_details[].pod_name and the run_id)")
        text = state.executor.task_log(state.must_get("runs", run_id, "run"), pod)
        if text is None:
            raise ApiError(404, f"run {run_id!r} has no task with pod_name {pod!r}")
        return web.Response(text=text, content_type="text/plain")

    r.add_get("/k8s/pod/logs", pod_logs)
    r.add_post(f"{base}/runs", create_run)
    r.add_get(f"{base}/runs", list_runs)
    r.add_get(f"{base}/runs/{rid}", get_run)
    r.add_delete(f"{base}/runs/{rid}", delete_run)
    r.add_post(f"{base}/runs/{rid}:terminate", terminate_run)
    r.add_post(f"{base}/runs/{rid}:retry", retry_run)
    r.add_post(f"{base}/runs/{rid}:archive", storage("ARCHIVED"))
    r.add_post(f"{base}/runs/{rid}:unarchive", storage("AVAILABLE"))
    _add_recurring_routes(app, state)


def _check_trigger(trigger: dict[str, Any]) -> dict[str, Any]:
    cron = trigger.get("cron_schedule")
    periodic = trigger.get("periodic_schedule")
    if bool(cron) == bool(periodic):
        raise bad_request(
            "trigger needs exactly one of cron_schedule {cron} or periodic_schedule {interval_second}"
        )
    sched = cron or periodic
    assert isinstance(sched, dict)
    if cron:
        Cron.parse(str(cron.get("cron") or ""))
    else:
        assert isinstance(periodic, dict)
        parse_interval(periodic.get("interval_second"))
        periodic["interval_second"] = str(periodic["interval_second"])  # int64 is a string in protojson
    for key in ("start_time", "end_time"):
        if sched.get(key):
            parse_time(sched[key], f"trigger {key}")
    return trigger


def _add_recurring_routes(app: web.Application, state: KfpState) -> None:
    base = "/apis/v2beta1/recurringruns"
    rid = "{recurring_run_id:[^/:]+}"

    async def create(request: web.Request) -> web.Response:
        body = await read_body(request, _RECURRING_FIELDS, wrapper="recurring_run")
        name = (body.get("display_name") or "").strip()
        if not name:
            raise bad_request("recurring run display_name is empty: give it a name")
        spec, ref = _resolve_spec(state, body)
        runtime_config = dict(body.get("runtime_config") or {})
        validate_parameters(spec, runtime_config.get("parameters"))
        trigger = _check_trigger(body.get("trigger") or {})
        try:
            max_concurrency = int(body.get("max_concurrency") or 1)
        except ValueError as exc:
            raise bad_request("max_concurrency must be an integer between 1 and 10") from exc
        if not 1 <= max_concurrency <= 10:
            raise bad_request("max_concurrency must be between 1 and 10")
        mode = body.get("mode") or "ENABLE"
        if mode not in ("ENABLE", "DISABLE", "MODE_UNSPECIFIED"):
            raise bad_request(f"mode {mode!r} must be ENABLE or DISABLE")
        exp_id = _experiment_id(state, body, request.query.get("experiment_id"))
        created = now_ts()
        rec = {
            "recurring_run_id": new_id(),
            "display_name": name,
            "description": body.get("description") or "",
            "runtime_config": {"parameters": runtime_config.get("parameters") or {}, "pipeline_root": ""},
            "service_account": body.get("service_account") or "",
            "max_concurrency": str(max_concurrency),
            "trigger": trigger,
            "mode": "DISABLE" if mode == "DISABLE" else "ENABLE",
            "created_at": rfc3339(created),
            "updated_at": rfc3339(created),
            "status": "DISABLED" if mode == "DISABLE" else "ENABLED",
            "error": None,
            "no_catchup": bool(body.get("no_catchup")),
            "namespace": body.get("namespace") or "",
            "experiment_id": exp_id,
            "_spec": spec,
            "_last": created,
        }
        if ref is not None:
            rec["pipeline_version_reference"] = ref
        else:
            rec["pipeline_spec"] = spec
        state.store.put("recurring_runs", str(rec["recurring_run_id"]), rec)
        return respond(rec)

    async def get(request: web.Request) -> web.Response:
        return respond(
            state.must_get("recurring_runs", request.match_info["recurring_run_id"], "recurring run")
        )

    async def list_(request: web.Request) -> web.Response:
        q = request.query
        items = state.scoped(
            state.store.all("recurring_runs"),
            q.get("namespace") or "",
            q.get("experiment_id") or "",
            by_experiment=True,
        )
        if q.get("experiment_id"):
            items = [x for x in items if x["experiment_id"] == q["experiment_id"]]
        page, total, token = apply_list(
            items,
            fields=_RECURRING_KEYS,
            filter_text=q.get("filter"),
            sort_by=q.get("sort_by"),
            page_size=q.get("page_size"),
            page_token=q.get("page_token"),
        )
        # the real API serialises this one field in camelCase; kfp_server_api expects it so
        return respond(
            {"recurringRuns": [public(x) for x in page], "total_size": total, "next_page_token": token}
        )

    def set_mode(enable: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            rec = state.must_get("recurring_runs", request.match_info["recurring_run_id"], "recurring run")
            if enable and rec["status"] != "ENABLED" and rec.get("no_catchup"):
                rec["_last"] = now_ts()
            rec["mode"] = "ENABLE" if enable else "DISABLE"
            rec["status"] = "ENABLED" if enable else "DISABLED"
            rec["updated_at"] = rfc3339(now_ts())
            state.store.put("recurring_runs", rec["recurring_run_id"], rec)
            return respond({})

        return handler

    async def delete(request: web.Request) -> web.Response:
        rec = state.must_get("recurring_runs", request.match_info["recurring_run_id"], "recurring run")
        state.store.delete("recurring_runs", rec["recurring_run_id"])
        return respond({})

    app.router.add_post(base, create)
    app.router.add_get(base, list_)
    app.router.add_get(f"{base}/{rid}", get)
    app.router.add_delete(f"{base}/{rid}", delete)
    app.router.add_post(f"{base}/{rid}:enable", set_mode(True))
    app.router.add_post(f"{base}/{rid}:disable", set_mode(False))


def _next_time(rec: dict[str, Any], after: float) -> float | None:
    trigger = rec["trigger"]
    sched = trigger.get("cron_schedule") or trigger.get("periodic_schedule") or {}
    start = parse_time(sched["start_time"], "start_time") if sched.get("start_time") else None
    if start is not None and after < start:
        after = (
            start - 1e-6 if trigger.get("cron_schedule") else start - parse_interval(sched["interval_second"])
        )
    if trigger.get("cron_schedule"):
        nxt = Cron.parse(sched["cron"]).next_after(after)
    else:
        nxt = after + parse_interval(sched["interval_second"])
    end = parse_time(sched["end_time"], "end_time") if sched.get("end_time") else None
    if nxt is None or (end is not None and nxt > end):
        return None
    return nxt


def fire_due(state: KfpState, now: float) -> int:
    """Creates the runs that enabled recurring runs owe at `now`; returns how many it created."""
    fired = 0
    runs = state.store.all("runs")
    for rec in state.store.all("recurring_runs"):
        fired_here = 0
        if rec["status"] != "ENABLED":
            continue
        active = sum(
            1
            for x in runs
            if x.get("recurring_run_id") == rec["recurring_run_id"] and x["state"] in ("PENDING", "RUNNING")
        )
        for _ in range(10):  # bounded catch-up per tick
            nxt = _next_time(rec, rec["_last"])
            if nxt is None or nxt > now or active >= int(rec["max_concurrency"]):
                break
            if rec.get("no_catchup"):  # skip to the latest due time
                while True:
                    later = _next_time(rec, nxt)
                    if later is None or later > now:
                        break
                    nxt = later
            body = {
                "display_name": f"{rec['display_name']}-{rfc3339(nxt)}",
                "description": rec["description"],
                "pipeline_spec": rec.get("pipeline_spec"),
                "pipeline_version_reference": rec.get("pipeline_version_reference"),
                "runtime_config": rec["runtime_config"],
                "service_account": rec["service_account"],
                "experiment_id": rec["experiment_id"],
            }
            if body["pipeline_version_reference"]:
                body["pipeline_spec"] = None
            rec["_last"] = nxt
            try:
                create_run_record(state, body, recurring_run_id=rec["recurring_run_id"], scheduled_at=nxt)
            except Exception as exc:  # e.g. the referenced version was deleted: keep the error visible
                rec["error"] = {
                    "code": 9,
                    "message": f"could not start a scheduled run: {exc}",
                    "details": [],
                }
            active += 1
            fired_here += 1
        fired += fired_here
        if fired_here:
            state.store.put("recurring_runs", rec["recurring_run_id"], rec)
    return fired


async def scheduler_loop(state: KfpState, interval: float = 0.25) -> None:
    while True:
        try:
            fire_due(state, now_ts())
        except Exception:  # keep scheduling; the error is in the server log
            log.exception("recurring-run scheduler tick failed")
        await asyncio.sleep(interval)
