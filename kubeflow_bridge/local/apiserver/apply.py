"""Server-side apply (``PATCH`` with ``application/apply-patch+yaml``, ``kubectl apply --server-side``).

Each field manager's applied fields are kept in ``metadata.managedFields`` (operation ``Apply``,
``fieldsV1`` in the API server's format). Applying a configuration:

* creates the object if it does not exist;
* removes the fields this manager applied before and no longer applies (unless another apply
  manager also owns them);
* merges the configuration in: maps field by field, lists with a merge key of the built-in kinds
  item by item (by that key), other lists as a whole;
* refuses, with 409 Conflict naming the manager and the fields, to change a field another apply
  manager set to a different value, unless ``force=true``, which takes the field over.

Simplification: ownership is tracked for apply managers only (an ``Update`` by PUT or a merge patch
changes values but claims no fields), so conflicts arise between appliers.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

from kubeflow_bridge.local.apiserver.errors import ApiError
from kubeflow_bridge.local.apiserver.patch import MERGE_KEYS

Path = tuple[Any, ...]  # field names, and ("k", key, value) for an item of a keyed list


def _keyed(field: str, items: list[Any], builtin: bool) -> str | None:
    key = MERGE_KEYS.get(field) if builtin else None
    if key and all(isinstance(i, dict) and key in i for i in items):
        return key
    return None


def leaf_paths(config: Any, builtin: bool, prefix: Path = ()) -> set[Path]:
    """The fields a configuration sets, as paths to its leaves (keyed list items by their key)."""
    out: set[Path] = set()
    if not isinstance(config, dict):
        return {prefix}
    for name, value in config.items():
        if prefix == () and name in ("apiVersion", "kind"):
            continue
        if prefix == ("metadata",) and name in ("name", "namespace", "managedFields", "resourceVersion"):
            continue
        path = (*prefix, name)
        if isinstance(value, dict) and value:
            out |= leaf_paths(value, builtin, path)
        elif isinstance(value, list) and value and (key := _keyed(name, value, builtin)):
            for item in value:
                out |= leaf_paths(item, builtin, (*path, ("k", key, item[key])))
        else:
            out.add(path)
    return out


def fields_v1(paths: set[Path]) -> dict[str, Any]:
    """The managedFields ``fieldsV1`` form of a set of leaf paths."""
    root: dict[str, Any] = {}
    for path in sorted(paths, key=repr):
        node = root
        for part in path:
            label = (
                f"k:{json.dumps({part[1]: part[2]}, separators=(',', ':'))}"
                if isinstance(part, tuple)
                else f"f:{part}"
            )
            node = node.setdefault(label, {})
    return root


def paths_of(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    """The leaf paths a ``fieldsV1`` tree names (the inverse of :func:`fields_v1`)."""
    out: set[Path] = set()
    for label, child in fields.items():
        if label == ".":
            continue
        if label.startswith("f:"):
            part: Any = label[2:]
        elif label.startswith("k:"):
            ((key, value),) = json.loads(label[2:]).items()
            part = ("k", key, value)
        else:
            continue
        path = (*prefix, part)
        out |= paths_of(child, path) if child else {path}
    return out


def _get(obj: Any, path: Path) -> tuple[bool, Any]:
    for part in path:
        if isinstance(part, tuple):
            if not isinstance(obj, list):
                return False, None
            obj = next((i for i in obj if isinstance(i, dict) and i.get(part[1]) == part[2]), None)
            if obj is None:
                return False, None
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return False, None
    return True, obj


def _remove(obj: Any, path: Path) -> None:
    *parents, last = path
    found, parent = _get(obj, tuple(parents))
    if not found:
        return
    if isinstance(last, tuple) and isinstance(parent, list):
        parent[:] = [i for i in parent if not (isinstance(i, dict) and i.get(last[1]) == last[2])]
    elif isinstance(parent, dict):
        parent.pop(last, None)


def _merge(target: Any, config: Any, builtin: bool) -> Any:
    if not isinstance(config, dict) or not isinstance(target, dict):
        return copy.deepcopy(config)
    out = copy.deepcopy(target)
    for name, value in config.items():
        current = out.get(name)
        if (
            isinstance(value, list)
            and isinstance(current, list)
            and (key := _keyed(name, value + current, builtin))
        ):
            merged = [copy.deepcopy(i) for i in current]
            for item in value:
                at = next((n for n, i in enumerate(merged) if i.get(key) == item[key]), None)
                if at is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[at] = _merge(merged[at], item, builtin)
            out[name] = merged
        else:
            out[name] = _merge(current, value, builtin) if isinstance(value, dict) else copy.deepcopy(value)
    return out


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def apply(
    old: dict[str, Any] | None,
    config: dict[str, Any],
    *,
    manager: str,
    force: bool,
    builtin: bool,
    api_version: str,
) -> dict[str, Any]:
    """The object after `manager` applies `config` to `old` (None: create). Raises 409 on conflicts."""
    if not manager:
        raise ApiError(400, "BadRequest", "fieldManager is required for apply requests (kubectl sets it)")
    base = copy.deepcopy(old) if old is not None else {}
    applied = leaf_paths(config, builtin)
    entries = _entries(base)
    mine = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"), None)
    others = [e for e in entries if e is not mine and e.get("operation") == "Apply"]
    owned_by_others: dict[Path, str] = {}
    for entry in others:
        for path in paths_of(entry.get("fieldsV1") or {}):
            owned_by_others.setdefault(path, str(entry.get("manager")))
    conflicts = sorted(
        (path, owned_by_others[path])
        for path in applied
        if path in owned_by_others and _get(base, path) != _get(config, path)
    )
    if conflicts and not force:
        names = ", ".join(
            f'conflict with "{who}": .' + ".".join(str(p[2]) if isinstance(p, tuple) else p for p in path)
            for path, who in conflicts
        )
        raise ApiError(409, "Conflict", f"Apply failed with {len(conflicts)} conflict(s): {names}")
    previous = paths_of(mine.get("fieldsV1") or {}) if mine else set()
    for path in previous - applied:
        if path not in owned_by_others:
            _remove(base, path)
    result = _merge(base, config, builtin)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kept = []
    for entry in others:  # a forced apply takes conflicting fields away from their managers
        lost = {path for path, _ in conflicts if owned_by_others.get(path) == entry.get("manager")}
        left = paths_of(entry.get("fieldsV1") or {}) - lost
        if left:
            kept.append({**entry, "fieldsV1": fields_v1(left)})
    kept += [e for e in entries if e.get("operation") != "Apply"]
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(applied),
    }
    result.setdefault("metadata", {})["managedFields"] = [*kept, entry]
    return result
