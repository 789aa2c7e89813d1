"""Refuse a DAG run whose conf the DAG cannot take, at submit, naming every bad field.

An ASGI middleware for Airflow's API server (the plugin registers it): a ``POST /api/v2/dags/{dag_id}/dagRuns``
for a DAG tagged ``kubeflow-bridge`` is answered 400 when its ``conf`` names a param the DAG does not
have (``{"rowz": 5000}``: Airflow itself would accept it and run with the default) or gives a value its
param's JSON schema refuses. The answer lists every problem, not only the first; nothing is created.
Other DAGs and other requests pass through untouched. The trigger form and the REST API both submit
here; ``airflow dags trigger`` writes to the database directly, so the DAGs' first task keeps the
same check (``workflow.check_params``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: DAGs with this tag get the check.
TAG = "kubeflow-bridge"
TRIGGER_PATH = re.compile(r"^/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: ``dag_id -> {param name: JSON schema}``, or None when the DAG does not take the check.
ParamLookup = Callable[[str], "dict[str, dict[str, Any]] | None"]


def dag_param_schemas(dag_id: str) -> dict[str, dict[str, Any]] | None:
    """The params of a DAG tagged ``kubeflow-bridge``, from its serialized form in the metadata DB."""
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    if dag is None or TAG not in (dag.tags or ()):
        return None
    return {name: dict(dag.params.get_param(name).schema) for name in dag.params}


def _format_checker() -> Any:
    """jsonschema's format checks, with ``date-time`` checked even without its optional rfc3339 package."""
    from datetime import datetime

    from jsonschema import FormatChecker

    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def is_datetime(value: object) -> bool:
        return not isinstance(value, str) or bool(datetime.fromisoformat(value.replace("Z", "+00:00")))

    return checker


def conf_problems(conf: Any, schemas: dict[str, dict[str, Any]]) -> list[str]:
    """Every reason the DAG cannot take ``conf`` (empty: it can)."""
    from jsonschema import Draft202012Validator

    if conf is None:
        return []
    if not isinstance(conf, dict):
        return [f"conf must be a JSON object of params, not {type(conf).__name__}"]
    # Worded as Airflow words its own param errors, with the schema keyword that failed.
    problems = []
    checker = _format_checker()
    for name in sorted(set(conf) - set(schemas)):
        close = difflib.get_close_matches(name, schemas, 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"Unknown param {name!r}{hint}: the params are {', '.join(sorted(schemas))}")
    for name in sorted(set(conf) & set(schemas)):
        validator = Draft202012Validator(schemas[name], format_checker=checker)
        for error in sorted(validator.iter_errors(conf[name]), key=str):
            problems.append(f"Invalid input for param {name}: {error.message} ({error.validator})")
    return problems


class DagRunConfCheck:
    """The middleware (see the module docstring).

    Args:
        app: The ASGI app it wraps.
        lookup: Where the params come from (the seam tests replace); default :func:`dag_param_schemas`.
    """

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], lookup: ParamLookup | None = None
    ):
        self.app = app
        self.lookup = lookup or dag_param_schemas

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = TRIGGER_PATH.match(scope.get("path", "")) if scope.get("type") == "http" else None
        if match is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
        problems = await self._problems(match["dag_id"], body)
        if problems:
            # One string, as Airflow's own errors: the trigger form shows it in its toast.
            payload = json.dumps({"detail": "; ".join(problems)}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _problems(self, dag_id: str, body: bytes) -> list[str]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return []  # Airflow answers a malformed body itself
        if not isinstance(request, dict):
            return []
        from starlette.concurrency import run_in_threadpool

        schemas = await run_in_threadpool(self.lookup, dag_id)
        return [] if schemas is None else conf_problems(request.get("conf"), schemas)
