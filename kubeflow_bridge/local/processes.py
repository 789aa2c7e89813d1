"""Local processes (pods' containers, model servers, pipeline runs), each in its own process group.

Every process is recorded as ``<state>/procs/<pid>`` while it runs, so ``local down`` can kill
whatever is left even if the daemon died without cleaning up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kubeflow_bridge.local.warm import WarmPool


class Process(Protocol):
    """What a started process offers: an ``asyncio.subprocess.Process`` or a zygote's ``WarmProcess``."""

    @property
    def pid(self) -> int: ...

    async def wait(self) -> int: ...


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound, read and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(pgid: int, sig: int = signal.SIGTERM) -> bool:
    """Signal a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@dataclass(eq=False)
class ManagedProcess:
    """A started process (leader of its own process group)."""

    name: str
    proc: Process
    log_path: Path | None
    pid_file: Path | None
    returncode: int | None = None
    killed_by: str = ""
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    async def wait(self) -> int:
        """Wait for the process to exit; the exit code (negative: killed by that signal)."""
        if self.returncode is None:
            self.returncode = await self.proc.wait()
            # Children left in the group (e.g. DDP workers) go with the leader.
            kill_group(self.pid, signal.SIGKILL)
            if self.pid_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.pid_file.unlink()
            self._done.set()
        return self.returncode

    async def terminate(self, grace: float = 3.0, reason: str = "Killed") -> None:
        """SIGTERM the whole group, SIGKILL after ``grace`` seconds."""
        if self.returncode is not None:
            return
        self.killed_by = reason
        kill_group(self.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
        except TimeoutError:
            kill_group(self.pid, signal.SIGKILL)
        await self.wait()


class ProcessManager:
    """Starts and tracks processes for the controllers.

    Args:
        procs_dir: Folder for one pid file per running process (``local down`` sweeps it).
        warm: The zygotes that start ``python`` processes of preloading environments warm (None: all cold).
    """

    def __init__(self, procs_dir: Path, warm: WarmPool | None = None) -> None:
        self.procs_dir = procs_dir
        procs_dir.mkdir(parents=True, exist_ok=True)
        self.running: dict[int, ManagedProcess] = {}
        self.warm = warm

    async def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        log_path: Path | None = None,
        python: str = "",
        preload: Sequence[str] = (),
    ) -> ManagedProcess:
        """Start ``argv`` in a new session (its own process group) with stdout+stderr to ``log_path``.

        ``python`` and ``preload``: the interpreter of the environment ``argv`` runs in and the libraries
        worth a zygote of it (:mod:`kubeflow_bridge.local.warm`); the process is forked from that
        zygote when it is ready and can run ``argv``.

        Raises:
            OSError: The executable cannot be started (not found, not executable).
        """
        target = log_path if log_path is not None else Path(os.devnull)
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "ab", buffering=0)  # noqa: SIM115 - handed to the child
        try:
            proc = await self._start(argv, env, cwd, out.fileno(), python, preload)
        finally:
            out.close()
        pid_file = self.procs_dir / str(proc.pid)
        pid_file.write_text(name)
        mp = ManagedProcess(name=name, proc=proc, log_path=log_path, pid_file=pid_file)
        self.running[proc.pid] = mp
        asyncio.get_running_loop().create_task(self._reap(mp))
        if log_path is not None:
            asyncio.get_running_loop().create_task(_index_log_times(mp, log_path))
        return mp

    async def _start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        out: int,
        python: str,
        preload: Sequence[str],
    ) -> Process:
        if self.warm is not None and python and preload:
            zygote = self.warm.ready(python, preload)
            command = zygote.command(argv, env) if zygote is not None else None
            if zygote is not None and command is not None:
                with contextlib.suppress(OSError):  # the zygote went away: start cold
                    return await self.warm.spawn(zygote, command, env, cwd=cwd, stdout=out)
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )

    async def _reap(self, mp: ManagedProcess) -> None:
        await mp.wait()
        self.running.pop(mp.pid, None)

    async def stop_all(self, grace: float = 3.0) -> None:
        """Terminate every running process group (daemon shutdown)."""
        await asyncio.gather(*(mp.terminate(grace, "Shutdown") for mp in list(self.running.values())))
        if self.warm is not None:
            await self.warm.stop()


LOG_TIME_INTERVAL = 0.2


def times_path(log_path: Path) -> Path:
    """``<log>.times``: lines of "<size> <unix time>" recorded as the log grew (logs --timestamps/--since)."""
    return log_path.with_name(log_path.name + ".times")


async def _index_log_times(mp: ManagedProcess, log_path: Path) -> None:
    """Notes when the log grew, every LOG_TIME_INTERVAL s while the process runs (the kubelet stamps lines)."""
    import time

    index = times_path(log_path)
    seen = log_path.stat().st_size if log_path.exists() else 0
    while True:
        done = mp.returncode is not None
        with contextlib.suppress(OSError):
            size = log_path.stat().st_size
            if size > seen:
                with index.open("a") as fh:
                    fh.write(f"{size} {time.time():.6f}\n")
                seen = size
        if done:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(mp._done.wait()), LOG_TIME_INTERVAL)


def sweep_pid_files(procs_dir: Path) -> list[int]:
    """Kill every process group recorded in ``procs_dir`` (what ``local down`` does last)."""
    killed: list[int] = []
    if not procs_dir.is_dir():
        return killed
    for f in procs_dir.iterdir():
        if f.name.isdigit():
            pgid = int(f.name)
            if kill_group(pgid, signal.SIGKILL):
                killed.append(pgid)
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
    return killed


MARKER = "KUBEFLOW_BRIDGE_LOCAL_RUNTIME"


def sweep_marked(state_root: Path) -> list[int]:
    """Kill every process whose environment carries ``KUBEFLOW_BRIDGE_LOCAL_RUNTIME=<state_root>``.

    The runtime puts that variable into the env of everything it starts (pods, pipeline runs), and
    never into ``<state>/env``, so a user's shell that sourced the env file is not touched. This is
    ``local down``'s last sweep after a daemon that died without cleaning up.
    """
    needle = f"{MARKER}={state_root}".encode() + b"\0"
    me, my_group = os.getpid(), os.getpgrp()
    killed: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return killed
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            environ = (d / "environ").read_bytes()
        except OSError:
            continue
        if needle not in environ + b"\0":
            continue
        pid = int(d.name)
        try:
            pgid = os.getpgid(pid)
            if pgid != my_group:
                os.killpg(pgid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return killed
