"""URI handling for every trainer step: local paths, ``file://`` and ``s3://``.

Outputs are published atomically so that nothing partial ever looks complete:

* a local file is written to a temporary sibling and renamed into place;
* a local directory is built in a temporary sibling, gets a ``_SUCCESS`` marker, and is renamed into place;
* an S3 prefix loses its marker and its old objects, gets the new objects, then the ``_SUCCESS`` marker;
  readers of a dataset require the marker (a single S3 object is atomic by itself).

S3 uses boto3 with the endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` and the standard
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` variables.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

SUCCESS_MARKER = "_SUCCESS"


class UriError(ValueError):
    """A URI argument is missing, malformed, or points at nothing."""


@dataclass(frozen=True)
class Location:
    """A parsed URI.

    Attributes:
        scheme: ``"file"`` or ``"s3"``.
        path: the local path (file) or the key/prefix without a leading slash (s3).
        bucket: the S3 bucket, empty for local paths.
        uri: the URI as given.
    """

    scheme: str
    path: str
    bucket: str
    uri: str

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    def child(self, name: str) -> Location:
        """The location of ``name`` inside this one."""
        if self.is_s3:
            key = f"{self.path.rstrip('/')}/{name}" if self.path else name
            return Location("s3", key, self.bucket, f"s3://{self.bucket}/{key}")
        joined = os.path.join(self.path, name)
        return Location("file", joined, "", joined)


def parse_uri(uri: str | None, *, arg: str = "URI") -> Location:
    """Parse a local path, ``file://`` URI or ``s3://bucket/key`` URI.

    Raises:
        UriError: the URI is empty or has an unsupported scheme or no bucket.
    """
    if uri is None or not str(uri).strip():
        raise UriError(f"{arg} is missing: pass a local path, file:///abs/path or s3://bucket/key")
    text = str(uri).strip()
    parsed = urlparse(text)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise UriError(f"{arg} {text!r}: file:// URIs must be local (file:///abs/path)")
            path = unquote(parsed.path)
            if not path:
                raise UriError(f"{arg} {text!r} has no path: use file:///abs/path")
        else:
            path = text
        return Location("file", os.path.abspath(os.path.expanduser(path)), "", text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UriError(f"{arg} {text!r} has no bucket: use s3://bucket/key")
        return Location("s3", parsed.path.lstrip("/"), parsed.netloc, text)
    raise UriError(
        f"{arg} {text!r} has unsupported scheme {parsed.scheme!r}: use a local path, file:// or s3://"
    )


def s3_client() -> Any:
    """A boto3 S3 client configured from the standard AWS environment variables."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        # Read on every call: boto3's default session keeps the first credentials it found, so a process
        # that switches S3 servers (a test run, a long-lived worker) would sign with stale keys. Unset
        # variables fall back to boto3's usual chain (profiles, IRSA, instance roles).
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
    )


def _s3_keys(loc: Location) -> list[str]:
    client = s3_client()
    prefix = loc.path.rstrip("/") + "/" if loc.path else ""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def exists(uri: str) -> bool:
    """Whether a file exists at ``uri`` (for S3: an object with exactly that key)."""
    loc = parse_uri(uri)
    if not loc.is_s3:
        return os.path.exists(loc.path)
    from botocore.exceptions import ClientError

    try:
        s3_client().head_object(Bucket=loc.bucket, Key=loc.path)
        return True
    except ClientError:
        return False


def read_bytes(uri: str, *, arg: str = "URI") -> bytes:
    """Read a whole file.

    Raises:
        UriError: nothing is there.
    """
    loc = parse_uri(uri, arg=arg)
    if not loc.is_s3:
        if not os.path.isfile(loc.path):
            raise UriError(f"{arg} {uri!r}: no such file {loc.path}")
        return Path(loc.path).read_bytes()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = s3_client().get_object(Bucket=loc.bucket, Key=loc.path)["Body"]
        return bytes(body.read())
    except (ClientError, BotoCoreError) as exc:
        raise UriError(f"{arg} {uri!r}: cannot read from S3 ({exc}); check the key and AWS_* env") from exc


def write_bytes(uri: str, data: bytes, *, arg: str = "URI") -> str:
    """Write a whole file atomically (temporary sibling + rename; one PUT on S3). Returns the URI."""
    loc = parse_uri(uri, arg=arg)
    if loc.is_s3:
        s3_client().put_object(Bucket=loc.bucket, Key=loc.path, Body=data)
        return uri
    os.makedirs(os.path.dirname(loc.path) or ".", exist_ok=True)
    tmp = f"{loc.path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, loc.path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return uri


def read_text(uri: str, *, arg: str = "URI") -> str:
    return read_bytes(uri, arg=arg).decode("utf-8")


def write_text(uri: str, text: str, *, arg: str = "URI") -> str:
    return write_bytes(uri, text.encode("utf-8"), arg=arg)


@contextlib.contextmanager
def local_input_dir(uri: str, *, arg: str = "URI", require_marker: bool = True) -> Iterator[str]:
    """A local directory holding the dataset at ``uri`` (downloaded to a temp dir for S3).

    Raises:
        UriError: the directory is missing or was never completed (no ``_SUCCESS`` marker).
    """
    loc = parse_uri(uri, arg=arg)
    if not loc.is_s3:
        if not os.path.isdir(loc.path):
            raise UriError(f"{arg} {uri!r}: no such directory {loc.path}; run the previous step first")
        if require_marker and not os.path.exists(os.path.join(loc.path, SUCCESS_MARKER)):
            raise UriError(
                f"{arg} {uri!r} is incomplete (no {SUCCESS_MARKER} marker): the step that writes it "
                "did not finish; run it again"
            )
        yield loc.path
        return
    keys = _s3_keys(loc)
    prefix = loc.path.rstrip("/") + "/" if loc.path else ""
    if not keys:
        raise UriError(f"{arg} {uri!r}: nothing under that S3 prefix; run the previous step first")
    if require_marker and prefix + SUCCESS_MARKER not in keys:
        raise UriError(f"{arg} {uri!r} is incomplete (no {SUCCESS_MARKER} marker); run the step again")
    client = s3_client()
    with tempfile.TemporaryDirectory(prefix="trainer-in-") as tmp:
        for key in keys:
            rel = key[len(prefix) :]
            dest = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            client.download_file(loc.bucket, key, dest)
        yield tmp


@contextlib.contextmanager
def output_dir(uri: str, *, arg: str = "URI") -> Iterator[str]:
    """Build a dataset in a local staging directory, then publish it to ``uri`` atomically.

    On success the staging dir gets a ``_SUCCESS`` marker and is renamed over ``uri`` (local) or uploaded
    with the marker last (S3). On error nothing is published.
    """
    loc = parse_uri(uri, arg=arg)
    if loc.is_s3:
        with tempfile.TemporaryDirectory(prefix="trainer-out-") as tmp:
            yield tmp
            _upload_dir(tmp, loc)
        return
    parent = os.path.dirname(loc.path.rstrip("/")) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(loc.path.rstrip('/'))}.tmp-", dir=parent)
    try:
        yield staging
        Path(staging, SUCCESS_MARKER).write_text("")
        if os.path.isdir(loc.path):
            old = f"{loc.path}.old-{uuid.uuid4().hex[:8]}"
            os.replace(loc.path, old)
            os.replace(staging, loc.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, loc.path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _upload_dir(local: str, loc: Location) -> None:
    """Replace the dataset under ``loc`` as a local write replaces a directory: delete, upload, mark.

    The marker goes first (readers refuse the prefix from then on), then every old object, so a
    smaller dataset never sits beside the leftovers of a bigger one; the new marker goes last.
    """
    if not loc.path.strip("/"):
        raise UriError(f"{loc.uri!r}: write a dataset under a prefix (s3://bucket/name), not the bucket root")
    client = s3_client()
    prefix = loc.path.rstrip("/") + "/"
    with contextlib.suppress(Exception):
        client.delete_object(Bucket=loc.bucket, Key=prefix + SUCCESS_MARKER)
    stale = _s3_keys(loc)
    for start in range(0, len(stale), 1000):  # DeleteObjects takes at most 1,000 keys
        client.delete_objects(
            Bucket=loc.bucket,
            Delete={"Objects": [{"Key": k} for k in stale[start : start + 1000]], "Quiet": True},
        )
    for root, _dirs, files in os.walk(local):
        for name in sorted(files):
            if name == SUCCESS_MARKER:
                continue
            full = os.path.join(root, name)
            rel = os.path.relpath(full, local).replace(os.sep, "/")
            client.upload_file(full, loc.bucket, prefix + rel)
    client.put_object(Bucket=loc.bucket, Key=prefix + SUCCESS_MARKER, Body=b"")
