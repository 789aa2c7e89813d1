"""Fault injection for tests of the clients against an unreliable API server.

Configured at start (``--faults '{"error_rate": 0.1}'``) or live: ``POST /_admin/faults`` with a JSON
body of the fields to change (``GET`` shows the current settings, ``DELETE`` resets them).
"""

from __future__ import annotations

import random
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class FaultConfig:
    """What to break.

    Args:
        error_rate: Fraction of API requests answered 500 or 503 (alternating at random).
        throttle_rate: Fraction answered 429 TooManyRequests with ``Retry-After: retry_after``.
        retry_after: Seconds in the Retry-After header.
        drop_rate: Fraction of requests whose connection is closed without an answer (not applied).
        lose_rate: Fraction of requests applied whose answer is lost (the connection closes after the
            request took effect): what makes a client's retried create a duplicate.
        path_pattern: Only requests whose path matches this regex are affected ("" = every API path).
        methods: Only these HTTP methods are affected (empty = all).
        watch_cut_after: Seconds after which every watch stream is cut mid-stream (0 = never).
        watch_gone: Number of upcoming watch requests answered with a 410 Gone ERROR event.
        auth: Require ``Authorization: Bearer <token>`` on API requests.
        static_token: A token that never expires (when ``auth`` is on).
        token_ttl: Lifetime in seconds of tokens minted by ``POST /_admin/tokens``.
        seed: Random seed (None: not reproducible).
    """

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after: int = 1
    drop_rate: float = 0.0
    lose_rate: float = 0.0
    path_pattern: str = ""
    methods: list[str] = field(default_factory=list)
    watch_cut_after: float = 0.0
    watch_gone: int = 0
    auth: bool = False
    static_token: str = ""
    token_ttl: float = 3600.0
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        cfg = cls()
        cfg.update(data)
        return cfg

    def update(self, data: dict[str, Any]) -> None:
        """Change the named fields; raises ValueError naming unknown ones."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings {unknown}; known: {sorted(known)}")
        problems = [p for k, v in data.items() if (p := _setting_problem(k, v))]
        if problems:
            raise ValueError("; ".join(problems))  # nothing changes unless every setting is valid
        for k, v in data.items():
            setattr(self, k, v)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["static_token"]:
            d["static_token"] = "***"
        return d


def _setting_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the fault setting ``name``, or None."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name.endswith("_rate"):
        if not number or not 0.0 <= value <= 1.0:
            return f"{name} must be a fraction between 0 and 1, not {value!r}"
    elif name in ("retry_after", "watch_gone", "watch_cut_after", "token_ttl"):
        if not number or value < 0 or value != value or value == float("inf"):
            return f"{name} must be a number >= 0, not {value!r}"
    elif name == "auth":
        if not isinstance(value, bool):
            return f"auth must be true or false, not {value!r}"
    elif name in ("path_pattern", "static_token"):
        if not isinstance(value, str):
            return f"{name} must be a string, not {value!r}"
        if name == "path_pattern":
            try:
                re.compile(value)
            except re.error as err:
                return f"path_pattern is not a regular expression: {err}"
    elif name == "methods":
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            return f"methods must be a list of HTTP methods, not {value!r}"
    elif name == "seed" and value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        return f"seed must be an integer or null, not {value!r}"
    return None


class Faults:
    """Decides, per request, which fault (if any) to inject; holds the minted tokens."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self._initial = asdict(self.config)  # what a reset returns to (auth stays as started)
        self._rng = random.Random(self.config.seed)
        self._tokens: dict[str, float] = {}
        self.injected: dict[str, int] = {
            "error": 0,
            "throttle": 0,
            "drop": 0,
            "lose": 0,
            "watch_gone": 0,
            "watch_cut": 0,
        }

    def reconfigure(self, data: dict[str, Any]) -> None:
        self.config.update(data)
        if "seed" in data:
            self._rng = random.Random(self.config.seed)

    def reset(self) -> None:
        """Back to the settings the runtime started with (no faults; auth as at start)."""
        self.config = FaultConfig(**self._initial)
        self._tokens.clear()

    def _applies(self, method: str, path: str) -> bool:
        c = self.config
        if c.methods and method.upper() not in [m.upper() for m in c.methods]:
            return False
        return not (c.path_pattern and not re.search(c.path_pattern, path))

    def pick(self, method: str, path: str) -> str | None:
        """``"drop"``, ``"lose"``, ``"throttle"``, ``"error500"``, ``"error503"`` or None."""
        c = self.config
        rates = c.error_rate or c.throttle_rate or c.drop_rate or c.lose_rate
        if not rates or not self._applies(method, path):
            return None
        r = self._rng.random()
        for fault, rate in (("drop", c.drop_rate), ("lose", c.lose_rate)):
            if r < rate:
                self.injected[fault] += 1
                return fault
            r -= rate
        if r < c.throttle_rate:
            self.injected["throttle"] += 1
            return "throttle"
        r -= c.throttle_rate
        if r < c.error_rate:
            self.injected["error"] += 1
            return "error503" if self._rng.random() < 0.5 else "error500"
        return None

    def take_watch_gone(self) -> bool:
        if self.config.watch_gone > 0:
            self.config.watch_gone -= 1
            self.injected["watch_gone"] += 1
            return True
        return False

    # --- tokens -------------------------------------------------------------------------------
    def mint_token(self, ttl: float | None = None) -> tuple[str, float]:
        token = secrets.token_urlsafe(24)
        expires = time.time() + (self.config.token_ttl if ttl is None else ttl)
        self._tokens[token] = expires
        return token, expires

    def check_admin(self, header: str | None) -> str | None:
        """None if an ``/_admin`` request may pass: auth is off, or it carries the static token."""
        if not self.config.auth:
            return None
        token = header[len("Bearer ") :].strip() if header and header.startswith("Bearer ") else ""
        if self.config.static_token and token and secrets.compare_digest(token, self.config.static_token):
            return None
        return "no token" if not token else "not the static token"

    def check_auth(self, header: str | None) -> str | None:
        """None if the request may pass, else why it is unauthorized."""
        if not self.config.auth:
            return None
        if not header or not header.startswith("Bearer "):
            return "no bearer token: send Authorization: Bearer <token>"
        token = header[len("Bearer ") :].strip()
        if self.config.static_token and secrets.compare_digest(token, self.config.static_token):
            return None
        expires = self._tokens.get(token)
        if expires is None:
            return "unknown token"
        if expires < time.time():
            return "token has expired"
        return None
