"""Decodes the Kubernetes protobuf request bodies that kubectl sends for simple built-in kinds.

``kubectl create namespace|configmap|secret|serviceaccount`` post ``application/vnd.kubernetes.protobuf``
(client-go's typed clients) and do not fall back to JSON. The envelope is ``k8s\\x00`` + a
``runtime.Unknown`` message whose ``raw`` field holds the object; the field numbers below are those of
k8s.io/api's generated.proto. Other kinds are answered 415 with the fix (send JSON or YAML).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from typing import Any

MAGIC = b"k8s\x00"
Schema = Mapping[int, tuple[str, Callable[[Any], Any], str]]  # field number -> (json name, decode, shape)


class ProtobufError(ValueError):
    """The body is not a protobuf object this server decodes."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) for varint and length-delimited fields; others are skipped."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, value
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise ProtobufError("truncated field")
            yield number, buf[i : i + size]
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _map(entry: int | bytes, binary: bool = False) -> tuple[str, str]:
    key, val = "", b""
    for number, value in _fields(entry if isinstance(entry, bytes) else b""):
        if number == 1:
            key = _text(value)
        elif number == 2 and isinstance(value, bytes):
            val = value
    return key, base64.b64encode(val).decode() if binary else val.decode("utf-8")


def _message(buf: int | bytes, schema: Schema) -> dict[str, Any]:
    """schema: field number -> (json name, decode, "one" | "list" | "map")."""
    out: dict[str, Any] = {}
    for number, value in _fields(buf if isinstance(buf, bytes) else b""):
        if number not in schema:
            continue
        name, decode, shape = schema[number]
        if shape == "map":
            key, val = decode(value)
            out.setdefault(name, {})[key] = val
        elif shape == "list":
            out.setdefault(name, []).append(decode(value))
        else:
            decoded = decode(value)
            if decoded != "":  # Go writes empty strings; JSON omits them
                out[name] = decoded
    return out


def _bool(value: int | bytes) -> bool:
    return bool(value)


_OWNER: Schema = {
    1: ("kind", _text, "one"),
    3: ("name", _text, "one"),
    4: ("uid", _text, "one"),
    5: ("apiVersion", _text, "one"),
    6: ("controller", _bool, "one"),
    7: ("blockOwnerDeletion", _bool, "one"),
}
_META: Schema = {
    1: ("name", _text, "one"),
    2: ("generateName", _text, "one"),
    3: ("namespace", _text, "one"),
    6: ("resourceVersion", _text, "one"),
    11: ("labels", _map, "map"),
    12: ("annotations", _map, "map"),
    13: ("ownerReferences", lambda v: _message(v, _OWNER), "list"),
    14: ("finalizers", _text, "list"),
}
_OBJECT_REF: Schema = {
    1: ("kind", _text, "one"),
    2: ("namespace", _text, "one"),
    3: ("name", _text, "one"),
    4: ("uid", _text, "one"),
    5: ("apiVersion", _text, "one"),
}


def _meta(value: int | bytes) -> dict[str, Any]:
    return _message(value, _META)


_RESOURCE_ATTRIBUTES: Schema = {
    n + 1: (name, _text, "one")
    for n, name in enumerate(("namespace", "verb", "group", "version", "resource", "subresource", "name"))
}
_NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", _text, "one"), 2: ("verb", _text, "one")}

KINDS: dict[str, Schema] = {
    "Namespace": {
        1: ("metadata", _meta, "one"),
        2: ("spec", lambda v: _message(v, {1: ("finalizers", _text, "list")}), "one"),
    },
    "ConfigMap": {
        1: ("metadata", _meta, "one"),
        2: ("data", _map, "map"),
        3: ("binaryData", lambda v: _map(v, binary=True), "map"),
        4: ("immutable", _bool, "one"),
    },
    "Secret": {
        1: ("metadata", _meta, "one"),
        2: ("data", lambda v: _map(v, binary=True), "map"),
        3: ("type", _text, "one"),
        4: ("stringData", _map, "map"),
        5: ("immutable", _bool, "one"),
    },
    "ServiceAccount": {
        1: ("metadata", _meta, "one"),
        2: ("secrets", lambda v: _message(v, _OBJECT_REF), "list"),
        3: ("imagePullSecrets", lambda v: _message(v, {1: ("name", _text, "one")}), "list"),
        4: ("automountServiceAccountToken", _bool, "one"),
    },
    # kubectl auth can-i / whoami (k8s.io/api authorization/v1, authentication/v1)
    "SelfSubjectAccessReview": {
        1: ("metadata", _meta, "one"),
        2: (
            "spec",
            lambda v: _message(
                v,
                {
                    1: ("resourceAttributes", lambda a: _message(a, _RESOURCE_ATTRIBUTES), "one"),
                    2: ("nonResourceAttributes", lambda a: _message(a, _NON_RESOURCE_ATTRIBUTES), "one"),
                },
            ),
            "one",
        ),
    },
    "SelfSubjectRulesReview": {
        1: ("metadata", _meta, "one"),
        2: ("spec", lambda v: _message(v, {1: ("namespace", _text, "one")}), "one"),
    },
    "SelfSubjectReview": {1: ("metadata", _meta, "one")},
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of one of :data:`KINDS`.

    Raises:
        ProtobufError: not the protobuf envelope, or a kind this server does not decode.
    """
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic number")
    envelope = _message(
        body[len(MAGIC) :],
        {
            1: (
                "typeMeta",
                lambda v: _message(v, {1: ("apiVersion", _text, "one"), 2: ("kind", _text, "one")}),
                "one",
            ),
            2: ("raw", lambda v: v, "one"),
        },
    )
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in KINDS:
        raise ProtobufError(
            f"this server decodes protobuf bodies only for {', '.join(KINDS)}, not {kind or 'this object'}: "
            "send it as JSON or YAML (kubectl create -f FILE, or kubectl apply -f FILE)"
        )
    obj = _message(envelope.get("raw", b""), KINDS[kind])
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
