"""Query options of write requests: ``dryRun`` and ``fieldValidation`` (with the ``Warning`` headers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver.schemas import unknown_fields


def dry_run(request: web.Request, options: dict[str, Any] | None = None) -> bool:
    """dryRun from the query (or DeleteOptions): only "All" exists, as on a real API server."""
    values = request.query.getall("dryRun", []) or list((options or {}).get("dryRun") or [])
    for value in values:
        if value != "All":
            raise apierrors.ApiError(
                400, "BadRequest", f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    return bool(values)


def field_validation(request: web.Request, kind: str, obj: Any) -> list[str]:
    """fieldValidation: Strict refuses unknown fields (400), Warn returns them as warnings, Ignore skips."""
    mode = request.query.get("fieldValidation") or "Ignore"
    if mode not in ("Ignore", "Warn", "Strict"):
        raise apierrors.bad_request(
            f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Warn", "Strict"'
        )
    if mode == "Ignore" or not isinstance(obj, dict):
        return []
    problems = [f'unknown field "{path}"' for path in unknown_fields(kind, obj)]
    if problems and mode == "Strict":
        raise apierrors.bad_request("strict decoding error: " + ", ".join(problems))
    return problems


def warn(response: web.Response, warnings: list[str]) -> web.Response:
    for warning in warnings:
        response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
    return response
