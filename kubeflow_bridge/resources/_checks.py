"""Small structural checks shared by the validators (internal).

Each check appends :class:`FieldCause` entries to a list instead of raising, so a validator reports
every problem at once.
"""

from __future__ import annotations

import math
import re
from typing import Any

from kubeflow_bridge.resources.errors import FieldCause
from kubeflow_bridge.resources.names import DNS1035_MAX_LENGTH, dns1035_problem

Causes = list[FieldCause]

_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "a boolean"}

# Kubernetes quantities: "1", "500m", "2Gi", "1.5", "1e3".
_QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkKMGTPE]i?|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# An image reference as container runtimes parse it: [host[:port]/]path[:tag][@digest].
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_HOST = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*(?::[0-9]+)?/)"
_IMAGE_RE = re.compile(
    rf"^{_IMAGE_HOST}?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def dns1123_label_problem(value: object, what: str = "name") -> str | None:
    """What is wrong with ``value`` as an RFC 1123 label (container and port names), or None."""
    if not isinstance(value, str) or not value:
        return f"a {what} is required: lowercase letters, digits and '-'"
    if len(value) > 63 or not _DNS1123_LABEL_RE.match(value):
        return (
            f"{value!r} is not a valid {what}: a lowercase RFC 1123 label of at most 63 characters "
            "(lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. 'my-name')"
        )
    return None


def label_key_problem(key: object) -> str | None:
    """What is wrong with ``key`` as a label or annotation key (``[prefix/]name``), or None."""
    if not isinstance(key, str) or not key:
        return "a label key must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.match(prefix)):
        return f"{key!r}: the prefix before '/' must be a DNS subdomain such as 'example.com'"
    if len(name) > 63 or not _QUALIFIED_NAME_RE.match(name):
        return (
            f"{key!r} is not a valid label key: at most 63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit, with an optional DNS prefix (e.g. 'team' or 'example.com/team')"
        )
    return None


def label_value_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a label value (empty is allowed), or None."""
    if not isinstance(value, str):
        return f"a label value must be a string, not {type(value).__name__} {value!r}"
    if value and (len(value) > 63 or not _QUALIFIED_NAME_RE.match(value)):
        return (
            f"{value!r} is not a valid label value: at most 63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit"
        )
    return None


def image_problem(image: object) -> str | None:
    """What is wrong with ``image`` as an image reference (``registry/repo:tag``), or None."""
    if not isinstance(image, str) or not image.strip():
        return "an image is required (e.g. 'kubeflow-bridge/trainer:latest')"
    if not _IMAGE_RE.match(image):
        return (
            f"{image!r} is not a valid image reference: use [registry/]repository[:tag][@digest] with a "
            "lowercase repository and no spaces (e.g. 'kubeflow-bridge/trainer:latest')"
        )
    return None


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
            elif str(quantity).lstrip().startswith("-") or (
                isinstance(quantity, float) and not math.isfinite(quantity)
            ):
                causes.append(FieldCause(qpath, f"must be greater than or equal to 0 (got {quantity!r})"))


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


def check_env_from(causes: Causes, path: str, value: Any) -> None:
    """Container ``envFrom``: a list of ``{secretRef|configMapRef: {name, optional}, prefix}``."""
    if not expect(causes, path, value, list):
        return
    for i, item in enumerate(value):
        ipath = f"{path}[{i}]"
        if not expect(causes, ipath, item, dict):
            continue
        refs = [k for k in ("secretRef", "configMapRef") if k in item]
        if len(refs) != 1:
            causes.append(FieldCause(ipath, "set exactly one of secretRef or configMapRef"))
            continue
        ref = item[refs[0]]
        if expect(causes, f"{ipath}.{refs[0]}", ref, dict, required=True):
            name = ref.get("name")
            valid = isinstance(name, str) and len(name) <= 253 and _DNS1123_SUBDOMAIN_RE.match(name)
            if not valid and not is_placeholder(name):
                causes.append(
                    FieldCause(
                        f"{ipath}.{refs[0]}.name", f"{name!r} is not a valid object name (e.g. 's3-creds')"
                    )
                )
            expect(causes, f"{ipath}.{refs[0]}.optional", ref.get("optional"), bool)
        expect(causes, f"{ipath}.prefix", item.get("prefix"), str)


def check_container(causes: Causes, path: str, container: Any) -> None:
    """The structural types of one container as the bridge emits it."""
    if not expect(causes, path, container, dict):
        return
    name = container.get("name")
    if expect(causes, f"{path}.name", name, str, required=True):
        problem = dns1123_label_problem(name, "container name")
        if problem:
            causes.append(FieldCause(f"{path}.name", problem))
    image = container.get("image")
    if expect(causes, f"{path}.image", image, str) and not is_placeholder(image):
        problem = image_problem(image)
        if problem:
            causes.append(FieldCause(f"{path}.image", problem))
    check_string_list(causes, f"{path}.command", container.get("command"))
    check_string_list(causes, f"{path}.args", container.get("args"))
    check_env(causes, f"{path}.env", container.get("env"))
    check_env_from(causes, f"{path}.envFrom", container.get("envFrom"))
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
    """Labels (valid keys and values) and annotations (valid keys, string values)."""
    if not expect(causes, path, metadata, dict):
        return
    for field, check_value in (("labels", label_value_problem), ("annotations", None)):
        mapping = metadata.get(field)
        if not expect(causes, f"{path}.{field}", mapping, dict):
            continue
        for key, value in mapping.items():
            problem = label_key_problem(key) or (check_value(value) if check_value else None)
            if problem is None and not isinstance(value, str):
                problem = f"must be a string, not {type(value).__name__} {value!r}"
            if problem:
                causes.append(FieldCause(f"{path}.{field}[{key}]", problem))


def is_placeholder(value: Any) -> bool:
    """A value a controller substitutes later (Katib's ``${trialParameters.x}``, KFP's ``{{$...}}``)."""
    return isinstance(value, str) and ("${" in value or "{{" in value)


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
