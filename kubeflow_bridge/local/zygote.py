"""A warm interpreter: imports an environment's heavy libraries once, then forks a process per request.

Run by path with the environment's own interpreter (it imports only the standard library, so any
Python environment can run it)::

    <venv>/bin/python zygote.py SOCKET MODULE[,MODULE...]

It imports the modules, listens on the Unix socket ``SOCKET`` and prints ``ready`` on stdout, with the
JSON list of the imported source files that are not installed packages (the client watches them). Each
connection asks for one process: a JSON line ``{"argv": [...], "env": {...}, "cwd": "..."}`` sent with
three file descriptors (stdin, stdout, stderr). The zygote forks; the child starts a session of its
own (its own process group, as the runtime's other processes), takes the descriptors, the env, the
working directory and ``sys.argv``, and runs ``python -m MODULE``, ``python -c CODE`` or
``python SCRIPT`` as the interpreter would, exiting as it would. The zygote answers ``pid N`` at once and
``exit CODE`` when the child ends (CODE as ``Popen.returncode``: negative for a signal). SIGTERM
retires it: it takes no more requests and exits when its last child has.
:mod:`kubeflow_bridge.local.warm` is the client and decides which requests may come here.
"""

from __future__ import annotations

import sys

# Run by path, Python put this file's folder first on sys.path: its package names (``kfp``) would
# shadow the environment's.
del sys.path[0]

import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import types  # noqa: E402
from typing import Any  # noqa: E402

MAX_REQUEST = 8 << 20


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(65536)
        if not more or len(data) > MAX_REQUEST:
            break
        data += more
    return json.loads(data), list(fds)


def _serve(listener: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Fork a child per request; returns only in a child (its request and descriptors)."""
    # a process started from a thread that blocks signals inherits its mask: SIGCHLD must come through
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # SIGTERM retires: no more requests; the zygote ends once its children have, so each exit
    # code still reaches whoever waits for it
    retiring: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: retiring.append(True))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    while True:
        if retiring:
            if listener.fileno() >= 0:
                selector.unregister(listener)
                listener.close()
            if not children:
                raise SystemExit(0)
        for key, _ in selector.select():
            if key.fileobj is listener:
                conn, _addr = listener.accept()
                try:
                    request, fds = _read_request(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    selector.close()
                    for fd in (wake_r, wake_w, conn.fileno()):
                        os.close(fd)
                    listener.close()
                    for other in children.values():
                        other.close()
                    return request, fds
                for fd in fds:
                    os.close(fd)
                try:
                    conn.sendall(b"pid %d\n" % pid)
                except OSError:
                    pass
                children[pid] = conn
            else:
                while True:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        break
                while children:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    done = children.pop(pid, None)
                    if done is not None:
                        try:
                            done.sendall(b"exit %d\n" % os.waitstatus_to_exitcode(status))
                        except OSError:
                            pass
                        done.close()


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """In the child: take the request's session, descriptors, env, working directory and argv."""
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    env: dict[str, str] = request["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request.get("cwd") or os.getcwd())
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    encoding = sys.stdout.encoding if sys.stdout is not None else "utf-8"
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding)
    sys.__stdin__ = sys.stdin  # type: ignore[misc]
    for fd, name in ((1, "stdout"), (2, "stderr")):
        # as the interpreter makes them: unbuffered with PYTHONUNBUFFERED, else stdout block-buffered
        # and stderr line-buffered
        errors = "backslashreplace" if name == "stderr" else "strict"
        raw = io.FileIO(fd, "w", closefd=False)
        text: io.TextIOWrapper
        if unbuffered:
            text = io.TextIOWrapper(raw, encoding=encoding, errors=errors, write_through=True)  # type: ignore[arg-type]
        else:
            text = io.TextIOWrapper(
                io.BufferedWriter(raw), encoding=encoding, errors=errors, line_buffering=name == "stderr"
            )
        setattr(sys, name, text)
        setattr(sys, f"__{name}__", text)
    _fresh_random_state()
    if request.get("parent"):
        _die_with(int(request["parent"]))


def _die_with(parent: int) -> None:
    """End this process group when ``parent`` ends (SIGTERM, then SIGKILL after 3 s)."""
    import threading
    import time

    def watch() -> None:
        try:
            fd = os.pidfd_open(parent)
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                sel.select()
        except OSError:  # no pidfd here (or the parent is gone already): poll
            while True:
                try:
                    os.kill(parent, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
        os.killpg(0, signal.SIGTERM)
        time.sleep(3)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _fresh_random_state() -> None:
    """Forked children would share the zygote's global RNG state; a new process would not."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()


def _run(argv: list[str]) -> None:
    """Run ``argv[1:]`` (``-m MODULE ...``, ``-c CODE ...`` or ``SCRIPT ...``) as ``python`` would."""
    import runpy

    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    extra_path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    option, rest = argv[1], argv[2:]
    if option == "-m":
        sys.path[0:0] = [os.getcwd(), *extra_path]
        sys.argv = ["-m", *rest[1:]]
        runpy._run_module_as_main(rest[0], alter_argv=True)  # type: ignore[attr-defined]  # what -m runs
    elif option == "-c":
        sys.path[0:0] = ["", *extra_path]
        sys.argv = ["-c", *rest[1:]]
        exec(compile(rest[0], "<string>", "exec"), main.__dict__)
    else:
        script = os.path.abspath(option)
        sys.path[0:0] = [os.path.dirname(os.path.realpath(script)), *extra_path]
        sys.argv = [option, *rest]
        main.__dict__["__file__"] = script
        with open(script, "rb") as source:
            code = compile(source.read(), script, "exec")
        exec(code, main.__dict__)


def _exit_code(exc: SystemExit) -> int:
    """The exit status ``raise SystemExit(code)`` gives an interpreter (printing a non-int code)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _finish(code: int) -> None:
    """End as the interpreter ends (threads joined, atexit handlers run, stdio flushed), without tearing
    down every preloaded module one by one (a big heap takes a visible while; the OS frees it at once)."""
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_Finalize calls first
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def main() -> None:
    sock_path, preload = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    for name in filter(None, preload.split(",")):
        try:
            importlib.import_module(name)
        except Exception as exc:  # a library missing here only means its importers pay for it
            print(f"zygote: could not preload {name}: {exc}", file=sys.stderr, flush=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    listener.bind(sock_path)
    listener.listen(64)
    # the sources outside the interpreter's own and its environment's packages (a project's editable
    # install, e.g. trainer/): the client retires this zygote when one changes, so edits take effect
    installed = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})
    own = sorted(
        {
            path
            for module in list(sys.modules.values())
            if isinstance(path := getattr(module, "__file__", None), str)
            and os.path.isabs(path)  # (torch's _ops and _classes name bare file names)
            and not path.startswith(installed)
            and os.path.exists(path)
        }
    )
    print("ready " + json.dumps(own), flush=True)
    request, fds = _serve(listener)
    _become(request, fds)
    code = 1
    try:
        _run(list(request["argv"]))
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:  # as the interpreter reports it: the traceback without this file's frames
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        if isinstance(exc, KeyboardInterrupt):  # the interpreter ends by SIGINT then
            sys.stdout.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        _finish(code)


if __name__ == "__main__":
    main()
