"""A local MLflow tracking server: ``mlflow server`` on 127.0.0.1, beside the runtime's S3 server.

Runs and the model registry live in SQLite under the state folder (``<state>/mlflow/mlflow.db``);
artifacts go to the runtime's S3 server (``s3://mlflow/artifacts``), which the server proxies, so clients
need only the tracking URI (``mlflow-artifacts:`` URIs), as with a team's shared MLflow. Without S3 the
artifacts stay in ``<state>/mlflow/artifacts``.

Example::

    server = TrackingServer(state_dir=state / "mlflow", port=0, s3=s3_info)
    server.start()          # returns at once; the server needs a few seconds
    server.wait_ready()
    os.environ["MLFLOW_TRACKING_URI"] = server.uri
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kubeflow_bridge.local.paths import REGION, S3Info

HOST = "127.0.0.1"
#: The bucket (on the runtime's S3 server) that holds MLflow's artifacts.
ARTIFACT_BUCKET = "mlflow"


class TrackingServerError(RuntimeError):
    """The MLflow server could not be started or did not answer."""


@dataclass
class TrackingServer:
    """``mlflow server`` with a SQLite store in ``state_dir``.

    Attributes:
        state_dir: Its folder (the SQLite database, the log, artifacts when there is no S3).
        port: The port to serve on (a free one, picked by the caller).
        s3: The runtime's S3 server, for artifacts (None: a local folder).
        startup_timeout: Seconds :meth:`wait_ready` waits for ``/health``.
        python: The interpreter whose ``mlflow`` package serves (the runtime's: the trainer environment).
    """

    state_dir: Path
    port: int
    s3: S3Info | None = None
    startup_timeout: float = 90.0
    python: str = sys.executable
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def uri(self) -> str:
        """The tracking URI (``MLFLOW_TRACKING_URI``)."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        return self.state_dir / "server.log"

    def command(self) -> list[str]:
        """The ``mlflow server`` command line (the ``mlflow`` package of :attr:`python`)."""
        destination = (
            f"s3://{ARTIFACT_BUCKET}/artifacts" if self.s3 is not None else str(self.state_dir / "artifacts")
        )
        return [
            self.python,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.state_dir / 'mlflow.db'}",
            "--artifacts-destination",
            destination,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]

    def environment(self) -> dict[str, str]:
        """The server's env: S3 credentials for its artifact proxy; no background job runner (it starts a
        dozen worker processes for features a local runtime does not use)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        if self.s3 is not None:
            env.update(
                MLFLOW_S3_ENDPOINT_URL=self.s3.endpoint,
                AWS_ACCESS_KEY_ID=self.s3.access_key,
                AWS_SECRET_ACCESS_KEY=self.s3.secret_key,
                AWS_DEFAULT_REGION=REGION,
            )
        return env

    def start(self) -> None:
        """Start the server in its own process group (returns before it answers: see :meth:`wait_ready`)."""
        import importlib.util

        # Fail here with the fix, not in the server's log.
        if self.python == sys.executable and importlib.util.find_spec("mlflow") is None:
            raise TrackingServerError(
                f"the mlflow package is not installed in {sys.executable}'s environment: run `make setup` "
                "(it is in trainer/requirements.txt), or start the runtime without MLflow (--no-mlflow)"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
                env=self.environment(),
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Block until ``/health`` answers.

        Raises:
            TrackingServerError: The server exited or did not answer in time (with its log's tail).
        """
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise TrackingServerError(f"mlflow server exited: {self._log_tail()}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.25)
        raise TrackingServerError(
            f"mlflow server did not answer on {self.uri} in {self.startup_timeout:.0f}s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return f"(no log at {self.log_path})"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its workers (its process group)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout)
        self._proc = None
