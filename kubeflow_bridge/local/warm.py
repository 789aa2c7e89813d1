"""Warm starts: one pre-imported interpreter (a zygote, :mod:`kubeflow_bridge.local.zygote`) per environment.

A pod's container or a KFP component that runs ``python -m ...``, ``python -c ...`` or
``python script.py`` in an environment whose image rule names libraries to preload (the trainer image:
torch, pandas, pyarrow, Dask, boto3) is forked from that environment's zygote instead of starting a new
interpreter: the step pays for its own work, not seconds of imports. The process is otherwise what a
cold start gives: its own session and process group, its env (``os.environ``), working directory,
``sys.argv``, stdio on its log, exit code, fresh random state.

The first such process of an environment starts cold and starts the zygote beside it; later ones are
warm once it is ready. A zygote whose project sources (imported files outside installed packages, such as
``trainer/``) changed is retired and started again, so an edit takes effect as it would with cold starts. A request whose start-up env (:data:`START_UP_ENV`: what the interpreter or a
preloaded library reads once, at start or import) differs from the zygote's starts cold, as does any
other command line. ``KUBEFLOW_BRIDGE_WARM=0`` (or ``local up --no-warm``) turns warm starts off.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")
#: Read by the interpreter at start-up or by a preloaded library at import: a process whose value
#: differs from its zygote's would not get what it asked for, so it starts cold.
START_UP_ENV = (
    "PYTHONHASHSEED",
    "PYTHONHOME",
    "PYTHONOPTIMIZE",
    "PYTHONSAFEPATH",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONWARNINGS",
    "PYTHONFAULTHANDLER",
    "PYTHONTRACEMALLOC",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)
#: How long a zygote may take to import its libraries before it is given up.
READY_TIMEOUT = 120.0
#: Env var naming a ready zygote to a KFP run's executor: ``{"python": ..., "socket": ..., "env": {...}}``.
WARM_ENV = "KUBEFLOW_BRIDGE_WARM_ZYGOTE"


def enabled() -> bool:
    """Warm starts are on unless ``KUBEFLOW_BRIDGE_WARM`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get("KUBEFLOW_BRIDGE_WARM", "1").strip().lower() not in ("0", "false", "no", "off")


def warm_argv(argv: Sequence[str], python: str, path: str = "") -> list[str] | None:
    """``argv`` as a zygote of ``python`` runs it, or None when it must start cold.

    ``python -m MODULE``, ``python -c CODE`` and ``python SCRIPT`` as they are; a console script of
    ``python``'s environment (``torchrun``, found on ``path``, its ``#!`` line naming an interpreter
    of that environment's ``bin``) as ``python SCRIPT``, which is what its ``#!`` line runs. Interpreter
    options (``-u``, ``-X``...) and every other program start cold.
    """
    if not argv:
        return None
    if argv[0] != python:
        script = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0], path=path)
        if script is None or not _console_script_of(script, python):
            return None
        return [python, script, *argv[1:]]
    if len(argv) >= 3 and argv[1] in ("-m", "-c"):
        return list(argv)
    if len(argv) >= 2 and argv[1].endswith(".py") and not argv[1].startswith("-"):
        return list(argv)
    return None


def _console_script_of(script: str, python: str) -> bool:
    try:
        with open(script, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    interpreter = first[2:].strip().split(b" ")[0].decode(errors="replace")
    same_bin = os.path.dirname(interpreter) == os.path.dirname(python)
    return same_bin and os.path.basename(interpreter).startswith("python")


@dataclass(frozen=True)
class ZygoteInfo:
    """A ready zygote: its interpreter, socket and the start-up env it was started with.

    Attributes:
        python: The interpreter it runs (requests must name the same).
        socket: Its Unix socket.
        env: Its values of :data:`START_UP_ENV` (absent: unset).
    """

    python: str
    socket: str
    env: dict[str, str]

    def command(self, argv: Sequence[str], env: Mapping[str, str]) -> list[str] | None:
        """The command line to fork for ``argv`` with ``env`` (:func:`warm_argv`); None: start it cold."""
        if any(env.get(k) != self.env.get(k) for k in START_UP_ENV):
            return None
        return warm_argv(argv, self.python, env.get("PATH", ""))

    def to_env(self) -> str:
        return json.dumps({"python": self.python, "socket": self.socket, "env": self.env})

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ZygoteInfo | None:
        """The zygote :data:`WARM_ENV` names (None if none or malformed)."""
        try:
            doc = json.loads(environ[WARM_ENV])
            return cls(str(doc["python"]), str(doc["socket"]), dict(doc["env"]))
        except (KeyError, ValueError, TypeError):
            return None


def _request(
    info: ZygoteInfo,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    fds: list[int],
    parent: int | None = None,
) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    request = {"argv": list(argv), "env": dict(env), "cwd": cwd or os.getcwd(), "parent": parent}
    try:
        sock.connect(info.socket)
        payload = json.dumps(request).encode() + b"\n"
        socket.send_fds(sock, [payload[:65536]], fds)
        if len(payload) > 65536:
            sock.sendall(payload[65536:])
    except OSError:
        sock.close()
        raise
    return sock


def _exit_code(line: bytes, pid: int) -> int:
    """The ``exit N`` line's code; without one (the zygote was killed) wait until the process is gone and
    report it killed: its status went with the zygote."""
    if line.startswith(b"exit "):
        return int(line.split()[1])
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return -9
        except PermissionError:
            pass
        time.sleep(0.2)


def start_sync(
    info: ZygoteInfo,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: str | None,
    stdout: int,
    parent: int | None = None,
) -> SyncWarmProcess:
    """Fork ``argv`` from the zygote (stdin /dev/null, stdout and stderr to ``stdout``).

    ``parent``: a process the new one dies with (SIGTERM, SIGKILL 3 s later), as a child started in
    that process's group would when the group is killed.

    Raises:
        OSError: The zygote is gone or refused the request (start the process cold).
    """
    with open(os.devnull, "rb") as null:
        sock = _request(info, argv, env, cwd, [null.fileno(), stdout, stdout], parent)
    reader = sock.makefile("rb")
    line = reader.readline()
    if not line.startswith(b"pid "):
        sock.close()
        raise OSError(f"the zygote at {info.socket} did not start the process")
    return SyncWarmProcess(int(line.split()[1]), sock, reader)


@dataclass
class SyncWarmProcess:
    """A process forked by a zygote, waited for through the zygote's connection (blocking)."""

    pid: int
    sock: socket.socket
    reader: IO[bytes]

    def wait(self) -> int:
        line = self.reader.readline()
        self.sock.close()
        return _exit_code(line, self.pid)


@dataclass
class WarmProcess:
    """A process forked by a zygote (asyncio): ``pid`` and ``wait()`` as ``asyncio.subprocess.Process``."""

    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    returncode: int | None = None
    _exit: asyncio.Task[int] | None = None

    async def wait(self) -> int:
        """The exit code; any number of callers may wait (one read of the zygote's answer)."""
        if self._exit is None:
            self._exit = asyncio.get_running_loop().create_task(self._read_exit())
        return await asyncio.shield(self._exit)

    async def _read_exit(self) -> int:
        line = await self.reader.readline()
        self.writer.close()
        self.returncode = (
            _exit_code(line, self.pid) if line else await asyncio.to_thread(_exit_code, line, self.pid)
        )
        return self.returncode


@dataclass
class _Zygote:
    info: ZygoteInfo
    proc: asyncio.subprocess.Process
    started: float = field(default_factory=time.time)
    ready: bool = False
    sources: list[str] = field(default_factory=list)  # project files it imported (edits retire it)

    def stale(self) -> bool:
        """A source it imported changed since it started (a cold process would run the new code)."""
        for path in self.sources:
            try:
                if os.stat(path).st_mtime >= self.started:
                    return True
            except OSError:
                return True
        return False


@dataclass
class WarmPool:
    """The runtime's zygotes, one per (interpreter, preload list), started on first use.

    Args:
        folder: Where the sockets and the zygotes' logs live.
        base_env: The env a zygote starts with (the runtime's base env for processes; never a pod's).
    """

    folder: Path
    base_env: dict[str, str]
    zygotes: dict[tuple[str, tuple[str, ...]], _Zygote | None] = field(default_factory=dict)
    retired: list[_Zygote] = field(default_factory=list)  # stale, ending once their children have

    def ready(self, python: str, preload: Sequence[str]) -> ZygoteInfo | None:
        """The zygote for ``python`` + ``preload`` if it is ready; else start it (once) and return None."""
        key = (python, tuple(preload))
        if key not in self.zygotes:
            self.zygotes[key] = None  # starting
            asyncio.get_running_loop().create_task(self._start(key))
            return None
        zygote = self.zygotes[key]
        if zygote is None or not zygote.ready or zygote.proc.returncode is not None:
            return None
        if zygote.stale():
            zygote.proc.terminate()  # retire: it ends after its children; the next call starts a new one
            self.retired.append(zygote)
            del self.zygotes[key]
            return None
        return zygote.info

    async def _start(self, key: tuple[str, tuple[str, ...]]) -> None:
        python, preload = key
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]
        sock = self.folder / f"{name}.sock"
        env = {**self.base_env, "PATH": str(Path(python).parent) + os.pathsep + self.base_env.get("PATH", "")}
        info = ZygoteInfo(python, str(sock), {k: env[k] for k in START_UP_ENV if k in env})
        with open(self.folder / f"{name}.log", "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                python,
                str(ZYGOTE_SCRIPT),
                str(sock),
                ",".join(preload),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        zygote = self.zygotes[key] = _Zygote(info, proc)
        assert proc.stdout is not None
        with contextlib.suppress(TimeoutError, ValueError):
            word, _, sources = (await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT)).partition(b" ")
            zygote.sources = [str(path) for path in json.loads(sources or b"[]")]
            zygote.ready = word.strip() == b"ready"
        if not zygote.ready:
            print(f"warm start: the zygote for {python} did not start (see {log.name})", file=sys.stderr)

    async def spawn(
        self, info: ZygoteInfo, argv: Sequence[str], env: Mapping[str, str], *, cwd: str | None, stdout: int
    ) -> WarmProcess:
        """Fork ``argv`` from the zygote (stdin /dev/null, stdout and stderr to ``stdout``).

        Raises:
            OSError: The zygote is gone or refused the request (start the process cold).
        """
        with open(os.devnull, "rb") as null:
            sock = _request(info, argv, env, cwd, [null.fileno(), stdout, stdout])
        sock.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        line = await reader.readline()
        if not line.startswith(b"pid "):
            writer.close()
            raise OSError(f"the zygote at {info.socket} did not start the process")
        return WarmProcess(int(line.split()[1]), reader, writer)

    async def stop(self, grace: float = 5.0) -> None:
        """Retire the zygotes and wait for them (the runtime stops their children first); kill one that
        is still there after ``grace`` seconds."""
        zygotes = [z for z in (*self.zygotes.values(), *self.retired) if z is not None]
        for zygote in zygotes:
            if zygote.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    zygote.proc.terminate()
        for zygote in zygotes:
            try:
                await asyncio.wait_for(zygote.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    zygote.proc.kill()
                await zygote.proc.wait()
        self.zygotes.clear()
        self.retired.clear()
