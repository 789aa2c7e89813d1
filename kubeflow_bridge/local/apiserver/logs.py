"""The pod ``log`` subresource: a container's captured output, with tailLines, follow and previous."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

from aiohttp import web

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver.kinds import ResourceType
from kubeflow_bridge.local.apiserver.query import query_bool
from kubeflow_bridge.local.apiserver.store import Obj, Store


def log_path(state_dir: Path, namespace: str, pod: str, container: str, previous: bool = False) -> Path:
    return (
        state_dir
        / "logs"
        / namespace
        / pod
        / (f"{container}.previous.log" if previous else f"{container}.log")
    )


def _container_state(pod: Obj, container: str) -> dict[str, object]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return dict(cs.get("state") or {})
    return {}


def _tail(data: bytes, n: int) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(deque(lines, maxlen=n)) if n >= 0 else data


async def serve_pod_log(
    request: web.Request, store: Store, rt: ResourceType, pod: Obj, state_dir: Path
) -> web.StreamResponse:
    q = request.query
    name = pod["metadata"]["name"]
    ns = pod["metadata"]["namespace"]
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = q.get("container")
    if not container:
        if len(containers) != 1:
            raise apierrors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
            )
        container = containers[0]
    if container not in containers:
        raise apierrors.bad_request(f"container {container} is not valid for pod {name}")
    previous = query_bool(q.get("previous"))
    path = log_path(state_dir, ns, name, container, previous)
    if not path.exists():
        if previous:
            raise apierrors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        waiting = _container_state(pod, container).get("waiting") or {}
        reason = (
            waiting.get("reason", "ContainerCreating") if isinstance(waiting, dict) else "ContainerCreating"
        )
        raise apierrors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    try:
        tail = int(q["tailLines"]) if q.get("tailLines") else -1
        limit = int(q["limitBytes"]) if q.get("limitBytes") else -1
    except ValueError:
        raise apierrors.bad_request("tailLines and limitBytes must be integers") from None
    data = path.read_bytes()
    if tail >= 0:
        data = _tail(data, tail)
    if limit >= 0:
        data = data[:limit]
    follow = query_bool(q.get("follow")) and not previous
    if not follow:
        return web.Response(body=data, content_type="text/plain")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(data)
    offset = path.stat().st_size
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while True:
                chunk = f.read(65536)
                if chunk:
                    await resp.write(chunk)
                    continue
                current = store.find(rt, ns, name, copy_obj=False)
                if current is None or "terminated" in _container_state(current, container):
                    rest = f.read()
                    if rest:
                        await resp.write(rest)
                    break
                await asyncio.sleep(0.2)
        await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp
