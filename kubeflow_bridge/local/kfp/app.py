"""The aiohttp application of the local KFP v2beta1 API: wiring, experiments, pipelines, uploads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from kubeflow_bridge.local.apiserver.faults import Faults
from kubeflow_bridge.local.kfp.common import KfpState, new_id, read_body, respond
from kubeflow_bridge.local.kfp.platform import public_spec
from kubeflow_bridge.local.kfp.query import ApiError, apply_list, bad_request, check_length, now_ts, rfc3339
from kubeflow_bridge.local.kfp.runs import RunExecutor
from kubeflow_bridge.local.kfp.runs_api import add_routes as add_run_routes
from kubeflow_bridge.local.kfp.runs_api import scheduler_loop
from kubeflow_bridge.local.kfp.spec import parse_package, unwrap_spec, validate_spec
from kubeflow_bridge.local.kfp.store import Store, public
from kubeflow_bridge.local.warm import ZygoteInfo

log = logging.getLogger(__name__)
BASE = "/apis/v2beta1"
STATE_KEY: web.AppKey[KfpState] = web.AppKey("kfp_state", KfpState)

_EXPERIMENT_KEYS = {
    "name": "display_name", "display_name": "display_name", "id": "experiment_id",
    "experiment_id": "experiment_id", "created_at": "created_at", "storage_state": "storage_state",
    "namespace": "namespace", "description": "description", "last_run_created_at": "last_run_created_at",
}  # fmt: skip
_EXPERIMENT_FIELDS = {
    "experiment_id", "display_name", "description", "created_at", "namespace", "storage_state",
    "last_run_created_at",
}  # fmt: skip
_PIPELINE_KEYS = {
    "name": "name", "display_name": "display_name", "id": "pipeline_id", "pipeline_id": "pipeline_id",
    "created_at": "created_at", "namespace": "namespace", "description": "description",
}  # fmt: skip
_VERSION_KEYS = {
    "name": "name", "display_name": "display_name", "id": "pipeline_version_id",
    "pipeline_version_id": "pipeline_version_id", "created_at": "created_at", "description": "description",
}  # fmt: skip


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Any:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.http_status)
    except web.HTTPNotFound:
        err = ApiError(404, f"no such endpoint: {request.method} {request.path}")
        return web.json_response(err.body(), status=404)
    except web.HTTPMethodNotAllowed:
        err = ApiError(405, f"method {request.method} is not allowed on {request.path}")
        return web.json_response(err.body(), status=405)
    except web.HTTPException:
        raise
    except Exception as exc:  # an internal error still answers as a Status, and is logged
        log.exception("KFP API %s %s failed", request.method, request.path)
        err = ApiError(500, f"internal error: {type(exc).__name__}: {exc}")
        return web.json_response(err.body(), status=500)


def _lister(state: KfpState, table: str, key: str, fields: dict[str, str]) -> Callable[..., Any]:
    async def handler(request: web.Request) -> web.Response:
        q = request.query
        items = state.store.all(table)
        if table == "experiments":
            items = state.scoped(items, q.get("namespace") or "", by_experiment=False)
        if "pipeline_id" in request.match_info:
            state.must_get("pipelines", request.match_info["pipeline_id"], "pipeline")
            items = [v for v in items if v["pipeline_id"] == request.match_info["pipeline_id"]]
        page, total, token = apply_list(
            items,
            fields=fields,
            filter_text=q.get("filter"),
            sort_by=q.get("sort_by"),
            page_size=q.get("page_size"),
            page_token=q.get("page_token"),
        )
        return respond({key: [public(x) for x in page], "total_size": total, "next_page_token": token})

    return handler


def _add_experiment_routes(app: web.Application, state: KfpState) -> None:
    base = f"{BASE}/experiments"
    eid = "{experiment_id:[^/:]+}"

    async def create(request: web.Request) -> web.Response:
        body = await read_body(
            request,
            _EXPERIMENT_FIELDS,
            wrapper="experiment",
        )
        return respond(state.create_experiment(body))

    async def get(request: web.Request) -> web.Response:
        return respond(state.must_get("experiments", request.match_info["experiment_id"], "experiment"))

    async def delete(request: web.Request) -> web.Response:
        exp = state.must_get("experiments", request.match_info["experiment_id"], "experiment")
        state.store.delete("experiments", exp["experiment_id"])
        return respond({})

    def storage(value: str) -> Callable[..., Any]:
        async def handler(request: web.Request) -> web.Response:
            exp = state.must_get("experiments", request.match_info["experiment_id"], "experiment")
            exp["storage_state"] = value
            state.store.put("experiments", exp["experiment_id"], exp)
            if value == "ARCHIVED":  # archiving an experiment archives its runs, as KFP does
                for run in state.store.all("runs"):
                    if run["experiment_id"] == exp["experiment_id"]:
                        run["storage_state"] = "ARCHIVED"
                        state.store.put("runs", run["run_id"], run)
            return respond({})

        return handler

    app.router.add_post(base, create)
    app.router.add_get(base, _lister(state, "experiments", "experiments", _EXPERIMENT_KEYS))
    app.router.add_get(f"{base}/{eid}", get)
    app.router.add_delete(f"{base}/{eid}", delete)
    app.router.add_post(f"{base}/{eid}:archive", storage("ARCHIVED"))
    app.router.add_post(f"{base}/{eid}:unarchive", storage("AVAILABLE"))


def _new_pipeline(
    state: KfpState, name: str, display_name: str, description: str, namespace: str
) -> dict[str, Any]:
    if not name:
        raise bad_request("pipeline name is empty: give the pipeline a name")
    check_length("Pipeline", "Name", name)
    del namespace  # single-user mode, as the real API: namespaces are ignored
    namespace = ""
    for p in state.store.all("pipelines"):
        if p["name"] == name and p.get("namespace", "") == namespace:
            raise ApiError(
                409, f"pipeline {name!r} already exists (pipeline_id {p['pipeline_id']}); upload a version"
            )
    return {
        "pipeline_id": new_id(),
        "display_name": display_name or name,
        "name": name,
        "description": description,
        "created_at": rfc3339(now_ts()),
        "namespace": namespace,
        "error": None,
    }


def _new_version(
    state: KfpState, pipeline_id: str, spec: dict[str, Any], name: str, display_name: str, description: str
) -> dict[str, Any]:
    validate_spec(spec)
    name = name or str(spec.get("pipelineInfo", {}).get("name", ""))
    check_length("PipelineVersion", "Name", name)
    for v in state.store.all("versions"):
        if v["pipeline_id"] == pipeline_id and v["name"] == name:
            raise ApiError(
                409, f"pipeline version {name!r} already exists in pipeline {pipeline_id}: pick another name"
            )
    return {
        "pipeline_id": pipeline_id,
        "pipeline_version_id": new_id(),
        "display_name": display_name or name,
        "name": name,
        "description": description,
        "created_at": rfc3339(now_ts()),
        "package_url": None,
        "code_source_url": "",
        "pipeline_spec": public_spec(spec),
        "error": None,
    }


async def _upload_file(request: web.Request) -> tuple[bytes, str]:
    if not request.content_type.startswith("multipart/"):
        raise bad_request("send the pipeline package as multipart/form-data in the field 'uploadfile'")
    reader = await request.multipart()
    async for part in reader:
        if getattr(part, "name", None) == "uploadfile":
            data = await part.read()  # type: ignore[union-attr]
            return bytes(data), getattr(part, "filename", None) or "pipeline.yaml"
    raise bad_request("multipart body has no 'uploadfile' field: attach the compiled pipeline YAML there")


def _add_pipeline_routes(app: web.Application, state: KfpState) -> None:
    base = f"{BASE}/pipelines"
    pid = "{pipeline_id:[^/:]+}"
    vid = "{pipeline_version_id:[^/:]+}"
    pipeline_fields = {
        "pipeline_id",
        "display_name",
        "name",
        "description",
        "created_at",
        "namespace",
        "error",
    }
    version_fields = {
        "pipeline_id", "pipeline_version_id", "display_name", "name", "description", "created_at",
        "package_url", "code_source_url", "pipeline_spec", "error",
    }  # fmt: skip

    def pipeline_from(body: dict[str, Any]) -> dict[str, Any]:
        name = (body.get("name") or body.get("display_name") or "").strip()
        return _new_pipeline(
            state,
            name,
            body.get("display_name") or "",
            body.get("description") or "",
            body.get("namespace") or "",
        )

    async def spec_of(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("pipeline_spec"):
            return unwrap_spec(body["pipeline_spec"])
        url = ((body.get("package_url") or {}).get("pipeline_url") or "").strip()
        if url.startswith("file://") or url.startswith("/"):
            path = Path(url.removeprefix("file://"))
            if not path.is_file():
                raise bad_request(f"package_url {url!r}: no such file")
            return parse_package(path.read_bytes(), path.name)
        if url.startswith("http://") or url.startswith("https://"):
            import aiohttp

            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                if resp.status != 200:
                    raise bad_request(f"package_url {url!r} answered HTTP {resp.status}")
                return parse_package(await resp.read(), url)
        raise bad_request(
            "set pipeline_spec or package_url.pipeline_url (http(s):// or file://) on the version"
        )

    async def create(request: web.Request) -> web.Response:
        body = await read_body(request, pipeline_fields, wrapper="pipeline")
        pipeline = pipeline_from(body)
        state.store.put("pipelines", pipeline["pipeline_id"], pipeline)
        return respond(pipeline)

    async def create_with_version(request: web.Request) -> web.Response:
        body = await read_body(request, {"pipeline", "pipeline_version"})
        pipeline = pipeline_from(body.get("pipeline") or {})
        vbody = body.get("pipeline_version") or {}
        version = _new_version(
            state,
            pipeline["pipeline_id"],
            await spec_of(vbody),
            vbody.get("name") or pipeline["name"],
            vbody.get("display_name") or "",
            vbody.get("description") or "",
        )
        state.store.put("pipelines", pipeline["pipeline_id"], pipeline)
        state.store.put("versions", version["pipeline_version_id"], version)
        return respond(pipeline)

    async def get(request: web.Request) -> web.Response:
        return respond(state.must_get("pipelines", request.match_info["pipeline_id"], "pipeline"))

    async def get_by_name(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        for p in state.store.all("pipelines"):
            if p["name"] == name:
                return respond(p)
        raise ApiError(404, f"pipeline named {name!r} not found")

    async def delete(request: web.Request) -> web.Response:
        pipeline = state.must_get("pipelines", request.match_info["pipeline_id"], "pipeline")
        versions = [v for v in state.store.all("versions") if v["pipeline_id"] == pipeline["pipeline_id"]]
        if versions and request.query.get("cascade", "false").lower() != "true":
            raise bad_request(
                f"pipeline {pipeline['pipeline_id']} has {len(versions)} version(s): delete them first or pass cascade=true"
            )
        for v in versions:
            state.store.delete("versions", v["pipeline_version_id"])
        state.store.delete("pipelines", pipeline["pipeline_id"])
        return respond({})

    async def create_version(request: web.Request) -> web.Response:
        pipeline = state.must_get("pipelines", request.match_info["pipeline_id"], "pipeline")
        body = await read_body(request, version_fields, wrapper="pipeline_version")
        version = _new_version(
            state,
            pipeline["pipeline_id"],
            await spec_of(body),
            body.get("name") or body.get("display_name") or "",
            body.get("display_name") or "",
            body.get("description") or "",
        )
        state.store.put("versions", version["pipeline_version_id"], version)
        return respond(version)

    def version_of(request: web.Request) -> dict[str, Any]:
        state.must_get("pipelines", request.match_info["pipeline_id"], "pipeline")
        version = state.must_get("versions", request.match_info["pipeline_version_id"], "pipeline version")
        if version["pipeline_id"] != request.match_info["pipeline_id"]:
            raise ApiError(404, "pipeline version not found in this pipeline")
        return version

    async def get_version(request: web.Request) -> web.Response:
        return respond(version_of(request))

    async def delete_version(request: web.Request) -> web.Response:
        version = version_of(request)
        state.store.delete("versions", version["pipeline_version_id"])
        return respond({})

    async def upload(request: web.Request) -> web.Response:
        data, filename = await _upload_file(request)
        q = request.query
        spec = parse_package(data, filename)
        name = q.get("name") or q.get("display_name") or Path(filename).stem
        pipeline = _new_pipeline(
            state, name, q.get("display_name") or "", q.get("description") or "", q.get("namespace") or ""
        )
        version = _new_version(
            state,
            pipeline["pipeline_id"],
            spec,
            name,
            q.get("display_name") or "",
            q.get("description") or "",
        )
        state.store.put("pipelines", pipeline["pipeline_id"], pipeline)
        state.store.put("versions", version["pipeline_version_id"], version)
        return respond(pipeline)

    async def upload_version(request: web.Request) -> web.Response:
        data, filename = await _upload_file(request)
        q = request.query
        pipeline_id = q.get("pipelineid") or q.get("pipeline_id") or ""
        if not pipeline_id:
            raise bad_request("query parameter 'pipelineid' is required: the pipeline to add the version to")
        pipeline = state.must_get("pipelines", pipeline_id, "pipeline")
        spec = parse_package(data, filename)
        name = q.get("name") or q.get("display_name") or Path(filename).stem
        version = _new_version(
            state,
            pipeline["pipeline_id"],
            spec,
            name,
            q.get("display_name") or "",
            q.get("description") or "",
        )
        state.store.put("versions", version["pipeline_version_id"], version)
        return respond(version)

    r = app.router
    r.add_post(f"{base}/upload", upload)
    r.add_post(f"{base}/upload_version", upload_version)
    r.add_post(f"{base}/create", create_with_version)
    r.add_post(base, create)
    r.add_get(base, _lister(state, "pipelines", "pipelines", _PIPELINE_KEYS))
    r.add_get(f"{base}/names/{{name}}", get_by_name)
    r.add_get(f"{base}/{pid}", get)
    r.add_delete(f"{base}/{pid}", delete)
    r.add_get(f"{base}/{pid}/versions", _lister(state, "versions", "pipeline_versions", _VERSION_KEYS))
    r.add_post(f"{base}/{pid}/versions", create_version)
    r.add_get(f"{base}/{pid}/versions/{vid}", get_version)
    r.add_delete(f"{base}/{pid}/versions/{vid}", delete_version)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "commit_sha": "kubeflow-bridge-local",
            "tag_name": "2.16.0",
            "multi_user": request.app[STATE_KEY].multi_user,
            "pipeline_store": "database",
        }
    )


def _guard(faults: Faults) -> Any:
    """Middleware: the runtime's token check, then its injected faults (not on ``healthz``)."""

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Any:
        # The read-only UI under /_/ (a browser following an extra link carries no token; the runtime
        # listens on 127.0.0.1 only). It reads the APIs with the runtime's token.
        if request.path == f"{BASE}/healthz" or request.path.startswith(("/_/", "/pipeline/artifacts/")):
            return await handler(request)
        why = faults.check_auth(request.headers.get("Authorization"))
        if why is not None:
            return web.json_response(ApiError(401, f"Unauthorized: {why}").body(), status=401)
        fault = faults.pick(request.method, request.path)
        if fault in ("drop", "lose"):
            if fault == "lose":
                await handler(request)  # applied (errors answer through _errors), then the answer is lost
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault == "throttle":
            retry_after = str(faults.config.retry_after)
            body = ApiError(429, "too many requests (injected)").body()
            return web.json_response(body, status=429, headers={"Retry-After": retry_after})
        if fault in ("error500", "error503"):
            status = int(fault[-3:])
            return web.json_response(ApiError(status, "injected fault").body(), status=status)
        return await handler(request)

    return guard


def create_kfp_app(
    *,
    state_dir: Path,
    pipeline_root: str,
    kubeconfig: Path | None = None,
    env: dict[str, str] | None = None,
    trainer_python: str | None = None,
    max_parallel_runs: int = 4,
    images_file: Path | None = None,
    multi_user: bool = False,
    faults: Faults | None = None,
    warm: Callable[[], ZygoteInfo | None] | None = None,
) -> web.Application:
    """Builds the local KFP v2beta1 API application (see the package docstring for mounting it).

    ``warm``: the runtime's ready zygote for the trainer environment, if any (components forked from it).

    ``faults`` is the runtime's (shared with its Kubernetes API): its token check guards every call
    but ``healthz`` while auth is on, and its injected faults apply to this API too.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    run_env = dict(env or {})
    if kubeconfig is not None:
        run_env["KUBECONFIG"] = str(kubeconfig)
    store = Store(state_dir / "kfp.sqlite")
    try:
        executor = RunExecutor(
            store,
            state_dir=state_dir,
            pipeline_root=pipeline_root or "",
            env=run_env,
            python=trainer_python or sys.executable,
            max_parallel=max_parallel_runs,
            images_file=images_file,
            warm=warm,
        )
    except ApiError as exc:
        store.close()
        raise ValueError(exc.message) from exc
    state = KfpState(store=store, executor=executor, pipeline_root=pipeline_root or "", multi_user=multi_user)
    middlewares: list[Any] = [_errors]
    if faults is not None:
        middlewares.append(_guard(faults))
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024**2)
    app[STATE_KEY] = state
    app.router.add_get(f"{BASE}/healthz", _healthz)
    _add_experiment_routes(app, state)
    _add_pipeline_routes(app, state)
    add_run_routes(app, state)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        executor.recover()
        scheduler = asyncio.get_running_loop().create_task(scheduler_loop(state))
        yield
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
        await executor.close()
        store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
