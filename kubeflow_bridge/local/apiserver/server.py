"""The Kubernetes-compatible HTTP API (aiohttp): discovery, CRUD, patch, status, watch, logs, admin.

Every resource in :mod:`kubeflow_bridge.local.apiserver.kinds` is served at its real path
(``/api/v1/namespaces/{ns}/pods``, ``/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs/{name}/status`` ...).
Discovery, watch, table printing and pod logs live in :mod:`discovery`, :mod:`watch` and :mod:`logs`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kubeflow_bridge import __version__
from kubeflow_bridge.local.apiserver import discovery, jsonfast, openapi, reviews
from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver.admission import Admission
from kubeflow_bridge.local.apiserver.apply import apply as server_side_apply
from kubeflow_bridge.local.apiserver.errors import ApiError
from kubeflow_bridge.local.apiserver.faults import Faults
from kubeflow_bridge.local.apiserver.kinds import REVIEW_TYPES, KindRegistry, ResourceType
from kubeflow_bridge.local.apiserver.logs import serve_pod_log
from kubeflow_bridge.local.apiserver.options import dry_run, field_validation, warn
from kubeflow_bridge.local.apiserver.patch import json_patch, merge_patch, strategic_merge_patch
from kubeflow_bridge.local.apiserver.query import query_bool
from kubeflow_bridge.local.apiserver.scale import scale_of, with_replicas
from kubeflow_bridge.local.apiserver.selectors import parse_field_selector, parse_label_selector
from kubeflow_bridge.local.apiserver.store import Obj, Store
from kubeflow_bridge.local.apiserver.tables import table, wants_table
from kubeflow_bridge.local.apiserver.watch import serve_watch

log = logging.getLogger("kubeflow_bridge.local.api")
BUILTIN_GROUPS = ("", "batch", "apps", "authorization.k8s.io", "authentication.k8s.io")

AdminHook = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=jsonfast.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(e: ApiError) -> web.Response:
    return json_response(e.status(), e.code, e.headers)


class Route:
    """A parsed resource path."""

    def __init__(self, rt: ResourceType, namespace: str | None, name: str | None, sub: str | None) -> None:
        self.rt = rt
        self.namespace = namespace
        self.name = name
        self.sub = sub


class ApiServer:
    """The HTTP face of the store.

    Args:
        store: The object store.
        admission: Defaults and validation on writes.
        faults: Fault injection settings (and auth).
        state_dir: Where pod logs live (``logs/<ns>/<pod>/<container>.log``).
        bookmark_interval: Seconds between BOOKMARK events on watches that allow them.
        admin_hooks: Extra ``POST /_admin/<name>`` actions (e.g. ``kill-pod``).
    """

    def __init__(
        self,
        store: Store,
        admission: Admission,
        faults: Faults,
        state_dir: Path,
        *,
        kinds: KindRegistry | None = None,
        bookmark_interval: float = 5.0,
        admin_hooks: dict[str, AdminHook] | None = None,
    ) -> None:
        self.store = store
        self.admission = admission
        self.faults = faults
        self.state_dir = state_dir
        self.kinds = kinds or KindRegistry()
        self.bookmark_interval = bookmark_interval
        self.admin_hooks = dict(admin_hooks or {})
        self.extra_routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = []
        for rt in self.kinds.types:
            store.register_type(rt)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        app.router.add_route("*", "/_admin/{action}", self._admin)
        for method, path, handler in self.extra_routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    # --- middleware: faults and auth ----------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path
        if path.startswith(("/api", "/apis", "/version", "/openapi")) and not path.startswith(
            "/apis/v2beta1"
        ):
            why = self.faults.check_auth(request.headers.get("Authorization"))
            if why is not None:
                return error_response(ApiError(401, "Unauthorized", f"Unauthorized: {why}"))
            fault = self.faults.pick(request.method, path)
            if fault == "drop":
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            if fault == "lose":
                with contextlib.suppress(ApiError):
                    await handler(request)  # applied (or refused) ...
                if request.transport is not None:
                    request.transport.abort()  # ... but the client never hears of it
                raise asyncio.CancelledError
            if fault == "throttle":
                return error_response(apierrors.too_many_requests(self.faults.config.retry_after))
            if fault == "error500":
                return error_response(
                    ApiError(500, "InternalError", "Internal error occurred: injected fault")
                )
            if fault == "error503":
                return error_response(
                    ApiError(
                        503,
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request (injected)",
                    )
                )
        try:
            return await handler(request)
        except ApiError as e:
            return error_response(e)
        except (asyncio.CancelledError, ConnectionResetError, web.HTTPException):
            raise
        except Exception as e:
            log.exception("%s %s failed", request.method, path)
            return error_response(
                ApiError(500, "InternalError", f"Internal error occurred: {type(e).__name__}: {e}")
            )

    async def _admin(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        # With auth on, only the static (admin) token may mint tokens, change faults or kill pods.
        why = self.faults.check_admin(request.headers.get("Authorization"))
        if why is not None:
            raise ApiError(
                401, "Unauthorized", f"Unauthorized: /_admin needs the runtime's own token ({why})"
            )
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except json.JSONDecodeError as e:
                raise apierrors.bad_request(f"admin body is not JSON: {e}") from None
        if action == "faults":
            if request.method == "DELETE":
                self.faults.reset()
            elif request.method == "POST":
                try:
                    self.faults.reconfigure(body)
                except ValueError as e:
                    raise apierrors.bad_request(str(e)) from None
            return json_response({"faults": self.faults.config.as_dict(), "injected": self.faults.injected})
        if action == "tokens" and request.method == "POST":
            token, expires = self.faults.mint_token(body.get("ttl"))
            return json_response({"token": token, "expiresAt": expires})
        hook = self.admin_hooks.get(action)
        if hook is not None and request.method == "POST":
            return json_response(await hook(body))
        raise apierrors.ApiError(404, "NotFound", f"unknown admin action {action!r}")

    # --- dispatch -------------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        method = request.method
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/version":
            return json_response(discovery.version(__version__))
        if parts[:2] == ["openapi", "v3"] and method == "GET":
            doc = (
                openapi.index(self.kinds) if len(parts) == 2 else openapi.group_version(self.kinds, parts[2:])
            )
            if doc is not None:
                return json_response(doc)
        if parts and parts[0] == "openapi":
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        if method == "GET":
            doc = discovery.document(self.kinds, parts, request.headers.get("Accept", ""))
            if doc is not None:
                return json_response(doc)
        if parts and parts[0] == "watch":
            # Legacy /api/v1/watch/... form.
            parts = parts[1:]
            route = self._route(parts) if parts else None
            if route is None:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
            return await self._collection_get(request, route, force_watch=True)
        route = self._route(parts)
        if route is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({method} {path})"
            )
        if route.rt.verbs and method != "POST":
            raise apierrors.method_not_allowed(f"{route.rt.plural} can only be created ({method} {path})")
        if route.name is None:
            if method == "GET":
                return await self._collection_get(request, route)
            if method == "POST":
                return await self._create(request, route)
            if method == "DELETE":
                return await self._delete_collection(request, route)
            raise apierrors.method_not_allowed(f"{method} is not supported on a collection")
        if route.sub == "log":
            if route.rt.plural != "pods" or method != "GET":
                raise apierrors.method_not_allowed("log is only readable on pods")
            pod = self.store.get(route.rt, route.namespace or "", route.name)
            return await serve_pod_log(request, self.store, route.rt, pod, self.state_dir)
        if route.sub == "scale" and route.rt.scale is not None:
            return await self._scale(request, route)
        if route.sub not in (None, "status"):
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource (subresource {route.sub})"
            )
        if route.sub == "status" and not route.rt.has_status:
            raise ApiError(404, "NotFound", f"{route.rt.plural} have no status subresource")
        if method == "GET":
            obj = self.store.find(route.rt, route.namespace or "", route.name, copy_obj=False)
            if obj is None:
                raise apierrors.not_found(route.rt.group, route.rt.plural, route.name)
            if route.sub is None and wants_table(request.headers.get("Accept", "")):
                return json_response(table(route.rt, [obj], obj["metadata"]["resourceVersion"]))
            return json_response(obj)
        if method == "PUT":
            return await self._replace(request, route)
        if method == "PATCH":
            return await self._patch(request, route)
        if method == "DELETE":
            return await self._delete(request, route)
        raise apierrors.method_not_allowed(f"{method} is not supported on {route.rt.plural}/{route.name}")

    def _route(self, parts: list[str]) -> Route | None:
        if not parts:
            return None
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if rest[0] == "namespaces" and len(rest) >= 3:
            rt = self.kinds.by_url(group, version, rest[2])
            if rt is not None and rt.namespaced:
                return Route(
                    rt, rest[1], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None
                )
        rt = self.kinds.by_url(group, version, rest[0])
        if rt is None or len(rest) > 3:
            return None
        return Route(rt, None, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)

    # --- bodies ---------------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            raise apierrors.bad_request("the request body is empty; send a JSON or YAML object")
        ctype = request.headers.get("Content-Type", "")
        if "protobuf" in ctype:
            from kubeflow_bridge.local.apiserver.protobuf import ProtobufError, decode

            try:
                return decode(raw)
            except (ProtobufError, UnicodeDecodeError) as e:
                raise ApiError(
                    415, "UnsupportedMediaType", f"the body of the request ({ctype}): {e}"
                ) from None
        try:
            if "yaml" in ctype:
                return yaml.safe_load(raw)
            return jsonfast.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            fmt = "YAML" if "yaml" in ctype else "JSON"
            raise apierrors.bad_request(f"the request body is not valid {fmt}: {e}") from None

    def _check_object(self, route: Route, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise apierrors.bad_request(
                f"the request body must be a {route.rt.kind} object, not {type(body).__name__}"
            )
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if kind is not None and kind != route.rt.kind:
            raise apierrors.bad_request(
                f"the kind in the body ({kind}) does not match the resource ({route.rt.kind}) of the URL"
            )
        if api_version is not None and api_version != route.rt.api_version:
            raise apierrors.bad_request(
                f"the apiVersion in the body ({api_version}) does not match the URL ({route.rt.api_version})"
            )
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise apierrors.bad_request("metadata must be an object")
        if route.rt.namespaced:
            ns = meta.get("namespace")
            if ns and route.namespace and ns != route.namespace:
                raise apierrors.bad_request(
                    f"the namespace of the provided object ({ns}) does not match the namespace of the request ({route.namespace})"
                )
            meta["namespace"] = route.namespace or ns or "default"
        return body

    # --- verbs ----------------------------------------------------------------------------------------
    async def _collection_get(
        self, request: web.Request, route: Route, force_watch: bool = False
    ) -> web.StreamResponse:
        q = request.query
        matcher_l = parse_label_selector(q.get("labelSelector"))
        matcher_f = parse_field_selector(q.get("fieldSelector"))

        def matcher(o: Obj) -> bool:
            return matcher_l(o) and matcher_f(o)

        if force_watch or query_bool(q.get("watch")):
            return await serve_watch(request, self, route.rt, route.namespace, matcher)
        rv = self.store.resource_version
        after: tuple[str, str] | None = None
        if cont := q.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                after = (str(token["after"][0]), str(token["after"][1]))
            except (ValueError, KeyError, TypeError, IndexError):
                raise apierrors.bad_request("invalid continue token") from None
        limit = 0
        if q.get("limit"):
            try:
                limit = int(q["limit"])
            except ValueError:
                raise apierrors.bad_request(f"limit must be an integer, got {q['limit']!r}") from None
        selective = bool(q.get("labelSelector") or q.get("fieldSelector"))
        items, remaining = self.store.page(
            route.rt,
            route.namespace,
            matcher if selective else None,
            after=after,
            limit=limit if limit > 0 else sys.maxsize,
        )
        next_token = ""
        if items and (remaining is None or remaining > 0):
            last = items[-1]["metadata"]
            next_token = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "after": [last.get("namespace", ""), last["name"]]}).encode()
            ).decode()
        if wants_table(request.headers.get("Accept", "")):
            return json_response(table(route.rt, items, str(rv), next_token))
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if next_token:
            meta["continue"] = next_token
            if remaining is not None:  # Kubernetes leaves it unset for a selector
                meta["remainingItemCount"] = remaining
        body = {
            "kind": f"{route.rt.kind}List",
            "apiVersion": route.rt.api_version,
            "metadata": meta,
            "items": items,
        }
        return json_response(body)

    async def _create(self, request: web.Request, route: Route) -> web.Response:
        if route.rt.namespaced and route.namespace is None:
            raise apierrors.method_not_allowed(
                f"create {route.rt.plural} in a namespace: POST .../namespaces/<ns>/{route.rt.plural}"
            )
        body = self._check_object(route, await self._body(request))
        if route.rt in REVIEW_TYPES:
            return json_response(reviews.answer(route.rt, body), 201)
        warnings = field_validation(request, route.rt.kind, body)
        body["metadata"].pop("uid", None)
        self.store.assign_generated_name(route.rt, body, route.namespace)
        if route.rt.has_status and route.rt.plural != "namespaces":
            body.pop("status", None)
        body = self.admission.admit(route.rt, body, None)
        if dry_run(request):
            return warn(json_response(body, 201), warnings)
        obj = self.store.create(route.rt, body, route.namespace)
        return warn(json_response(obj, 201), warnings)

    async def _replace(self, request: web.Request, route: Route) -> web.Response:
        body = self._check_object(route, await self._body(request))
        name = body["metadata"].get("name")
        if name != route.name:
            raise apierrors.bad_request(
                f"the name in the body ({name}) does not match the URL ({route.name})"
            )
        old = self.store.get(route.rt, route.namespace or "", route.name or "")
        warnings = field_validation(request, route.rt.kind, body) if route.sub != "status" else []
        if route.sub != "status":
            body = self.admission.admit(route.rt, body, old)
        obj = self.store.update(route.rt, body, subresource=route.sub, dry_run=dry_run(request))
        return warn(json_response(obj), warnings)

    async def _patch(self, request: web.Request, route: Route) -> web.Response:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch = await self._body(request)
        if ctype == "application/apply-patch+yaml" and route.sub is None:
            return await self._apply(request, route, patch)  # may create: no stored object needed
        old = self.store.get(route.rt, route.namespace or "", route.name or "")
        if ctype == "application/json-patch+json":
            new = json_patch(old, patch)
        elif ctype == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise apierrors.bad_request("a merge patch must be a JSON object")
            new = merge_patch(old, patch)
        elif ctype == "application/strategic-merge-patch+json":
            if route.rt.group not in BUILTIN_GROUPS:  # as the real server answers for custom resources
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml "
                    f"(strategic merge patch does not support custom resources like {route.rt.plural})",
                )
            if not isinstance(patch, dict):
                raise apierrors.bad_request("a strategic merge patch must be a JSON object")
            new = strategic_merge_patch(old, patch)
        elif ctype == "application/apply-patch+yaml":
            return await self._apply(request, route, patch)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the patch content type {ctype!r} is not supported")
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise apierrors.bad_request("the patched object is not an object with metadata")
        patch_meta = patch.get("metadata") if isinstance(patch, dict) else None
        if not (isinstance(patch_meta, dict) and patch_meta.get("resourceVersion")):
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        for key in ("name", "namespace", "uid"):
            if new["metadata"].get(key) != old["metadata"].get(key):
                raise apierrors.bad_request(f"metadata.{key} cannot be changed by a patch")
        warnings = field_validation(request, route.rt.kind, new) if route.sub != "status" else []
        if route.sub != "status":
            new = self.admission.admit(route.rt, new, old)
        obj = self.store.update(route.rt, new, subresource=route.sub, dry_run=dry_run(request))
        return warn(json_response(obj), warnings)

    async def _apply(self, request: web.Request, route: Route, config: Any) -> web.Response:
        """Server-side apply (see apply.py): creates or updates; managedFields record the manager."""
        config = self._check_object(route, config)
        warnings = field_validation(request, route.rt.kind, config)
        if config["metadata"].get("name") != route.name:
            raise apierrors.bad_request(
                f"the name in the applied object ({config['metadata'].get('name')}) does not match the URL ({route.name})"
            )
        old = self.store.find(route.rt, route.namespace or "", route.name or "")
        new = server_side_apply(
            old,
            config,
            manager=request.query.get("fieldManager", ""),
            force=query_bool(request.query.get("force")),
            builtin=route.rt.group in BUILTIN_GROUPS,
            api_version=route.rt.api_version,
        )
        only_check = dry_run(request)
        if old is None:
            if route.rt.has_status and route.rt.plural != "namespaces":
                new.pop("status", None)
            new = self.admission.admit(route.rt, new, None)
            created = new if only_check else self.store.create(route.rt, new, route.namespace)
            return warn(json_response(created, 201), warnings)
        if not config["metadata"].get("resourceVersion"):
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = self.admission.admit(route.rt, new, old)
        return warn(json_response(self.store.update(route.rt, new, dry_run=only_check)), warnings)

    async def _scale(self, request: web.Request, route: Route) -> web.Response:
        """GET, PUT or PATCH (merge) the autoscaling/v1 Scale of an object (kubectl scale)."""
        obj = self.store.get(route.rt, route.namespace or "", route.name or "")
        current = scale_of(route.rt, obj)
        if request.method == "GET":
            return json_response(current)
        if request.method not in ("PUT", "PATCH"):
            raise apierrors.method_not_allowed(
                f"{request.method} is not supported on {route.rt.plural}/scale"
            )
        body = await self._body(request)
        if request.method == "PATCH":
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
            if ctype == "application/json-patch+json":
                body = json_patch(current, body)
            elif isinstance(body, dict):
                body = merge_patch(current, body)
        new = self.admission.admit(route.rt, with_replicas(route.rt, obj, body), obj)
        stored = self.store.update(route.rt, new, dry_run=dry_run(request))
        return json_response(scale_of(route.rt, stored))

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                try:
                    opts = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise apierrors.bad_request(f"DeleteOptions is not valid JSON: {e}") from None
        policy = request.query.get("propagationPolicy") or opts.get("propagationPolicy")
        if policy is None and opts.get("orphanDependents") is True:
            policy = "Orphan"
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise apierrors.bad_request(
                f"propagationPolicy {policy!r} is not one of Foreground, Background, Orphan"
            )
        opts["propagationPolicy"] = policy or "Background"
        return opts

    async def _delete(self, request: web.Request, route: Route) -> web.Response:
        """DELETE; with dryRun=All the checks run and nothing is deleted."""
        opts = await self._delete_options(request)
        pre = opts.get("preconditions") or {}
        obj = self.store.delete(
            route.rt,
            route.namespace or "",
            route.name or "",
            propagation=opts["propagationPolicy"],
            precondition_uid=pre.get("uid"),
            precondition_rv=pre.get("resourceVersion"),
            dry_run=dry_run(request, opts),
        )
        if obj["metadata"].get("finalizers") and self.store.find(
            route.rt, route.namespace or "", route.name or ""
        ):
            return json_response(obj, 202)
        if route.rt.group:
            return json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": route.name,
                        "group": route.rt.group,
                        "kind": route.rt.plural,
                        "uid": obj["metadata"]["uid"],
                    },
                }
            )
        return json_response(obj)

    async def _delete_collection(self, request: web.Request, route: Route) -> web.Response:
        opts = await self._delete_options(request)
        ml = parse_label_selector(request.query.get("labelSelector"))
        mf = parse_field_selector(request.query.get("fieldSelector"))
        items = self.store.list(route.rt, route.namespace, lambda o: ml(o) and mf(o))
        for o in [] if dry_run(request, opts) else items:
            if self.store.find(
                route.rt, o["metadata"].get("namespace", ""), o["metadata"]["name"], copy_obj=False
            ):
                self.store.delete(
                    route.rt,
                    o["metadata"].get("namespace", ""),
                    o["metadata"]["name"],
                    propagation=opts["propagationPolicy"],
                )
        return json_response(
            {
                "kind": f"{route.rt.kind}List",
                "apiVersion": route.rt.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": items,
            }
        )
