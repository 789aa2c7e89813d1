"""The runtime process: store + API server + controllers (+ S3), until SIGTERM.

``python -m kubeflow_bridge.local.daemon --state-dir DIR [--api-port N] [--s3-port N] [--faults JSON]``
is what ``kubeflow-bridge local up`` starts in the background (its own process group, output to
``<state>/runtime.log``). Once it serves, it writes ``<state>/runtime.json`` (pid, ports, endpoints).

Components: :meth:`Runtime._install_components` adds every controller, one line per Kubeflow component
(core Pods and Jobs, the Training Operator, Katib, KServe); a component's ``install(runtime)`` adds its
controllers (``runtime.manager.add(...)``) and admission rules (``runtime.admission.validators``). The
KFP API runs on its own port (:mod:`kubeflow_bridge.local.kfp`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from kubeflow_bridge.local import ports
from kubeflow_bridge.local.apiserver.admission import Admission
from kubeflow_bridge.local.apiserver.faults import FaultConfig, Faults
from kubeflow_bridge.local.apiserver.kinds import NAMESPACE, KindRegistry
from kubeflow_bridge.local.apiserver.server import ApiServer
from kubeflow_bridge.local.apiserver.store import Store
from kubeflow_bridge.local.controllers.base import ControllerContext, ControllerManager
from kubeflow_bridge.local.images import TRAINER_IMAGE, ImageMap, trainer_python
from kubeflow_bridge.local.paths import KFP_NAMESPACE, S3Info, StatePaths, write_client_files
from kubeflow_bridge.local.processes import MARKER, ProcessManager, sweep_pid_files
from kubeflow_bridge.local.tracking import TrackingServer
from kubeflow_bridge.local.warm import WarmPool, ZygoteInfo
from kubeflow_bridge.local.warm import enabled as warm_starts_enabled

log = logging.getLogger("kubeflow_bridge.local")

S3_BUCKETS = ("kubeflow-bridge", "mlpipeline", "mlflow")
DEFAULT_NAMESPACES = ("default", KFP_NAMESPACE, "kube-system")


def detect_gpus() -> int:
    """GPUs pods may request: ``KUBEFLOW_BRIDGE_GPUS`` if set, else what ``nvidia-smi -L`` lists."""
    override = os.environ.get("KUBEFLOW_BRIDGE_GPUS")
    if override is not None:
        return int(override)
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


class Runtime:
    """One local Kubeflow runtime.

    Args:
        state_dir: The state folder (SQLite, logs, kubeconfig, env, pid files).
        api_port: Port of the API server (0: the last run's, else a free one).
        s3_port: Port of the S3 server (0: the last run's, else a free one); ``s3=False`` runs without S3.
        kfp_port: Port of the KFP v2beta1 API (0: the last run's, else a free one).
        mlflow: Also run an MLflow tracking server (:mod:`kubeflow_bridge.local.tracking`); its URI goes
            into the env file (``MLFLOW_TRACKING_URI``) and Airflow's ``mlflow_default`` connection.
        mlflow_port: Its port (0: the last run's, else a free one).
        faults: Initial fault-injection settings.
        history: Watch history length (older resourceVersions get 410 Gone).
        bookmark_interval: Seconds between watch bookmarks.
        tls: Serve the Kubernetes API over HTTPS with a local CA (default: when auth is on at start).
        auth: Require a bearer token on both APIs (default). The token is the state folder's own
            (``<state>/token``, 0600, kept across restarts); the kubeconfig and the env file carry it.
            ``faults`` that set ``auth`` themselves win.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        api_port: int = 0,
        s3_port: int = 0,
        kfp_port: int = 0,
        s3: bool = True,
        mlflow: bool = False,
        mlflow_port: int = 0,
        faults: dict[str, Any] | None = None,
        history: int = 2000,
        bookmark_interval: float = 5.0,
        tls: bool | None = None,
        kfp_multi_user: bool = False,
        auth: bool = True,
        warm: bool | None = None,
    ) -> None:
        self.paths = StatePaths(state_dir.resolve())
        self.kfp_multi_user = kfp_multi_user
        self.paths.root.mkdir(parents=True, exist_ok=True)
        #: The last run's ports (kept so the env file and Airflow's connections stay valid).
        self.kept_ports = ports.remembered(self.paths.ports_file)
        #: Remembered ports that were taken this time, and where their endpoints went.
        self.moved: list[ports.Moved] = []
        self.api_port = api_port
        self.s3_port = s3_port
        self.want_s3 = s3
        self.want_mlflow = mlflow
        self.mlflow_port = mlflow_port
        self.tracking: TrackingServer | None = None
        settings = dict(faults or {})
        if auth and "auth" not in settings:
            settings.update(auth=True, static_token=self.paths.token())
        self.faults = Faults(FaultConfig.from_dict(settings))
        # HTTPS when asked, and by default when token auth is on (kubectl sends no token over HTTP).
        self.tls = self.faults.config.auth if tls is None else tls
        self.kinds = KindRegistry()
        self.store = Store(self.paths.db, history=history)
        self.admission = Admission()
        warm_on = warm_starts_enabled() if warm is None else warm
        from kubeflow_bridge.local.controllers.pod import BASE_ENV_KEYS

        base_env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
        pool = WarmPool(self.paths.root / "warm", {**base_env, MARKER: str(self.paths.root)})
        self.processes = ProcessManager(self.paths.procs, pool if warm_on else None)
        self.api = ApiServer(
            self.store,
            self.admission,
            self.faults,
            self.paths.root,
            kinds=self.kinds,
            bookmark_interval=bookmark_interval,
        )
        self.ctx = ControllerContext(
            self.store,
            self.admission,
            self.processes,
            ImageMap.from_file(self.paths.images),
            self.paths.root,
            kinds=self.kinds,
        )
        self.ctx.gpu_count = detect_gpus()
        self.manager = ControllerManager(self.ctx)
        self.s3: Any = None
        self.s3_info: S3Info | None = None
        self.api_url = ""
        self.kfp_port = kfp_port
        self.kfp_url = ""
        self._runner: web.AppRunner | None = None
        self._kfp_runner: web.AppRunner | None = None
        self._kfp_sock: socket.socket | None = None

    def trainer_zygote(self) -> ZygoteInfo | None:
        """The trainer environment's zygote once ready (KFP components fork from it); starts it if none."""
        pool = self.processes.warm
        if pool is None:
            return None
        rule = self.ctx.images.rule_for(TRAINER_IMAGE)
        return pool.ready(trainer_python(self.ctx.images), rule.preload) if rule.preload else None

    def _ensure_namespaces(self) -> None:
        for ns in DEFAULT_NAMESPACES:
            if self.store.find(NAMESPACE, "", ns) is None:
                self.store.create(NAMESPACE, {"metadata": {"name": ns}})

    def _install_components(self) -> None:
        from kubeflow_bridge.local.controllers.job import JobController
        from kubeflow_bridge.local.controllers.namespace import StorageSecretController
        from kubeflow_bridge.local.controllers.pod import PodController
        from kubeflow_bridge.local.katib import controller as katib
        from kubeflow_bridge.local.kserve import controller as kserve
        from kubeflow_bridge.local.training import trainjob
        from kubeflow_bridge.local.training.pytorchjob import PyTorchJobController
        from kubeflow_bridge.local.training.v1jobs import (
            JAXJobController,
            MPIJobController,
            TFJobController,
            XGBoostJobController,
        )

        pods = PodController()
        self.manager.add(pods)
        self.manager.add(JobController())
        self.manager.add(StorageSecretController())
        self.manager.add(PyTorchJobController())
        for controller in (TFJobController(), XGBoostJobController(), JAXJobController(), MPIJobController()):
            self.manager.add(controller)
        trainjob.install(self)
        katib.install(self)
        kserve.install(self)
        self.api.admin_hooks["kill-pod"] = pods.admin_kill
        self.api.admin_hooks["crash-pods"] = pods.admin_crash

    async def _start_s3(self) -> None:
        if not self.want_s3:
            return
        from kubeflow_bridge.local.s3 import S3Server

        held_by = ""
        creds_file = self.paths.root / "s3-credentials.json"
        creds: dict[str, str] = {}
        if creds_file.exists():
            creds = json.loads(creds_file.read_text())
        port = self.s3_port or self.kept_ports.get("s3", 0)
        if port and not ports.is_free(port):
            if self.s3_port:
                raise ports.PortTaken(
                    f"port {port} for the s3 is taken by {ports.holder(port)}: stop it, "
                    "or pass another port (--s3-port 0 picks a free one)"
                )
            held_by, port = ports.holder(port), 0
        self.s3 = S3Server(
            data_dir=str(self.paths.root / "s3"),
            buckets=S3_BUCKETS,
            port=port,
            log_path=str(self.paths.root / "s3.log"),
        )
        if creds:
            self.s3.access_key, self.s3.secret_key = creds["access_key"], creds["secret_key"]
        # Blocking start (seconds): nothing is served yet, so blocking the loop costs nothing.
        self.s3.start()
        kept = self.kept_ports.get("s3")
        if kept and not self.s3_port and self.s3.port != kept:
            self.moved.append(ports.Moved("s3", kept, self.s3.port, held_by))
        if self.s3.pid:
            # Recorded like a pod's process so `local down` kills weed even if this daemon was killed.
            (self.paths.procs / str(self.s3.pid)).write_text("s3 (weed mini)")
        if not creds:
            # Keep the credentials across restarts so clients' env files stay valid.
            fd = os.open(creds_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"access_key": self.s3.access_key, "secret_key": self.s3.secret_key}, f)
        self.s3_info = S3Info(
            endpoint=self.s3.endpoint_url,
            access_key=self.s3.access_key,
            secret_key=self.s3.secret_key,
            buckets=S3_BUCKETS,
        )

    def _start_tracking(self) -> None:
        """Start MLflow (it answers a few seconds later: :meth:`start` waits for it last)."""
        if not self.want_mlflow:
            return
        sock, moved = ports.claim("mlflow", self.mlflow_port, self.kept_ports.get("mlflow"))
        port = sock.getsockname()[1]
        sock.close()  # the server binds it itself, a moment later
        if moved is not None:
            self.moved.append(moved)
        self.tracking = TrackingServer(state_dir=self.paths.root / "mlflow", port=port, s3=self.s3_info)
        self.tracking.start()
        if self.tracking.pid:
            # its own process group, so `local down` finds it after a crash (as it finds weed)
            (self.paths.procs / str(self.tracking.pid)).write_text("mlflow server")

    async def _start_kfp(self, env: dict[str, str]) -> None:
        """The KFP v2beta1 API on its own port (kubeflow_bridge.local.kfp)."""
        from kubeflow_bridge.local.kfp import create_kfp_app

        app = create_kfp_app(
            state_dir=self.paths.root / "kfp",
            pipeline_root="",
            kubeconfig=self.paths.kubeconfig,
            env={**{k: v for k, v in env.items() if k.startswith("AWS_")}, MARKER: str(self.paths.root)},
            trainer_python=trainer_python(self.ctx.images),
            images_file=self.paths.images,
            multi_user=self.kfp_multi_user,
            faults=self.faults,  # one token and one set of injected faults for both APIs
            warm=self.trainer_zygote,
        )
        from kubeflow_bridge.local.ui import UiSources, add_ui_routes

        token = self.faults.config.static_token if self.faults.config.auth else None
        ca = self.paths.root / "tls" / "ca.crt"
        add_ui_routes(  # the dashboard URL: the pages the operators' extra links open
            app,
            UiSources(
                kfp_url=self.kfp_url,
                api_url=self.api_url,
                token=token,
                ca_file=str(ca) if self.tls else None,
                s3_env={k: v for k, v in env.items() if k.startswith("AWS_")},
                local_artifacts=str(self.paths.root / "kfp"),
            ),
        )
        self._kfp_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._kfp_runner.setup()
        assert self._kfp_sock is not None
        await web.SockSite(self._kfp_runner, self._kfp_sock, shutdown_timeout=1.0).start()

    async def start(self) -> None:
        """Serve; write kubeconfig, env and runtime.json."""
        # Processes a crashed predecessor left behind are not ours to keep.
        sweep_pid_files(self.paths.procs)
        self._ensure_namespaces()
        self._install_components()
        await self._start_s3()
        self._start_tracking()
        sock, moved = ports.claim("api", self.api_port, self.kept_ports.get("api"))
        self.api_port = sock.getsockname()[1]
        ssl_context = None
        ca_pem: bytes | None = None
        if self.tls:
            from kubeflow_bridge.local.tls import ensure_certificates, server_context

            ca, cert, key = ensure_certificates(self.paths.root / "tls")
            ssl_context = server_context(cert, key)
            ca_pem = ca.read_bytes()
        scheme = "https" if self.tls else "http"
        self.api_url = f"{scheme}://127.0.0.1:{self.api_port}"
        self._kfp_sock, kfp_moved = ports.claim("kfp", self.kfp_port, self.kept_ports.get("kfp"))
        self.kfp_url = f"http://127.0.0.1:{self._kfp_sock.getsockname()[1]}"
        self.moved += [m for m in (moved, kfp_moved) if m is not None]
        for change in self.moved:
            log.warning("%s: source %s again", change, self.paths.env_file)
        ports.remember(
            self.paths.ports_file,
            {
                "api": self.api_port,
                "kfp": self._kfp_sock.getsockname()[1],
                "s3": self.s3.port if self.s3 is not None else self.kept_ports.get("s3", 0),
                "mlflow": self.tracking.port if self.tracking else self.kept_ports.get("mlflow", 0),
            },
        )
        token = self.faults.config.static_token if self.faults.config.auth else None
        env = write_client_files(
            self.paths,
            self.api_url,
            self.s3_info,
            token,
            kfp_url=self.kfp_url,
            ca_pem=ca_pem,
            gpus=self.ctx.gpu_count,
            tracking_uri=self.tracking.uri if self.tracking else "",
        )
        # What every pod gets (an in-cluster pod's view), less Airflow's connections and MLflow's URI: a
        # workflow pod gets that from the workflow (its tracking_uri), as on a cluster.
        self.ctx._runtime_env = {
            k: v for k, v in env.items() if not k.startswith(("AIRFLOW_CONN_", "MLFLOW_"))
        }
        # Marks every process the runtime starts, so `local down` can find them even after a crash.
        self.ctx._runtime_env[MARKER] = str(self.paths.root)
        await self._start_kfp(env)
        self._runner = web.AppRunner(self.api.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, shutdown_timeout=1.0, ssl_context=ssl_context).start()
        await self.manager.start()
        if self.tracking is not None:
            await asyncio.to_thread(self.tracking.wait_ready)
        info = {
            "pid": os.getpid(),
            "api": self.api_url,
            "kfp": self.kfp_url if self._kfp_runner is not None else None,
            "s3": self.s3_info.endpoint if self.s3_info else None,
            "mlflow": self.tracking.uri if self.tracking else None,
            "state_dir": str(self.paths.root),
            "kubeconfig": str(self.paths.kubeconfig),
            "env": str(self.paths.env_file),
            "moved": [str(m) for m in self.moved],
        }
        # Atomic: `local up` and tests poll for this file and must never read it half-written.
        tmp = self.paths.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, self.paths.info_file)
        log.info("local runtime serving at %s (state %s)", self.api_url, self.paths.root)

    async def stop(self) -> None:
        await self.manager.stop()
        await self.processes.stop_all()
        if self._kfp_runner is not None:
            await self._kfp_runner.cleanup()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.tracking is not None:
            await asyncio.to_thread(self.tracking.stop)
        if self.s3 is not None:
            stopped = self.s3.stop()
            if asyncio.iscoroutine(stopped):
                await stopped
        sweep_pid_files(self.paths.procs)
        self.store.close()
        with contextlib.suppress(FileNotFoundError):
            self.paths.info_file.unlink()


async def serve(runtime: Runtime, announce: bool = False, prewarm: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    if prewarm:
        runtime.trainer_zygote()  # start the trainer environment's zygote now, not at the first step
    if announce:
        info = json.loads(runtime.paths.info_file.read_text())
        print(f"serving: API {info['api']}  KFP {info['kfp']}  S3 {info['s3']}  (Ctrl-C stops)", flush=True)
        print(f"  source {info['env']}", flush=True)
    try:
        await stop.wait()
    finally:
        await runtime.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kubeflow_bridge.local.daemon")
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--api-port", type=int, default=0)
    p.add_argument("--s3-port", type=int, default=0)
    p.add_argument("--kfp-port", type=int, default=0)
    p.add_argument("--no-s3", action="store_true")
    p.add_argument("--mlflow", action="store_true", help="also run an MLflow tracking server")
    p.add_argument("--mlflow-port", type=int, default=0)
    p.add_argument("--kfp-multi-user", action="store_true", help="KFP in Kubeflow's multi-user mode")
    p.add_argument("--faults", default="{}", help="fault-injection settings as JSON")
    p.add_argument(
        "--faults-file",
        type=Path,
        default=None,
        help="the same settings from a JSON file (keeps tokens off the command line)",
    )
    p.add_argument(
        "--no-auth", action="store_true", help="serve both APIs without a token (plain HTTP; tests only)"
    )
    p.add_argument("--history", type=int, default=2000)
    p.add_argument("--no-warm", action="store_true", help="start every process cold (no zygotes)")
    p.add_argument(
        "--prewarm",
        action="store_true",
        help="start the trainer environment's zygote at start-up (`local up`)",
    )
    p.add_argument("--bookmark-interval", type=float, default=5.0)
    p.add_argument("--announce", action="store_true", help="print the endpoints once serving")
    p.add_argument(
        "--tls", action=argparse.BooleanOptionalAction, default=None, help="serve the API over HTTPS"
    )
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    paths = StatePaths(args.state_dir.resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pid_file.write_text(str(os.getpid()))
    try:
        runtime = Runtime(
            args.state_dir,
            api_port=args.api_port,
            s3_port=args.s3_port,
            kfp_port=args.kfp_port,
            s3=not args.no_s3,
            mlflow=args.mlflow,
            mlflow_port=args.mlflow_port,
            faults=json.loads(args.faults_file.read_text() if args.faults_file else args.faults),
            history=args.history,
            bookmark_interval=args.bookmark_interval,
            tls=args.tls,
            kfp_multi_user=args.kfp_multi_user,
            auth=not args.no_auth,
            warm=False if args.no_warm else None,
        )
        asyncio.run(serve(runtime, args.announce, args.prewarm and not args.no_warm))
    except ports.PortTaken as err:
        log.error("cannot start: %s", err)
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            if paths.pid_file.read_text().strip() == str(os.getpid()):
                paths.pid_file.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
