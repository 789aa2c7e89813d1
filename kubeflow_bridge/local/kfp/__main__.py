"""Runs the local KFP API standalone: ``python -m kubeflow_bridge.local.kfp --port N --state-dir D``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

from kubeflow_bridge.local.kfp.app import create_kfp_app


def _read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip().removeprefix("export ").strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip().strip("'\"")
    return env


async def _serve(args: argparse.Namespace) -> None:
    env = _read_env_file(args.env_file) if args.env_file else {}
    app = create_kfp_app(
        state_dir=args.state_dir,
        pipeline_root=args.pipeline_root,
        kubeconfig=args.kubeconfig,
        env=env,
        trainer_python=args.trainer_python,
        max_parallel_runs=args.max_parallel_runs,
        multi_user=args.multi_user,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    site = web.SockSite(runner, sock)
    await site.start()
    print(f"KFP_ENDPOINT=http://{args.host}:{sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeflow_bridge.local.kfp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument(
        "--multi-user",
        action="store_true",
        help="Kubeflow's multi-user mode: experiments and runs live in namespaces, list calls name one",
    )
    parser.add_argument(
        "--pipeline-root", default="", help="absolute local folder (default <state-dir>/pipeline-root)"
    )
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument("--env-file", type=Path, default=None, help="export lines added to every run's env")
    parser.add_argument(
        "--trainer-python", default=None, help="python of the trainer env (default: this one)"
    )
    parser.add_argument(
        "--max-parallel-runs", type=int, default=4, help="runs executing at once; others wait PENDING"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
