"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from kubeflow_bridge.local.apiserver.errors import ApiError, bad_request


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch; ``null`` deletes a key, lists are replaced."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"JSON patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise _unprocessable(f"JSON patch path {path!r} does not exist") from None
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise _unprocessable(f"JSON patch path {path!r} does not exist")
    return cur


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        try:
            return parent[int(last)]
        except (ValueError, IndexError):
            raise _unprocessable(f"JSON patch path {path!r} does not exist") from None
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    raise _unprocessable(f"JSON patch path {path!r} does not exist")


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError):
            raise _unprocessable(f"JSON patch remove: path {path!r} does not exist") from None
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    raise _unprocessable(f"JSON patch remove: path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise _unprocessable(f"JSON patch add: bad array index in {path!r}") from None
            if idx < 0 or idx > len(parent):
                raise _unprocessable(f"JSON patch add: index out of range in {path!r}")
            parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise _unprocessable(f"JSON patch add: parent of {path!r} is not an object or array")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise bad_request("a JSON patch must be a JSON array of operations")
    result = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation {op!r}: needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if kind == "add":
            result = _add(result, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(result, path)
        elif kind == "replace":
            _get(result, path)
            if _pointer(path):
                _remove(result, path)
            result = _add(result, path, copy.deepcopy(op.get("value")))
        elif kind == "move":
            value = _remove(result, op["from"])
            result = _add(result, path, value)
        elif kind == "copy":
            result = _add(result, path, copy.deepcopy(_get(result, op["from"])))
        elif kind == "test":
            if _get(result, path) != op.get("value"):
                raise _unprocessable(f"JSON patch test failed at {path!r}")
        else:
            raise bad_request(f"unknown JSON patch operation {kind!r}")
    return result


# Merge keys of the built-in types' lists (k8s.io/api patchMergeKey); other lists are replaced.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "secrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "resourceClaims": "name",
}
MERGED_PRIMITIVE_LISTS = {"finalizers"}  # patchStrategy: merge on a list of strings


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch as the API server does for built-in kinds.

    Lists with a merge key merge item by item (``$patch: delete`` removes one); ``$patch: replace``
    replaces a map or list; ``$deleteFromPrimitiveList/<field>`` removes strings; ``$setElementOrder``
    and ``$retainKeys`` (kubectl apply's directives) are honoured as far as order and kept keys go.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value, patch.get(f"$setElementOrder/{key}"))
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, current: Any, patch: list[Any], order: Any) -> list[Any]:
    current = current if isinstance(current, list) else []
    if field in MERGED_PRIMITIVE_LISTS and all(not isinstance(v, dict) for v in patch):
        return current + [v for v in patch if v not in current]
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(v, dict) for v in [*current, *patch]):
        if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
            return [copy.deepcopy({k: x for k, x in v.items() if k != "$patch"}) for v in patch]
        return copy.deepcopy(patch)
    if any(v.get("$patch") == "replace" for v in patch):
        return [copy.deepcopy({k: x for k, x in v.items() if k != "$patch"}) for v in patch if len(v) > 1]
    merged = [copy.deepcopy(v) for v in current]
    for item in patch:
        at = next((i for i, v in enumerate(merged) if v.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if at is not None:
                merged.pop(at)
        elif at is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[at] = strategic_merge_patch(merged[at], item)
    if isinstance(order, list):
        rank = {str(o.get(key) if isinstance(o, dict) else o): i for i, o in enumerate(order)}
        merged.sort(key=lambda v: rank.get(str(v.get(key)), len(rank)))
    return merged
