"""The runtime's ports, kept per state folder so connections written once stay valid across down/up.

``<state>/ports.json`` remembers the ports of the last run (API, KFP, S3). ``local up`` asks for them again;
when one is taken by another process the runtime moves that endpoint to a free port and says which
process holds the old one (and that the env file must be sourced again). A port given on the command line
is a promise: if it is taken, ``up`` fails and names the holder.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

#: The endpoints whose ports are kept.
ENDPOINTS = ("api", "kfp", "s3", "mlflow")


class PortTaken(OSError):
    """A port asked for on the command line is in use; the message names the process holding it."""


@dataclass(frozen=True)
class Moved:
    """A remembered port that was taken, and where the endpoint went instead."""

    endpoint: str
    old: int
    new: int
    holder: str

    def __str__(self) -> str:
        return f"the {self.endpoint} port {self.old} is taken by {self.holder}; it moved to {self.new}"


def remembered(path: Path) -> dict[str, int]:
    """The ports of the last run (empty when none was recorded or the file is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {k: int(v) for k, v in data.items() if k in ENDPOINTS and isinstance(v, int) and 0 < v < 65536}


def remember(path: Path, ports: dict[str, int]) -> None:
    """Record the ports in use (atomically; the file outlives ``local down``)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v for k, v in ports.items() if v}, indent=2))
    os.replace(tmp, path)


def holder(port: int) -> str:
    """Who listens on 127.0.0.1:``port``: ``pid N (command)``, or ``another process`` if it cannot tell."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                command = " ".join(proc.cmdline())[:120] or proc.name()
                return f"pid {conn.pid} ({command})"
    except Exception:  # psutil missing or not allowed to look: still say that the port is taken
        pass
    return "another process"


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def claim(endpoint: str, asked: int, kept: int | None) -> tuple[socket.socket, Moved | None]:
    """Bind ``endpoint``'s port: the one ``asked`` on the command line (must be free), else the ``kept``
    one from the last run (moves to a free port when taken), else a free one.

    Raises:
        PortTaken: ``asked`` is in use.
    """
    wanted = asked or kept or 0
    try:
        return bind(wanted), None
    except OSError as err:
        if err.errno != errno.EADDRINUSE or not wanted:
            raise
        who = holder(wanted)
        if asked:
            raise PortTaken(
                f"port {asked} for the {endpoint} is taken by {who}: stop it, or pass another port "
                f"(--{endpoint}-port 0 picks a free one)",
            ) from None
    sock = bind(0)
    return sock, Moved(endpoint, wanted, sock.getsockname()[1], who)


def is_free(port: int) -> bool:
    try:
        bind(port).close()
    except OSError:
        return False
    return True
