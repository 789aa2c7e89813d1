"""Authentication for the KFP REST API: none, bearer token, ServiceAccount token file, Dex login.

Secrets never reach logs or reprs: ``KfpAuth`` hides its token and password, and nothing here logs
headers or cookies.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Where Kubeflow mounts the projected ServiceAccount token for the pipelines audience.
DEFAULT_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
#: Session cookies of oauth2-proxy (Kubeflow >= 1.8) and of the older oidc-authservice.
SESSION_COOKIES = ("oauth2_proxy_kubeflow", "authservice_session")
AUTH_MODES = ("none", "token", "sa_token_file", "dex")
_LOGIN_PATH = re.compile(r"/(dex/auth|oauth2/start|oauth2/sign_in|auth/login|login)")


class KfpAuthError(RuntimeError):
    """Credentials were rejected or the login flow did not yield a session."""


@dataclass
class KfpAuth:
    """How to authenticate to the KFP API.

    Args:
        mode: ``none`` (no credentials, like ``kfp.Client(host=...)``), ``token`` (bearer ``token``),
            ``sa_token_file`` (read ``token_path``, default ``$KF_PIPELINES_SA_TOKEN_PATH`` or
            /var/run/secrets/kubeflow/pipelines/token, re-read when it changes or on 401), or ``dex``
            (log in through oauth2-proxy/Dex with ``username``/``password`` and keep the session cookie).
    """

    mode: str = "none"
    token: str | None = field(default=None, repr=False)
    token_path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in AUTH_MODES:
            raise ValueError(f"KfpAuth.mode must be one of {', '.join(AUTH_MODES)}, not {self.mode!r}")
        if self.mode == "token" and not self.token:
            raise ValueError("KfpAuth(mode='token') needs token=...")
        if self.mode == "dex" and not (self.username and self.password):
            raise ValueError("KfpAuth(mode='dex') needs username=... and password=...")
        if self.mode == "sa_token_file" and not self.token_path:
            self.token_path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", DEFAULT_SA_TOKEN_PATH)


def default_auth() -> KfpAuth:
    """What a client given no credentials uses, as ``kfp.Client`` does: the pipelines ServiceAccount
    token file named by ``$KF_PIPELINES_SA_TOKEN_PATH`` when it exists (in a Kubeflow pod, or after
    ``source .state/local/env``), else no credentials."""
    path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH")
    if path and os.path.isfile(path):
        return KfpAuth(mode="sa_token_file", token_path=path)
    return KfpAuth()


class TokenFile:
    """A token file re-read whenever its mtime (or size) changes, as kubelet rotates projected tokens."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def __repr__(self) -> str:
        return f"TokenFile(path={self.path!r})"

    def token(self, *, force: bool = False) -> str:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise KfpAuthError(
                f"cannot read the KFP ServiceAccount token file {self.path}: {exc.strerror}; mount a projected token "
                "with audience pipelines.kubeflow.org or set KF_PIPELINES_SA_TOKEN_PATH"
            ) from exc
        stamp = (st.st_mtime_ns, st.st_size)
        if force or stamp != self._stamp:
            with open(self.path, encoding="utf-8") as handle:
                self._token = handle.read().strip()
            self._stamp = stamp
        return self._token


def is_login_redirect(status: int, location: str | None) -> bool:
    """True when a response redirects to a login page (an expired or missing session)."""
    return (
        status in (301, 302, 303, 307, 308)
        and bool(location)
        and bool(_LOGIN_PATH.search(urlsplit(location or "").path))
    )


def local_connector_url(url: str) -> str | None:
    """Dex's connector chooser (``.../dex/auth``) -> the static-password connector (``.../dex/auth/local``)."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/dex/auth"):
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/local"))
    return None


def login_form_action(url: str, html: str) -> str:
    """Where Dex's login form posts to (the form's action, else the page's own URL)."""
    match = re.search(r'<form[^>]*action="([^"]+)"', html)
    if not match:
        return url
    action = match.group(1).replace("&amp;", "&")
    parts = urlsplit(url)
    if action.startswith("/"):
        return urlunsplit((parts.scheme, parts.netloc, *urlsplit(action)[2:]))
    return action if "://" in action else url


def session_cookie(cookies: Any) -> str | None:
    """The name of the session cookie present in an httpx cookie jar, if any."""
    for name in SESSION_COOKIES:
        if cookies.get(name):
            return name
    return None
