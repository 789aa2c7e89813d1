"""The UI's one write: clone a KFP run with new parameters (the KFP UI's "Clone run"), and its login.

A browser following a link carries no token, and any web page the user opens can send a form to
127.0.0.1. So a write is taken only:

- from the UI's own form: the request's ``Host`` is the UI's loopback address (no DNS rebinding), its
  ``Origin`` (browsers send one with every POST) is the same, and the form carries a token that only the
  UI's own page has (an HMAC of the browser's session);
- with the runtime's auth on, after a login: ``/_/login`` takes the runtime's token once (the one in its
  kubeconfig) and sets an HttpOnly, SameSite=Strict session cookie (kept in memory: a restart logs out).

The run is then created through the runtime's KFP API with the runtime's token, as any client creates one,
so the API's own checks apply; bad parameters are refused before anything is created, with the fix.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from html import escape
from typing import Any
from urllib.parse import quote

from aiohttp import web

from kubeflow_bridge.local.ui import pages

SESSION_COOKIE = "kubeflow-bridge-ui"
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


class WriteGuard:
    """Sessions and form tokens for the UI's writes.

    Args:
        token: The runtime's token; None when its auth is off (then no login is needed, but the
            same-origin and form-token checks still apply).
    """

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._key = secrets.token_bytes(32)
        self._sessions: set[str] = set()

    def session(self, request: web.Request) -> str | None:
        """The request's session id, when it is logged in (always "-" with auth off)."""
        if self.token is None:
            return "-"
        sid = request.cookies.get(SESSION_COOKIE)
        return sid if sid in self._sessions else None

    def login(self, given: str) -> str | None:
        """A new session for the right token, else None."""
        if self.token is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        sid = secrets.token_urlsafe(32)
        self._sessions.add(sid)
        return sid

    def form_token(self, session: str) -> str:
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()

    def check_origin(self, request: web.Request) -> None:
        """Refuse a request not sent by the UI's own page (another site's form, DNS rebinding)."""
        host = request.host or ""
        if not host.startswith(tuple(f"{name}:" for name in _LOOPBACK)) and host not in _LOOPBACK:
            raise web.HTTPForbidden(text=f"the UI takes writes on its loopback address only, not {host!r}")
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != host:
            raise web.HTTPForbidden(text=f"a form from {origin!r} cannot write here: use the UI's own page")

    async def check_form(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """(session, form fields) of a write, or a 403 saying why it is refused."""
        self.check_origin(request)
        session = self.session(request)
        if session is None:
            raise web.HTTPForbidden(text="log in first: open /_/login")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not hmac.compare_digest(form.pop("form_token", ""), self.form_token(session)):
            raise web.HTTPForbidden(
                text="the form is stale or not the UI's: reload the page and submit again"
            )
        return session, form


def _inputs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = spec.get("pipeline_spec", spec)
    return dict(((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {})


def _shown(value: Any, ptype: str) -> str:
    if ptype == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        value = int(value)  # KFP compiles an int default as a double (1.0)
    return value if isinstance(value, str) else json.dumps(value)


def clone_form(
    run: dict[str, Any], spec: dict[str, Any], form_token: str, values: dict[str, str] | None, error: str
) -> str:
    """The form: the run's name and each pipeline input, prefilled from the run (or what was sent)."""
    given = (run.get("runtime_config") or {}).get("parameters") or {}
    rows = []
    for name, definition in sorted(_inputs(spec).items()):
        ptype = str(definition.get("parameterType", "STRING"))
        if values is not None:
            current = values.get(f"param.{name}", "")
        elif name in given:
            current = _shown(given[name], ptype)
        else:
            current = _shown(definition["defaultValue"], ptype) if "defaultValue" in definition else ""
        rows.append(
            [
                f"<label for='p-{escape(name)}'>{escape(name)}</label>",
                escape(ptype.lower()),
                f"<input id='p-{escape(name)}' name='param.{escape(name)}' value='{escape(current)}' size='50'>",
            ]
        )
    title = (values or {}).get("display_name") or f"Clone of {run.get('display_name') or run['run_id']}"
    return (
        (f"<pre class='error'>{escape(error)}</pre>" if error else "")
        + f"<form method='post'><input type='hidden' name='form_token' value='{form_token}'>"
        f"<p><label>Run name <input name='display_name' value='{escape(title)}' size='60'></label></p>"
        + pages.table(["parameter", "type", "value"], rows)
        + "<button type='submit'>Start the run</button></form>"
        f"<p class='muted'>Same pipeline and experiment as <a href='/_/pipeline/runs/details/"
        f"{quote(run['run_id'])}'>{escape(run.get('display_name') or run['run_id'])}</a>.</p>"
    )


def clone_request(run: dict[str, Any], spec: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The KFP API's create-run body for a clone of ``run`` with the form's values.

    Raises:
        ValueError: what to fix (a missing name, a value of the wrong type), before anything is created.
    """
    from kubeflow_bridge.resources import kfp as kfp_resources
    from kubeflow_bridge.resources.errors import ValidationError

    name = form.get("display_name", "").strip()
    if not name:
        raise ValueError("give the run a name")
    inputs = _inputs(spec)
    given: dict[str, Any] = {}
    for param, definition in inputs.items():
        text = form.get(f"param.{param}")
        if text is None or (text == "" and definition.get("parameterType", "STRING") != "STRING"):
            continue  # left empty: the pipeline's default (a required one is named below)
        given[param] = text
    try:
        typed = kfp_resources.validate_parameters(spec, given)
    except ValidationError as exc:
        raise ValueError(str(exc)) from exc
    body: dict[str, Any] = {
        "display_name": name,
        "experiment_id": run.get("experiment_id") or "",
        "runtime_config": {
            "parameters": typed,
            "pipeline_root": (run.get("runtime_config") or {}).get("pipeline_root") or "",
        },
        "service_account": run.get("service_account") or "",
    }
    if run.get("pipeline_version_reference"):
        body["pipeline_version_reference"] = run["pipeline_version_reference"]
    else:
        body["pipeline_spec"] = spec
    return body


def login_form(next_path: str, error: str) -> str:
    return (
        (f"<pre class='error'>{escape(error)}</pre>" if error else "")
        + "<p>Starting runs from this UI needs the runtime's token: the <code>token</code> of the user in "
        "the kubeconfig that <code>kubeflow-bridge local up</code> wrote (its <code>token</code> file in "
        "the state folder holds the same).</p><form method='post'>"
        f"<input type='hidden' name='next' value='{escape(next_path)}'>"
        "<label>Token <input type='password' name='token' autocomplete='off' size='50'></label> "
        "<button type='submit'>Log in</button></form>"
    )


def safe_next(path: str) -> str:
    """Only the UI's own pages (no open redirect)."""
    return path if path.startswith("/_/") and "//" not in path and "\\" not in path else "/_/"
