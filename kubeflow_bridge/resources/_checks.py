"""Small structural checks shared by the validators (internal).

Each check appends :class:`FieldCause` entries to a list instead of raising, so a validator reports
every problem at once.
"""

from __future__ import annotations

import re
from typing import Any

from kubeflow_bridge.resources.errors import FieldCause
from kubeflow_bridge.resources.names import DNS1035_MAX_LENGTH, dns1035_problem

Causes = list[FieldCause]

_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "a boolean"}

# Kubernetes quantities: "1", "500m", "2Gi", "1.5", "1e3".
_QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkKMGTPE]i?|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def expect(causes: Causes, path: str, value: Any, kind: type, *, required: bool = False) -> bool:
    """Check ``value`` is of JSON type ``kind``; return True when it is present and of that type."""
    if value is None:
        if required:
            causes.append(
                FieldCause(
                    path, f"is required ({_TYPE_NAMES.get(kind, kind.__name__)})", "FieldValueRequired"
                )
            )
        return False
    ok = is_int(value) if kind is int else isinstance(value, kind)
    if not ok:
        causes.append(
            FieldCause(
                path, f"must be {_TYPE_NAMES.get(kind, kind.__name__)}, not {type(value).__name__} {value!r}"
            )
        )
    return ok


def expect_enum(
    causes: Causes, path: str, value: Any, allowed: tuple[str, ...], *, required: bool = False
) -> None:
    """Check ``value`` is one of ``allowed`` (a missing optional value passes)."""
    if value is None:
        if required:
            causes.append(FieldCause(path, f"is required: one of {', '.join(allowed)}", "FieldValueRequired"))
        return
    if value not in allowed:
        causes.append(
            FieldCause(
                path, f"{value!r} is not supported: use one of {', '.join(allowed)}", "FieldValueNotSupported"
            )
        )


def expect_min(causes: Causes, path: str, value: Any, minimum: int, *, required: bool = False) -> bool:
    """Check ``value`` is an integer >= ``minimum``."""
    if not expect(causes, path, value, int, required=required):
        return False
    if value < minimum:
        causes.append(FieldCause(path, f"must be >= {minimum} (got {value})"))
        return False
    return True


def check_string_list(causes: Causes, path: str, value: Any) -> None:
    if expect(causes, path, value, list):
        for i, item in enumerate(value):
            expect(causes, f"{path}[{i}]", item, str)


def check_string_map(causes: Causes, path: str, value: Any) -> None:
    if expect(causes, path, value, dict):
        for key, item in value.items():
            expect(causes, f"{path}[{key}]", item, str)


def check_resources(causes: Causes, path: str, value: Any) -> None:
    """Container ``resources``: ``limits`` and ``requests`` maps of quantities (strings or numbers)."""
    if not expect(causes, path, value, dict):
        return
    for key in value:
        if key not in ("limits", "requests", "claims"):
            causes.append(
                FieldCause(f"{path}.{key}", "unknown field: use limits or requests", "FieldValueNotSupported")
            )
    for section in ("limits", "requests"):
        quantities = value.get(section)
        if not expect(causes, f"{path}.{section}", quantities, dict):
            continue
        for name, quantity in quantities.items():
            qpath = f"{path}.{section}[{name}]"
            if isinstance(quantity, bool) or not isinstance(quantity, (str, int, float)):
                causes.append(
                    FieldCause(qpath, f"must be a quantity like '1', '500m' or '2Gi', not {quantity!r}")
                )
            elif isinstance(quantity, str) and not _QUANTITY_RE.match(quantity):
                causes.append(
                    FieldCause(qpath, f"{quantity!r} is not a quantity: use e.g. '1', '500m' or '2Gi'")
                )


def check_env(causes: Causes, path: str, value: Any) -> None:
    """Container ``env``: a list of ``{name, value}`` or ``{name, valueFrom}``."""
    if not expect(causes, path, value, list):
        return
    for i, item in enumerate(value):
        ipath = f"{path}[{i}]"
        if not expect(causes, ipath, item, dict):
            continue
        name = item.get("name")
        if expect(causes, f"{ipath}.name", name, str, required=True) and not _ENV_NAME_RE.match(name):
            causes.append(FieldCause(f"{ipath}.name", f"{name!r} is not a valid environment variable name"))
        expect(causes, f"{ipath}.value", item.get("value"), str)
        if "value" in item and "valueFrom" in item:
            causes.append(FieldCause(ipath, "set value or valueFrom, not both"))
        expect(causes, f"{ipath}.valueFrom", item.get("valueFrom"), dict)


def check_container(causes: Causes, path: str, container: Any) -> None:
    """The structural types of one container as the bridge emits it."""
    if not expect(causes, path, container, dict):
        return
    expect(causes, f"{path}.name", container.get("name"), str, required=True)
    expect(causes, f"{path}.image", container.get("image"), str)
    check_string_list(causes, f"{path}.command", container.get("command"))
    check_string_list(causes, f"{path}.args", container.get("args"))
    check_env(causes, f"{path}.env", container.get("env"))
    check_resources(causes, f"{path}.resources", container.get("resources"))
    expect(causes, f"{path}.workingDir", container.get("workingDir"), str)
    expect_enum(
        causes,
        f"{path}.imagePullPolicy",
        container.get("imagePullPolicy"),
        ("Always", "IfNotPresent", "Never"),
    )
    ports = container.get("ports")
    if expect(causes, f"{path}.ports", ports, list):
        for j, port in enumerate(ports):
            ppath = f"{path}.ports[{j}]"
            if (
                expect(causes, ppath, port, dict)
                and expect(causes, f"{ppath}.containerPort", port.get("containerPort"), int, required=True)
                and not 1 <= port["containerPort"] <= 65535
            ):
                causes.append(FieldCause(f"{ppath}.containerPort", "must be between 1 and 65535"))
            if isinstance(port, dict):
                expect(causes, f"{ppath}.name", port.get("name"), str)
                expect_enum(causes, f"{ppath}.protocol", port.get("protocol"), ("TCP", "UDP", "SCTP"))


def check_metadata_maps(causes: Causes, path: str, metadata: Any) -> None:
    if expect(causes, path, metadata, dict):
        check_string_map(causes, f"{path}.labels", metadata.get("labels"))
        check_string_map(causes, f"{path}.annotations", metadata.get("annotations"))


def check_object_header(
    causes: Causes,
    obj: dict[str, Any],
    *,
    kind: str,
    api_version: str,
    max_name_length: int = DNS1035_MAX_LENGTH,
) -> str:
    """Check ``apiVersion``, ``kind`` and ``metadata`` (a DNS-1035 name, string maps); return the name."""
    if obj.get("apiVersion") != api_version:
        causes.append(FieldCause("apiVersion", f"must be {api_version!r}, not {obj.get('apiVersion')!r}"))
    if obj.get("kind") != kind:
        causes.append(FieldCause("kind", f"must be {kind!r}, not {obj.get('kind')!r}"))
    metadata: Any = obj.get("metadata")
    if not expect(causes, "metadata", metadata, dict, required=True):
        return ""
    name = metadata.get("name")
    problem = dns1035_problem(name, max_name_length)
    if problem:
        causes.append(FieldCause("metadata.name", problem))
    check_metadata_maps(causes, "metadata", metadata)
    return name if isinstance(name, str) else ""
