"""The object store: every API object in memory, written through to SQLite, with a watch history.

One global ``resourceVersion`` counter (persisted) orders every write, as etcd's revision does.
All methods are synchronous and must be called from the event loop thread; listeners (the
controller manager) and watchers (the API server's watch streams) are told of every change.
"""

from __future__ import annotations

import bisect
import builtins
import collections
import json
import re
import secrets
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver import jsonfast
from kubeflow_bridge.local.apiserver.kinds import ResourceType
from kubeflow_bridge.local.paths import make_private

Obj = dict[str, Any]

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NO_GENERATION = {"events", "configmaps", "secrets", "namespaces", "serviceaccounts"}


def now_iso() -> str:
    """Kubernetes timestamp format (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(ts: str | None) -> float:
    """Seconds elapsed since a Kubernetes timestamp (0 if missing or unparsable)."""
    if not ts:
        return 0.0
    try:
        then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return (datetime.now(UTC) - then).total_seconds()


@dataclass
class WatchEvent:
    """One change. ``type`` is ADDED, MODIFIED or DELETED; ``obj`` is the object after the change."""

    type: str
    rt: ResourceType
    obj: Obj
    rv: int
    old: Obj | None = None


@dataclass(eq=False)
class Watcher:
    """A subscription of one watch stream; the store pushes matching events into ``queue``."""

    rt: ResourceType
    namespace: str | None
    matcher: Callable[[Obj], bool]
    queue: collections.deque[WatchEvent] = field(default_factory=collections.deque)
    wakeup: Callable[[], None] | None = None

    def offer(self, ev: WatchEvent) -> None:
        if ev.rt.key != self.rt.key:
            return
        if self.namespace and ev.obj["metadata"].get("namespace") != self.namespace:
            return
        # Selector transitions as the API server reports them: entering the selection is ADDED,
        # leaving it is DELETED (with the object's new state).
        now = self.matcher(ev.obj)
        before = self.matcher(ev.old) if ev.old is not None else False
        if ev.type == "MODIFIED" and now != before:
            ev = WatchEvent("ADDED" if now else "DELETED", ev.rt, ev.obj, ev.rv, ev.old)
        elif ev.type == "DELETED":
            if not (now or before):
                return
        elif not now:
            return
        self.queue.append(ev)
        if self.wakeup:
            self.wakeup()


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    """In-memory objects with SQLite write-through.

    Args:
        path: SQLite file (None keeps everything in memory only).
        history: How many change events are kept for watches; older resourceVersions get 410 Gone.
    """

    def __init__(self, path: Path | None = None, history: int = 2000) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._keys: dict[str, builtins.list[tuple[str, str]]] = {}  # each bucket's keys, sorted (lazily)
        self._rv = 0
        self._history: collections.deque[WatchEvent] = collections.deque(maxlen=history)
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self._watchers: set[Watcher] = set()
        self._types: dict[str, ResourceType] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            make_private(path)  # it holds Secrets and env values
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS objects (rkey TEXT, ns TEXT, name TEXT, body TEXT,"
                " PRIMARY KEY (rkey, ns, name))"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
            row = self._db.execute("SELECT v FROM meta WHERE k='rv'").fetchone()
            self._rv = int(row[0]) if row else 0
            for rkey, ns, name, body in self._db.execute("SELECT rkey, ns, name, body FROM objects"):
                self._objects.setdefault(rkey, {})[(ns, name)] = json.loads(body)
        # Watches may resume from any resourceVersion at or after this one.
        self._floor = self._rv

    # ----- bookkeeping -------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def register_type(self, rt: ResourceType) -> None:
        self._types[rt.key] = rt

    def add_listener(self, fn: Callable[[WatchEvent], None]) -> None:
        """Call ``fn(event)`` synchronously after every change (the controller manager uses this)."""
        self._listeners.append(fn)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _persist(self, rt: ResourceType, obj: Obj | None, ns: str, name: str) -> None:
        if self._db is None:
            return
        self._db.execute("BEGIN")
        if obj is None:
            self._db.execute("DELETE FROM objects WHERE rkey=? AND ns=? AND name=?", (rt.key, ns, name))
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)",
                (rt.key, ns, name, jsonfast.dumps(obj).decode()),
            )
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(self._rv),))
        self._db.execute("COMMIT")

    def _emit(self, ev: WatchEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._floor = self._history[0].rv
        self._history.append(ev)
        for w in list(self._watchers):
            w.offer(ev)
        for fn in list(self._listeners):
            fn(ev)

    # ----- reads ---------------------------------------------------------------------------------
    def find(self, rt: ResourceType, namespace: str, name: str, *, copy_obj: bool = True) -> Obj | None:
        """The object, or None."""
        obj = self._objects.get(rt.key, {}).get((namespace if rt.namespaced else "", name))
        if obj is None:
            return None
        return jsonfast.clone(obj) if copy_obj else obj

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        """The object; raises 404 NotFound."""
        obj = self.find(rt, namespace, name)
        if obj is None:
            raise apierrors.not_found(rt.group, rt.plural, name)
        return obj

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        matcher: Callable[[Obj], bool] | None = None,
        *,
        copy_obj: bool = True,
    ) -> builtins.list[Obj]:
        """Objects of ``rt`` (in ``namespace`` if given), sorted by namespace then name."""
        bucket = self._objects.get(rt.key, {})
        keys, start, end = self._range(rt, namespace)
        out = []
        for key in keys[start:end]:
            obj = bucket[key]
            if matcher is not None and not matcher(obj):
                continue
            out.append(jsonfast.clone(obj) if copy_obj else obj)
        return out

    def _range(
        self, rt: ResourceType, namespace: str | None
    ) -> tuple[builtins.list[tuple[str, str]], int, int]:
        """The bucket's sorted keys and the slice of them in ``namespace`` (all without one)."""
        keys = self._keys.get(rt.key)
        if keys is None:
            keys = self._keys[rt.key] = sorted(self._objects.get(rt.key, {}))
        if not (namespace and rt.namespaced):
            return keys, 0, len(keys)
        # keys sort by (namespace, name): one namespace's are contiguous
        return (
            keys,
            bisect.bisect_left(keys, (namespace, "")),
            bisect.bisect_left(keys, (namespace + "\0", "")),
        )

    def _added(self, rkey: str, key: tuple[str, str]) -> None:
        if (keys := self._keys.get(rkey)) is not None:
            bisect.insort(keys, key)

    def _removed(self, rkey: str, key: tuple[str, str]) -> None:
        keys = self._keys.get(rkey)
        if keys is not None:
            i = bisect.bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                del keys[i]

    def page(
        self,
        rt: ResourceType,
        namespace: str | None,
        matcher: Callable[[Obj], bool] | None,
        *,
        after: tuple[str, str] | None,
        limit: int,
    ) -> tuple[builtins.list[Obj], int | None]:
        """A list page: up to ``limit`` matching objects after the key ``after`` (namespace, name), in
        order, not copied, and how many remain after it — counted only without a ``matcher`` (as the
        Kubernetes API leaves ``remainingItemCount`` unset for a selector); it stops at the first match
        past the page, so a selective page does not read every object."""
        bucket = self._objects.get(rt.key, {})
        keys, start, end = self._range(rt, namespace)
        if after is not None:
            start = max(start, bisect.bisect_right(keys, after))
        out: builtins.list[Obj] = []
        for i in range(start, end):
            obj = bucket[keys[i]]
            if matcher is not None and not matcher(obj):
                continue
            if len(out) == limit:
                # more exist: how many only without a selector (Kubernetes leaves it unknown with one)
                return out, (end - i if matcher is None else None)
            out.append(obj)
        return out, 0

    # ----- writes --------------------------------------------------------------------------------
    def assign_generated_name(self, rt: ResourceType, obj: Obj, namespace: str | None = None) -> None:
        """Resolve ``metadata.generateName`` into a free ``metadata.name`` (before admission runs)."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or meta.get("name") or not isinstance(meta.get("generateName"), str):
            return
        ns = (namespace or meta.get("namespace") or "default") if rt.namespaced else ""
        bucket = self._objects.get(rt.key, {})
        while True:
            candidate = meta["generateName"] + secrets.token_hex(3)[:5]
            if (ns, candidate) not in bucket:
                meta["name"] = candidate
                return

    def create(self, rt: ResourceType, obj: Obj, namespace: str | None = None) -> Obj:
        """Store a new object: sets uid, resourceVersion, generation, creationTimestamp, generateName."""
        obj = jsonfast.clone(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise apierrors.bad_request("metadata must be an object")
        ns = (namespace or meta.get("namespace") or "default") if rt.namespaced else ""
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise apierrors.invalid(
                    rt.group,
                    rt.kind,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "message": "name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                )
            for _ in range(20):
                candidate = prefix + secrets.token_hex(3)[:5]
                if (ns, candidate) not in self._objects.get(rt.key, {}):
                    meta["name"] = candidate
                    break
        name = meta["name"]
        check_name(rt, name)
        if rt.namespaced:
            meta["namespace"] = ns
            if rt.plural != "namespaces" and self.find(_NS_TYPE, "", ns, copy_obj=False) is None:
                raise apierrors.ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{ns}" not found',
                    {"name": ns, "kind": "namespaces"},
                )
        else:
            meta.pop("namespace", None)
        bucket = self._objects.setdefault(rt.key, {})
        if (ns, name) in bucket:
            raise apierrors.already_exists(rt.group, rt.plural, name)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        # A uid set by admission (Jobs label their pod template with it) is kept; the API server
        # drops any uid a client sends.
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta.pop("deletionTimestamp", None)
        meta.pop("resourceVersion", None)
        if rt.plural not in _NO_GENERATION:
            meta["generation"] = 1
        if rt.plural == "namespaces":
            obj.setdefault("status", {"phase": "Active"})
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        bucket[(ns, name)] = obj
        self._added(rt.key, (ns, name))
        self._persist(rt, obj, ns, name)
        self._emit(WatchEvent("ADDED", rt, obj, rv))
        return jsonfast.clone(obj)

    def update(
        self, rt: ResourceType, obj: Obj, *, subresource: str | None = None, dry_run: bool = False
    ) -> Obj:
        """Replace an object (PUT semantics); with `dry_run`, check and return the result, store nothing.

        ``subresource="status"`` keeps everything but ``status`` from the stored object; a main-resource
        update of a type with a status subresource keeps the stored ``status``. A non-empty
        ``metadata.resourceVersion`` that is not the current one raises 409 Conflict. The generation
        is bumped when anything outside metadata and status changes. An object being deleted whose
        last finalizer is removed is deleted.
        """
        meta = obj.get("metadata") or {}
        ns = (meta.get("namespace") or "default") if rt.namespaced else ""
        name = meta.get("name", "")
        bucket = self._objects.get(rt.key, {})
        old = bucket.get((ns, name))
        if old is None:
            raise apierrors.not_found(rt.group, rt.plural, name)
        want_rv = meta.get("resourceVersion")
        if want_rv and str(want_rv) != old["metadata"]["resourceVersion"]:
            raise apierrors.conflict(
                rt.group,
                rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        new = jsonfast.clone(obj)
        if subresource == "status":
            merged = jsonfast.clone(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        else:
            if rt.has_status:
                if "status" in old:
                    new["status"] = jsonfast.clone(old["status"])
                else:
                    new.pop("status", None)
            new_meta = new.setdefault("metadata", {})
            # Immutable metadata is kept from the stored object.
            for key in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "generation"):
                if key in old["metadata"]:
                    new_meta[key] = old["metadata"][key]
                else:
                    new_meta.pop(key, None)
            if "managedFields" not in new_meta and "managedFields" in old["metadata"]:
                new_meta["managedFields"] = old["metadata"]["managedFields"]  # kept when a write omits them
            if "generation" in old["metadata"] and _spec_part(new) != _spec_part(old):
                new_meta["generation"] = int(old["metadata"]["generation"]) + 1
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        if dry_run:
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return jsonfast.clone(new)
        rv = self._next_rv()
        new["metadata"]["resourceVersion"] = str(rv)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            del bucket[(ns, name)]
            self._removed(rt.key, (ns, name))
            self._persist(rt, None, ns, name)
            self._emit(WatchEvent("DELETED", rt, new, rv, old))
            return jsonfast.clone(new)
        bucket[(ns, name)] = new
        self._persist(rt, new, ns, name)
        self._emit(WatchEvent("MODIFIED", rt, new, rv, old))
        return jsonfast.clone(new)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str = "Background",
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Delete an object and, unless ``propagation == "Orphan"``, every object it owns.

        With `dry_run` the checks run and the object comes back as it is; nothing changes.

        Objects with finalizers get a deletionTimestamp and stay until their finalizers are removed.
        Foreground and Background both delete the dependents (depth first) before returning; with
        Foreground they go before the owner, as the garbage collector would order it.
        """
        ns = namespace if rt.namespaced else ""
        bucket = self._objects.get(rt.key, {})
        old = bucket.get((ns, name))
        if old is None:
            raise apierrors.not_found(rt.group, rt.plural, name)
        if precondition_uid and precondition_uid != old["metadata"]["uid"]:
            raise apierrors.conflict(
                rt.group, rt.plural, name, "Precondition failed: UID in precondition does not match"
            )
        if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
            raise apierrors.conflict(
                rt.group, rt.plural, name, "Precondition failed: resourceVersion does not match"
            )
        if dry_run:
            return jsonfast.clone(old)
        uid = old["metadata"]["uid"]
        if propagation == "Orphan":
            self._orphan(uid)
        elif propagation == "Foreground":
            self._delete_dependents(uid)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return jsonfast.clone(old)
            new = jsonfast.clone(old)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            rv = self._next_rv()
            new["metadata"]["resourceVersion"] = str(rv)
            bucket[(ns, name)] = new
            self._persist(rt, new, ns, name)
            self._emit(WatchEvent("MODIFIED", rt, new, rv, old))
            result = new
        else:
            gone = jsonfast.clone(old)
            gone["metadata"]["deletionTimestamp"] = now_iso()
            rv = self._next_rv()
            gone["metadata"]["resourceVersion"] = str(rv)
            del bucket[(ns, name)]
            self._removed(rt.key, (ns, name))
            self._persist(rt, None, ns, name)
            self._emit(WatchEvent("DELETED", rt, gone, rv, old))
            result = gone
        if propagation == "Background":
            self._delete_dependents(uid)
        if rt.plural == "namespaces":
            for rkey, objs in list(self._objects.items()):
                dep_rt = self._types.get(rkey)
                if dep_rt is None or not dep_rt.namespaced:
                    continue
                for dns, dname in [k for k in objs if k[0] == name]:
                    if (dns, dname) in objs:
                        self.delete(dep_rt, dns, dname, propagation="Background")
        return jsonfast.clone(result)

    def dependents(self, owner_uid: str) -> builtins.list[tuple[ResourceType, Obj]]:
        """Objects whose ownerReferences name ``owner_uid``."""
        out = []
        for rkey, objs in self._objects.items():
            rt = self._types.get(rkey)
            if rt is None:
                continue
            for obj in objs.values():
                for ref in obj["metadata"].get("ownerReferences") or []:
                    if ref.get("uid") == owner_uid:
                        out.append((rt, obj))
                        break
        return out

    def _delete_dependents(self, owner_uid: str) -> None:
        for rt, obj in self.dependents(owner_uid):
            meta = obj["metadata"]
            if self.find(rt, meta.get("namespace", ""), meta["name"], copy_obj=False) is not None:
                self.delete(rt, meta.get("namespace", ""), meta["name"], propagation="Foreground")

    def _orphan(self, owner_uid: str) -> None:
        for rt, obj in self.dependents(owner_uid):
            new = jsonfast.clone(obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            new["metadata"].pop("resourceVersion", None)
            self.update(rt, new)

    # ----- watch ---------------------------------------------------------------------------------
    def watch(
        self, rt: ResourceType, namespace: str | None, since_rv: int | None, matcher: Callable[[Obj], bool]
    ) -> Watcher:
        """Subscribe to changes after ``since_rv`` (None: only future changes). Raises 410 Gone
        when ``since_rv`` is older than the kept history."""
        w = Watcher(rt, namespace, matcher)
        if since_rv is not None:
            if since_rv < self._floor:
                raise apierrors.gone(f"too old resource version: {since_rv} ({self._floor})")
            for ev in self._history:
                if ev.rv > since_rv:
                    w.offer(ev)
        self._watchers.add(w)
        return w

    def unwatch(self, w: Watcher) -> None:
        self._watchers.discard(w)


def check_name(rt: ResourceType, name: Any) -> None:
    """Object names must be DNS-1123 subdomains (pods, jobs, CRs) of at most 253 characters."""
    if not isinstance(name, str) or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise apierrors.invalid(
            rt.group,
            rt.kind,
            str(name),
            [
                {
                    "reason": "FieldValueInvalid",
                    "message": (
                        f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower case "
                        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                    ),
                    "field": "metadata.name",
                }
            ],
        )


_NS_TYPE = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False)
