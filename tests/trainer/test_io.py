"""URI parsing and atomic publication."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainer import io


def test_parse_uri_accepts_local_file_and_s3(tmp_path: Path) -> None:
    assert io.parse_uri(str(tmp_path / "a")).path == str(tmp_path / "a")
    assert io.parse_uri(f"file://{tmp_path}/a").path == str(tmp_path / "a")
    loc = io.parse_uri("s3://bucket/some/key.pt")
    assert (loc.scheme, loc.bucket, loc.path) == ("s3", "bucket", "some/key.pt")
    assert loc.child("x").uri == "s3://bucket/some/key.pt/x"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "is missing"),
        (None, "is missing"),
        ("s3:///key", "has no bucket"),
        ("gs://bucket/key", "unsupported scheme 'gs'"),
        ("file://otherhost/x", "must be local"),
    ],
)
def test_parse_uri_rejects_malformed(uri: str | None, message: str) -> None:
    with pytest.raises(io.UriError, match=message) as exc:
        io.parse_uri(uri, arg="--data")
    assert "--data" in str(exc.value)


def test_write_bytes_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "model.pt"
    io.write_bytes(str(target), b"abc")
    assert target.read_bytes() == b"abc"
    assert os.listdir(target.parent) == ["model.pt"]


def test_output_dir_publishes_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with io.output_dir(str(out)) as staging:
        Path(staging, "a.txt").write_text("1")
    assert (out / "_SUCCESS").exists() and (out / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError), io.output_dir(str(out)) as staging:
        Path(staging, "b.txt").write_text("partial")
        raise RuntimeError("step failed halfway")
    # The failed attempt published nothing and left the previous complete output untouched.
    assert sorted(os.listdir(out)) == ["_SUCCESS", "a.txt"]
    assert sorted(os.listdir(tmp_path)) == ["ds"]


def test_input_dir_requires_success_marker(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with (
        pytest.raises(io.UriError, match="incomplete"),
        io.local_input_dir(str(tmp_path / "half"), arg="--data"),
    ):
        pass
    with pytest.raises(io.UriError, match="no such directory"), io.local_input_dir(str(tmp_path / "nope")):
        pass
    with pytest.raises(io.UriError, match="no such file"):
        io.read_bytes(str(tmp_path / "missing.pt"), arg="--model")
