"""The pod ``log`` subresource: a container's captured output, with tailLines, limitBytes, follow,
previous, timestamps, sinceSeconds and sinceTime.

Line times come from ``<log>.times`` (the runtime notes every 0.2 s how far the log has grown), so a
line's timestamp is when the runtime first saw it, within 0.2 s, as the kubelet stamps lines it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import web

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver.kinds import ResourceType
from kubeflow_bridge.local.apiserver.query import query_bool
from kubeflow_bridge.local.apiserver.store import Obj, Store
from kubeflow_bridge.local.processes import times_path


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


def _stamp(t: float) -> bytes:
    whole = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{round((t % 1) * 1e9) % 10**9:09d}Z".encode()


def _timed_lines(path: Path, data: bytes) -> list[tuple[float, bytes]]:
    """Each line of `data` (the whole log) with the time the runtime first saw it."""
    marks: list[tuple[int, float]] = []
    with contextlib.suppress(OSError, ValueError):
        for row in times_path(path).read_text().split("\n"):
            if row:
                size, at = row.split()
                marks.append((int(size), float(at)))
    fallback = path.stat().st_mtime
    out, end, i = [], 0, 0
    for line in data.splitlines(keepends=True):
        end += len(line)
        while i < len(marks) and marks[i][0] < end:
            i += 1
        out.append((marks[i][1] if i < len(marks) else fallback, line))
    return out


def _since(q: Any) -> float | None:
    """The cutoff of sinceSeconds or sinceTime (unix seconds); 400 if malformed or both are given."""
    if q.get("sinceSeconds") and q.get("sinceTime"):
        raise apierrors.bad_request("at most one of sinceTime or sinceSeconds may be specified")
    if q.get("sinceSeconds"):
        try:
            seconds = int(q["sinceSeconds"])
        except ValueError:
            seconds = 0
        if seconds < 1:
            raise apierrors.bad_request("sinceSeconds must be a positive integer")
        return time.time() - seconds
    if q.get("sinceTime"):
        try:
            return dt.datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise apierrors.bad_request(f"sinceTime {q['sinceTime']!r} is not an RFC3339 time") from None
    return None


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
    offset = len(data)  # a follow streams on from what was read, not from the size a moment later
    timestamps = query_bool(q.get("timestamps"))
    since = _since(q)
    if timestamps or since is not None:
        timed = [(t, line) for t, line in _timed_lines(path, data) if since is None or t >= since]
        if tail >= 0:
            timed = timed[-tail:] if tail else []
        data = b"".join((_stamp(t) + b" " + line) if timestamps else line for t, line in timed)
    elif tail >= 0:
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
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while True:
                chunk = f.read(65536)
                if chunk:
                    if timestamps:  # seen now: stamp each line with the time it is streamed
                        now = _stamp(time.time()) + b" "
                        chunk = b"".join(now + line for line in chunk.splitlines(keepends=True))
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
