"""Discovery documents: /version, /api, /apis, /apis/<group>, and the resource lists per group/version.

kubectl 1.32 first asks for aggregated discovery (``as=APIGroupDiscoveryList``); answering with the
plain ``application/json`` documents makes it fall back to the per-group requests, which is enough.
"""

from __future__ import annotations

import platform
from typing import Any

from kubeflow_bridge.local.apiserver.kinds import KindRegistry, ResourceType

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def version(app_version: str) -> dict[str, Any]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": f"v1.32.0-kubeflow-bridge-local-{app_version}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a",
        "compiler": "python",
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }


def _resource(rt: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular_name,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs)
        or (VERBS if rt.plural != "namespaces" else [v for v in VERBS if v != "deletecollection"]),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    out = [main]
    if rt.has_status:
        out.append(
            {
                "name": f"{rt.plural}/status",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }
        )
    if rt.scale is not None:
        out.append(
            {
                "name": f"{rt.plural}/scale",
                "singularName": "",
                "namespaced": rt.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }
        )
    if rt.plural == "pods":
        out.append(
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]}
        )
    return out


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def document(kinds: KindRegistry, parts: list[str], accept: str) -> dict[str, Any] | None:
    """The discovery document for a path, or None if the path is not a discovery path."""
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }
    if parts == ["apis"]:
        groups = kinds.groups()
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group(g, sorted(vs, key=_version_rank)) for g, vs in groups.items()],
        }
    if len(parts) == 2 and parts[0] == "apis":
        versions = kinds.groups().get(parts[1])
        if versions is None:
            return None
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            **_group(parts[1], sorted(versions, key=_version_rank)),
        }
    if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
        group, ver = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        types = kinds.in_group_version(group, ver)
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in types:
            resources += _resource(rt)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{ver}" if group else ver,
            "resources": resources,
        }
    return None


def _version_rank(v: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA before beta before alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (9, 0, 0)
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0))
