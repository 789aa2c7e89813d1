"""``kubeflow-bridge local up|down|status|logs``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kubeflow_bridge.local.paths import StatePaths, confined, default_state_dir


def add_parser(sub: Any) -> None:
    """Register ``local`` and its subcommands on the top-level CLI's subparsers."""
    local = sub.add_parser("local", help="the local Kubeflow runtime (API server, controllers, S3)")
    lsub = local.add_subparsers(dest="local_command", required=True)

    def state(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--state-dir",
            type=Path,
            default=None,
            help="state folder (default: $KUBEFLOW_BRIDGE_HOME/.state/local)",
        )

    up = lsub.add_parser("up", help="start the runtime in the background")
    state(up)
    up.add_argument(
        "--api-port", type=int, default=0, help="API server port (default: the last run's, else free)"
    )
    up.add_argument("--s3-port", type=int, default=0, help="S3 port (default: the last run's, else free)")
    up.add_argument(
        "--kfp-port", type=int, default=0, help="KFP API port (default: the last run's, else free)"
    )
    up.add_argument("--no-s3", action="store_true", help="run without the S3 server")
    up.add_argument(
        "--no-mlflow",
        action="store_true",
        help="run without the MLflow tracking server (default: one, with its URI in the env file)",
    )
    up.add_argument(
        "--mlflow-port", type=int, default=0, help="MLflow port (default: the last run's, else free)"
    )
    up.add_argument(
        "--kfp-multi-user",
        action="store_true",
        help="KFP in Kubeflow's multi-user mode: experiments and runs in namespaces (kfp.Client(namespace=...))",
    )
    up.add_argument(
        "--no-auth",
        action="store_true",
        help="serve both APIs without a token, over plain HTTP (default: a token, in the kubeconfig and "
        "<state>/token, and HTTPS for the Kubernetes API)",
    )
    up.add_argument(
        "--no-warm",
        action="store_true",
        help="start every pod and KFP component cold (default: the trainer image's are forked from a "
        "pre-imported interpreter once it is ready; also KUBEFLOW_BRIDGE_WARM=0)",
    )
    up.add_argument(
        "--faults", default="{}", help="fault-injection settings as JSON, e.g. '{\"error_rate\": 0.1}'"
    )
    up.add_argument("--foreground", action="store_true", help="run in this process until Ctrl-C")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait until healthy")
    down = lsub.add_parser("down", help="stop the runtime and every process it started")
    state(down)
    st = lsub.add_parser("status", help="what runs where")
    state(st)
    st.add_argument("--json", action="store_true")
    logs = lsub.add_parser("logs", help="the runtime's log, or a pod's log")
    state(logs)
    logs.add_argument("pod", nargs="?", help="pod name (default: the runtime's own log)")
    logs.add_argument("-n", "--namespace", default="default")
    logs.add_argument("-c", "--container", default=None)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int, default=None)
    local.set_defaults(func=run)


def _paths(args: argparse.Namespace) -> StatePaths:
    return StatePaths((args.state_dir or default_state_dir()).resolve())


def _pid(paths: StatePaths) -> int | None:
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _info(paths: StatePaths) -> dict[str, Any] | None:
    try:
        return dict(json.loads(paths.info_file.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _healthy(api: str, paths: StatePaths | None = None) -> bool:
    context = None
    if api.startswith("https:") and paths is not None:
        import ssl

        context = ssl.create_default_context(cafile=str(paths.root / "tls" / "ca.crt"))
    try:
        with urllib.request.urlopen(f"{api}/healthz", timeout=2, context=context) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _print_endpoints(info: dict[str, Any]) -> None:
    print(f"kubeflow-bridge local runtime (pid {info['pid']})")
    print(f"  Kubernetes API : {info['api']}")
    print(f"  KFP API        : {info.get('kfp') or 'not running'}")
    print(f"  S3             : {info.get('s3') or 'not running'}")
    print(f"  MLflow         : {info.get('mlflow') or 'not running'}")
    print(f"  kubeconfig     : {info['kubeconfig']}")
    print(f"  env            : source {info['env']}")
    print(f"  state          : {info['state_dir']}")


def runtime_python() -> str:
    """The runtime runs in the trainer environment (boto3, kfp, kserve, optuna live there), whichever
    environment ``kubeflow-bridge`` was started from; the current interpreter if that env is missing."""
    from kubeflow_bridge.local.images import trainer_python

    return trainer_python()


def daemon_argv(paths: StatePaths, args: argparse.Namespace) -> list[str]:
    argv = [runtime_python(), "-m", "kubeflow_bridge.local.daemon", "--state-dir", str(paths.root)]
    argv += [
        "--api-port",
        str(args.api_port),
        "--s3-port",
        str(args.s3_port),
        "--kfp-port",
        str(args.kfp_port),
    ]
    if args.faults.strip() not in ("", "{}"):
        # Through a private file: settings may hold a token, and command lines are visible to all users.
        faults_file = paths.root / "faults.json"
        fd = os.open(faults_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(args.faults)
        argv += ["--faults-file", str(faults_file)]
    if args.no_s3:
        argv.append("--no-s3")
    if not getattr(args, "no_mlflow", True):
        argv += ["--mlflow", "--mlflow-port", str(getattr(args, "mlflow_port", 0))]
    if getattr(args, "kfp_multi_user", False):
        argv.append("--kfp-multi-user")
    if getattr(args, "no_auth", False):
        argv.append("--no-auth")
    # `local up` is for running steps: their zygote starts with the runtime (tests' runtimes start it lazily)
    argv.append("--no-warm" if getattr(args, "no_warm", False) else "--prewarm")
    return argv


def up(args: argparse.Namespace) -> int:
    paths = _paths(args)
    paths.root.mkdir(parents=True, exist_ok=True)
    pid = _pid(paths)
    info = _info(paths)
    if pid is not None and info and _healthy(info["api"], paths):
        print("already running")
        _print_endpoints(info)
        return 0
    try:
        json.loads(args.faults)
    except json.JSONDecodeError as e:
        print(f"--faults is not valid JSON: {e}", file=sys.stderr)
        return 2
    if args.foreground:
        from kubeflow_bridge.local import daemon

        return daemon.main([*daemon_argv(paths, args)[3:], "--announce"])
    with contextlib.suppress(FileNotFoundError):
        paths.info_file.unlink()
    with open(paths.log_file, "ab") as log:
        proc = subprocess.Popen(
            daemon_argv(paths, args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            reason = _last_error(paths)
            print(
                f"the runtime exited with code {proc.returncode}{': ' + reason if reason else ''} "
                f"(full log: {paths.log_file})",
                file=sys.stderr,
            )
            return 1
        info = _info(paths)
        if info and _healthy(info["api"], paths):
            _print_endpoints(info)
            for change in info.get("moved") or []:
                print(f"note: {change}. Source {info['env']} again and update running clients (Airflow).")
            return 0
        time.sleep(0.1)
    print(f"the runtime did not become healthy in {args.timeout:.0f}s; see {paths.log_file}", file=sys.stderr)
    _stop(paths, proc.pid)
    return 1


def _last_error(paths: StatePaths) -> str:
    """The last error line the runtime logged (what made it exit)."""
    try:
        lines = paths.log_file.read_text(errors="replace").splitlines()[-40:]
    except FileNotFoundError:
        return ""
    for line in reversed(lines):
        if " ERROR " in line:
            return line.split(": ", 1)[-1].strip()
        if "Error: " in line:
            return line.strip()
    return ""


def _stop(paths: StatePaths, pid: int, timeout: float = 15.0) -> None:
    from kubeflow_bridge.local.processes import sweep_marked, sweep_pid_files

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    sweep_pid_files(paths.procs)
    sweep_marked(paths.root)


def down(args: argparse.Namespace) -> int:
    paths = _paths(args)
    pid = _pid(paths)
    if pid is None:
        from kubeflow_bridge.local.processes import sweep_marked, sweep_pid_files

        left = sweep_pid_files(paths.procs) + sweep_marked(paths.root)
        print("not running" + (f" (killed {len(left)} leftover process groups)" if left else ""))
        return 0
    _stop(paths, pid)
    with contextlib.suppress(FileNotFoundError):
        paths.pid_file.unlink()
    with contextlib.suppress(FileNotFoundError):
        paths.info_file.unlink()
    print(f"stopped (pid {pid})")
    return 0


def status(args: argparse.Namespace) -> int:
    paths = _paths(args)
    pid = _pid(paths)
    info = _info(paths)
    procs = (
        sorted((f.name, f.read_text()) for f in paths.procs.iterdir() if f.name.isdigit())
        if paths.procs.is_dir()
        else []
    )
    healthy = bool(info and _healthy(info["api"], paths))
    if args.json:
        print(json.dumps({"running": pid is not None, "healthy": healthy, "info": info, "processes": procs}))
        return 0 if pid else 3
    if pid is None:
        print(f"not running (state {paths.root})")
        return 3
    if info:
        _print_endpoints(info)
    print(f"  health         : {'ok' if healthy else 'NOT HEALTHY'}")
    print(f"  processes      : {len(procs)}")
    for p, what in procs:
        print(f"    pid {p}: {what}")
    return 0


def logs(args: argparse.Namespace) -> int:
    paths = _paths(args)
    if not args.pod:
        path = paths.log_file
    else:
        try:
            folder = confined(paths.pod_logs, args.namespace, args.pod)
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        if not folder.is_dir():
            print(f"no logs for pod {args.namespace}/{args.pod}", file=sys.stderr)
            return 1
        names = sorted(
            p.name[: -len(".log")] for p in folder.glob("*.log") if not p.name.endswith(".previous.log")
        )
        container = args.container or (names[0] if len(names) == 1 else None)
        if container is None:
            print(
                f"pod {args.pod} has several containers; choose one with -c: {' '.join(names)}",
                file=sys.stderr,
            )
            return 1
        path = folder / f"{container}.log"
        if "/" in container or container.startswith("."):
            print(f"{container!r} is not a container name", file=sys.stderr)
            return 2
    if not path.exists():
        print(f"no log at {path}", file=sys.stderr)
        return 1
    with open(path, "rb") as f:
        data = f.read()
        if args.tail is not None:
            data = b"".join(data.splitlines(keepends=True)[-args.tail :]) if args.tail > 0 else b""
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        while args.follow:
            chunk = f.read()
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            else:
                time.sleep(0.3)
    return 0


def run(args: argparse.Namespace) -> int:
    return int({"up": up, "down": down, "status": status, "logs": logs}[args.local_command](args))
