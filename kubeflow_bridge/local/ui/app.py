"""The UI's routes and what they read (see the package docstring)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import ClientSession, ClientTimeout, web

from kubeflow_bridge.local.ui import clone, pages

_V1 = ("apis/kubeflow.org/v1", "training.kubeflow.org/job-name")
#: The training kinds with a page: URL segment (the plural) -> (kind, API path, its pods' label).
JOB_KINDS = {
    "trainjobs": ("TrainJob", "apis/trainer.kubeflow.org/v1alpha1", "jobset.sigs.k8s.io/jobset-name"),
    "pytorchjobs": ("PyTorchJob", *_V1),
    "tfjobs": ("TFJob", *_V1),
    "xgboostjobs": ("XGBoostJob", *_V1),
    "jaxjobs": ("JAXJob", *_V1),
    "mpijobs": ("MPIJob", *_V1),
}
KATIB = "apis/kubeflow.org/v1beta1"
KSERVE = "apis/serving.kserve.io/v1beta1"
UI_KEY = web.AppKey("kubeflow_bridge_ui", object)
GUARD_KEY = web.AppKey("kubeflow_bridge_ui_writes", clone.WriteGuard)


@dataclass(frozen=True)
class UiSources:
    """Where the UI reads from.

    Attributes:
        kfp_url: The runtime's KFP API.
        api_url: The runtime's Kubernetes API.
        token: The runtime's token (None: auth off).
        ca_file: The CA of the Kubernetes API's certificate (HTTPS), else None.
        s3_env: ``AWS_*`` settings of the runtime's S3 server (artifacts), empty without S3.
        local_artifacts: The folder under which the KFP API keeps local artifacts (its pipeline root when
            none is set); the only local paths ``artifacts/get`` serves.
    """

    kfp_url: str
    api_url: str
    token: str | None = None
    ca_file: str | None = None
    s3_env: dict[str, str] | None = None
    local_artifacts: str | None = None


class _Reader:
    """GETs on the runtime's own APIs (one HTTP session for the app's life)."""

    def __init__(self, sources: UiSources) -> None:
        self.sources = sources
        self.session: ClientSession | None = None
        self.ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=sources.ca_file) if sources.ca_file else True
        )

    def _session(self) -> tuple[ClientSession, dict[str, str]]:
        if self.session is None:
            self.session = ClientSession(timeout=ClientTimeout(total=20))
        return self.session, ({"Authorization": f"Bearer {self.sources.token}"} if self.sources.token else {})

    async def _get(self, url: str, *, text: bool = False) -> Any:
        session, headers = self._session()
        async with session.get(url, headers=headers, ssl=self.ssl) as resp:
            if resp.status == 404:
                return None
            if resp.status >= 400:
                raise web.HTTPBadGateway(text=f"{url} answered {resp.status}: {(await resp.text())[:300]}")
            return await (resp.text() if text else resp.json())

    async def kfp(self, path: str) -> Any:
        return await self._get(f"{self.sources.kfp_url}/apis/v2beta1/{path}")

    async def kfp_create(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST to the KFP API (the UI's one write): (status, its JSON answer)."""
        session, headers = self._session()
        url = f"{self.sources.kfp_url}/apis/v2beta1/{path}"
        async with session.post(url, json=body, headers=headers, ssl=self.ssl) as resp:
            return resp.status, await resp.json(content_type=None)

    async def follow(self, path: str) -> AsyncGenerator[bytes]:
        """A Kubernetes API stream (a pod log with ``follow=true``), chunk by chunk until it ends."""
        session, headers = self._session()
        url = f"{self.sources.api_url}/{path}"
        timeout = ClientTimeout(total=None, sock_connect=20)
        async with session.get(url, headers=headers, ssl=self.ssl, timeout=timeout) as resp:
            if resp.status == 404:
                raise web.HTTPNotFound(text=f"no {path}")
            if resp.status >= 400:
                raise web.HTTPBadGateway(text=f"{url} answered {resp.status}: {(await resp.text())[:300]}")
            async for chunk in resp.content.iter_any():
                yield chunk

    async def task_log(self, run_id: str, pod: str) -> str | None:
        """A KFP task's log, from the KFP API's pod log endpoint (as the KFP UI reads it)."""
        url = f"{self.sources.kfp_url}/k8s/pod/logs?runid={quote(run_id)}&podname={quote(pod)}"
        text: str | None = await self._get(url, text=True)
        return text

    async def kube(self, path: str, *, text: bool = False) -> Any:
        return await self._get(f"{self.sources.api_url}/{path}", text=text)

    async def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        found = await self.kube(f"api/v1/namespaces/{namespace}/pods?labelSelector={quote(selector)}")
        return sorted((found or {}).get("items") or [], key=lambda p: p["metadata"]["name"])

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def _reader(request: web.Request) -> _Reader:
    reader = request.app[UI_KEY]
    assert isinstance(reader, _Reader)
    return reader


async def _object(request: web.Request, path: str, what: str) -> dict[str, Any]:
    """A Kubernetes object of the runtime, or a 404 that names it."""
    found: dict[str, Any] | None = await _reader(request).kube(path)
    if found is None:
        raise web.HTTPNotFound(text=f"no {what}")
    return found


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(text=pages.document(title, body), content_type="text/html", status=status)


async def index(request: web.Request) -> web.Response:
    return _page("Local Kubeflow", pages.index())


async def pipeline_shell(request: web.Request) -> web.Response:
    # The KFP UI routes in the URL's fragment, which never reaches a server: a line of script forwards it.
    return web.Response(text=pages.hash_router(), content_type="text/html")


async def runs_list(request: web.Request) -> web.Response:
    query = {"page_size": "200", "sort_by": "created_at desc"}
    if experiment := request.query.get("experiment_id"):
        query["experiment_id"] = experiment
    listed = await _reader(request).kfp("runs?" + "&".join(f"{k}={quote(v)}" for k, v in query.items()))
    runs = (listed or {}).get("runs") or []
    if state := request.query.get("state"):
        runs = [r for r in runs if r.get("state") == state.upper()]
    return _page("Runs", pages.runs_table(runs, experiment, state))


async def _run_and_spec(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The KFP run of the URL and its pipeline spec (inline, or its pipeline version's, as the KFP UI
    reads it)."""
    run_id = request.match_info["run_id"]
    reader = _reader(request)
    run: dict[str, Any] | None = await reader.kfp(f"runs/{quote(run_id)}")
    if run is None:
        raise web.HTTPNotFound(text=f"no KFP run {run_id}")
    spec = run.get("pipeline_spec") or {}
    ref = run.get("pipeline_version_reference") or {}
    if not spec and ref.get("pipeline_version_id"):
        version = await reader.kfp(
            f"pipelines/{quote(ref.get('pipeline_id') or '-')}/versions/{quote(ref['pipeline_version_id'])}"
        )
        spec = (version or {}).get("pipeline_spec") or {}
    return run, spec


async def run_details(request: web.Request) -> web.Response:
    run, spec = await _run_and_spec(request)
    return _page(run.get("display_name") or run["run_id"], pages.run_page(run, spec))


def _guard(request: web.Request) -> clone.WriteGuard:
    return request.app[GUARD_KEY]


async def clone_page(request: web.Request) -> web.Response:
    """The KFP UI's "Clone run" (``#/runs/new?cloneFromRun=<id>``): the run's inputs in a form."""
    guard = _guard(request)
    session = guard.session(request)
    if session is None:
        raise web.HTTPSeeOther(f"/_/login?next={quote(request.path)}")
    run, spec = await _run_and_spec(request)
    form = clone.clone_form(run, spec, guard.form_token(session), None, "")
    return _page(f"Clone {run.get('display_name') or run['run_id']}", form)


async def clone_submit(request: web.Request) -> web.Response:
    """Create the clone through the KFP API; bad input answers the form again, with what to fix."""
    guard = _guard(request)
    session, form = await guard.check_form(request)
    run, spec = await _run_and_spec(request)
    title = f"Clone {run.get('display_name') or run['run_id']}"
    try:
        body = clone.clone_request(run, spec, form)
    except ValueError as exc:
        page = clone.clone_form(run, spec, guard.form_token(session), form, str(exc))
        return _page(title, page, status=400)
    status, answer = await _reader(request).kfp_create("runs", body)
    if status >= 400:
        why = f"the KFP API refused the run ({status}): {(answer or {}).get('message') or answer}"
        return _page(title, clone.clone_form(run, spec, guard.form_token(session), form, why), status=400)
    raise web.HTTPSeeOther(f"/_/pipeline/runs/details/{quote(answer['run_id'])}")


async def login_page(request: web.Request) -> web.Response:
    return _page("Log in", clone.login_form(clone.safe_next(request.query.get("next", "/_/")), ""))


async def login_submit(request: web.Request) -> web.Response:
    guard = _guard(request)
    guard.check_origin(request)
    form = await request.post()
    target = clone.safe_next(str(form.get("next", "/_/")))
    if guard.token is None:
        raise web.HTTPSeeOther(target)  # auth is off: nothing to log in to
    sid = guard.login(str(form.get("token", "")))
    if sid is None:
        return _page(
            "Log in",
            clone.login_form(target, "wrong token: use the one in the runtime's kubeconfig"),
            status=403,
        )
    done = web.HTTPSeeOther(target)
    done.set_cookie(clone.SESSION_COOKIE, sid, httponly=True, samesite="Strict", path="/_/")
    raise done


async def compare_runs(request: web.Request) -> web.Response:
    """The KFP UI's run comparison: ``?runlist=a,b`` (or ``runlist`` repeated, as the runs page sends it)."""
    ids = [i for value in request.query.getall("runlist", []) for i in value.split(",") if i]
    if len(ids) < 2:
        raise web.HTTPBadRequest(text="compare two or more runs: ?runlist=<run id>,<run id>")
    runs = [await _reader(request).kfp(f"runs/{quote(i)}") for i in ids]
    missing = [i for i, r in zip(ids, runs, strict=True) if r is None]
    if missing:
        raise web.HTTPNotFound(text=f"no KFP run {', '.join(missing)}")
    return _page(f"Comparing {len(runs)} runs", pages.compare_page(runs))


async def task_log(request: web.Request) -> web.Response:
    run_id, pod = request.match_info["run_id"], request.match_info["pod"]
    text = await _reader(request).task_log(run_id, pod)
    return _page(f"{pod} log", pages.log_page(text, None))


async def artifact(request: web.Request) -> web.Response:
    """An artifact's bytes (the KFP UI's ``artifacts/get``): ``source=s3`` with ``bucket`` and ``key`` from the
    runtime's S3, or ``source=local`` with a ``path`` under the KFP API's local artifact folder."""
    import asyncio
    import mimetypes

    sources = _reader(request).sources
    query = request.query
    if query.get("source") == "local" and query.get("path"):
        data = await asyncio.to_thread(_local_artifact, sources.local_artifacts, query["path"])
        name = query["path"]
    elif query.get("source") == "s3" and query.get("bucket") and query.get("key"):
        if not sources.s3_env:
            raise web.HTTPNotFound(text="this runtime runs without S3")
        data = await asyncio.to_thread(_s3_artifact, sources.s3_env, query["bucket"], query["key"])
        name = query["key"]
    else:
        raise web.HTTPBadRequest(text="pass source=s3 with bucket and key, or source=local with path")
    if data is None:
        raise web.HTTPNotFound(text="no such artifact")
    # A KFP HTML artifact is a file without an extension (its output's name): sniff it.
    html = name.endswith(".html") or data.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))
    kind = "text/html" if html else mimetypes.guess_type(name)[0]
    return web.Response(body=data, content_type=kind or "text/plain")


def _local_artifact(root: str | None, path: str) -> bytes | None:
    from pathlib import Path

    if not root:
        return None
    target = Path(path).resolve()
    if not target.is_relative_to(Path(root).resolve()) or not target.is_file():
        return None  # only the KFP API's own artifacts
    return target.read_bytes()


def _s3_artifact(env: dict[str, str], bucket: str, key: str) -> bytes | None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=env.get("AWS_ENDPOINT_URL"),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    try:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    return body


async def katib_experiment(request: web.Request) -> web.Response:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    reader = _reader(request)
    experiment = await _object(
        request, f"{KATIB}/namespaces/{ns}/experiments/{name}", f"Katib Experiment {ns}/{name}"
    )
    trials = await reader.kube(
        f"{KATIB}/namespaces/{ns}/trials?labelSelector={quote('katib.kubeflow.org/experiment=' + name)}"
    )
    items = sorted(
        (trials or {}).get("items") or [], key=lambda t: t["metadata"].get("creationTimestamp", "")
    )
    pods = await reader.pods(ns, f"katib.kubeflow.org/experiment={name}")
    return _page(f"Experiment {name}", pages.experiment_page(experiment, items, pods))


async def job_details(request: web.Request) -> web.Response:
    kind, ns, name = request.match_info["kind"], request.match_info["namespace"], request.match_info["name"]
    if kind not in JOB_KINDS:
        raise web.HTTPNotFound(text=f"no page for {kind}: {', '.join(JOB_KINDS)}")
    title, api, label = JOB_KINDS[kind]
    job = await _object(request, f"{api}/namespaces/{ns}/{kind}/{name}", f"{title} {ns}/{name}")
    pods = await _reader(request).pods(ns, f"{label}={name}")
    return _page(f"{title} {name}", pages.job_page(job, pods))


async def model_details(request: web.Request) -> web.Response:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    isvc = await _object(
        request, f"{KSERVE}/namespaces/{ns}/inferenceservices/{name}", f"InferenceService {ns}/{name}"
    )
    pods = await _reader(request).pods(ns, f"serving.kserve.io/inferenceservice={name}")
    return _page(f"InferenceService {name}", pages.model_page(isvc, pods))


async def pod_log(request: web.Request) -> web.StreamResponse:
    """A pod's log; ``?follow=true`` streams it on as the pod writes it, until the container stops."""
    ns, pod = request.match_info["namespace"], request.match_info["pod"]
    container = request.query.get("container")
    path = f"api/v1/namespaces/{ns}/pods/{pod}"
    query = f"?container={quote(container)}" if container else ""
    follow = f"{query}{'&' if query else '?'}follow=true"
    if request.query.get("follow", "").lower() in ("true", "1"):
        await _object(request, path, f"pod {ns}/{pod}")
        return await _follow_log(request, pod, f"{path}/log{follow}")
    text = await _reader(request).kube(f"{path}/log{query}", text=True)
    if text is None:
        raise web.HTTPNotFound(text=f"no pod {ns}/{pod}")
    return _page(f"{pod} log", pages.log_page(text, request.path + follow))


async def _follow_log(request: web.Request, pod: str, path: str) -> web.StreamResponse:
    import codecs
    from html import escape

    ended = "<p class='muted end'>The log ended (the container stopped).</p>"
    head, tail = pages.document(f"{pod} log (following)", f"<pre class='log'>\x00</pre>{ended}").split("\x00")
    resp = web.StreamResponse(
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    )
    await resp.prepare(request)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    chunks = _reader(request).follow(path)
    try:
        await resp.write(head.encode())
        async for chunk in chunks:
            await resp.write(escape(decoder.decode(chunk)).encode())
        await resp.write((escape(decoder.decode(b"", final=True)) + tail).encode())
    except ConnectionResetError:  # the reader left
        await chunks.aclose()
    return resp


def add_ui_routes(app: web.Application, sources: UiSources) -> None:
    """Mount the UI on ``app`` (the runtime's KFP API application) under ``/_/``."""
    reader = _Reader(sources)
    app[UI_KEY] = reader
    app[GUARD_KEY] = clone.WriteGuard(sources.token)

    async def close(app: web.Application) -> None:
        await reader.close()

    app.on_cleanup.append(close)
    r = app.router
    r.add_get("/_/", index)
    r.add_get("/_/pipeline/", pipeline_shell)
    r.add_get("/_/pipeline/runs", runs_list)
    r.add_get("/_/pipeline/runs/details/{run_id}", run_details)
    r.add_get("/_/pipeline/runs/details/{run_id}/logs/{pod}", task_log)
    r.add_get("/_/pipeline/runs/clone/{run_id}", clone_page)
    r.add_post("/_/pipeline/runs/clone/{run_id}", clone_submit)
    r.add_get("/_/login", login_page)
    r.add_post("/_/login", login_submit)
    r.add_get("/_/pipeline/compare", compare_runs)
    r.add_get("/_/pipeline/artifacts/get", artifact)
    r.add_get("/pipeline/artifacts/get", artifact)  # the KFP UI's own path behind the dashboard
    r.add_get("/_/katib/experiment/{namespace}/{name}", katib_experiment)
    r.add_get("/_/models/details/{namespace}/{name}", model_details)  # before the training kinds' pattern
    r.add_get("/_/{kind}/details/{namespace}/{name}", job_details)
    r.add_get("/_/logs/{namespace}/{pod}", pod_log)
