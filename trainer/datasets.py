"""A team's own dataset as ingest's input: CSV or Parquet files, one file or a folder/S3 prefix of them.

Folders are read recursively in file-name order (partitioned layouts such as ``date=2026-01-01/`` sort in
time order); files and folders whose names start with ``_`` or ``.`` (markers, metadata) are skipped.
Reading is column-pruned and window-filtered through pyarrow datasets, batch by batch, so a dataset of
any size streams through bounded memory. Every check that can run on the schema runs before any row is
read; the rest (order, duplicates, label values) stop the step at the first bad batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as pads

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: Rows a dataset needs at least: ten rolling windows of preprocess's default size (12).
MIN_DATASET_ROWS = 120
BATCH_ROWS = 262_144


class DatasetError(ValueError):
    """The dataset or its column arguments cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class DatasetSpec:
    """Which dataset to read and how.

    Attributes:
        uri: A local path, ``file://`` or ``s3://`` URI of a file or a folder/prefix of files.
        time_column: The timestamp column (ISO 8601 text in CSV, a timestamp type in Parquet).
        feature_columns: The numeric columns to model; empty: every numeric column but time and label.
        label_column: The 0/1 anomaly label column; None: the data is unlabelled.
        start: Keep rows at or after this (naive UTC), or None.
        end: Keep rows before this (naive UTC), or None.
    """

    uri: str
    time_column: str = "timestamp"
    feature_columns: tuple[str, ...] = ()
    label_column: str | None = None
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None


def _filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path on it) for a dataset URI."""
    from pyarrow import fs

    from trainer import io

    loc = io.parse_uri(uri, arg="--source")
    if not loc.is_s3:
        return fs.LocalFileSystem(), loc.path
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    scheme, _, host = endpoint.partition("://") if "://" in endpoint else ("https", "", endpoint)
    s3 = fs.S3FileSystem(
        access_key=os.environ.get("AWS_ACCESS_KEY_ID") or None,
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
        session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_override=host or None,
        scheme=scheme,
        force_virtual_addressing=False,
    )
    return s3, f"{loc.bucket}/{loc.path}".rstrip("/")


def list_files(uri: str) -> tuple[Any, list[str], str]:
    """(filesystem, the dataset's files in name order, their format).

    Raises:
        DatasetError: Nothing there, no CSV/Parquet files, or both formats mixed.
    """
    from pyarrow import fs as pafs

    filesystem, path = _filesystem(uri)
    try:
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.File:
            found = [path]
        elif info.type == pafs.FileType.Directory:
            selector = pafs.FileSelector(path, recursive=True)
            found = [i.path for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File]
        else:
            raise DatasetError(
                f"--source {uri!r}: no such file or folder (give your dataset's path or URI, or synthetic or nab)"
            )
    except OSError as exc:
        raise DatasetError(f"--source {uri!r} cannot be read: {exc}") from exc
    relative = {p: os.path.relpath(p, path) if p != path else os.path.basename(p) for p in found}
    files = sorted(
        p
        for p, rel in relative.items()
        if os.path.splitext(p)[1].lower() in FORMATS and not any(part[:1] in "_." for part in rel.split("/"))
    )
    if not files:
        raise DatasetError(f"--source {uri!r} holds no .csv or .parquet files")
    formats = {FORMATS[os.path.splitext(p)[1].lower()] for p in files}
    if len(formats) > 1:
        raise DatasetError(f"--source {uri!r} mixes CSV and Parquet files: keep one format per dataset")
    return filesystem, files, formats.pop()


def open_dataset(spec: DatasetSpec) -> tuple[pads.Dataset, list[str]]:
    """The pyarrow dataset and the feature columns, after every schema check.

    Raises:
        DatasetError: A missing column, a time column that is not a timestamp, a non-numeric feature, or
            a label column that is not an integer or boolean column.
    """
    import pyarrow.dataset as pads
    import pyarrow.types as pat

    filesystem, files, fmt = list_files(spec.uri)
    dataset = pads.dataset(files, filesystem=filesystem, format=fmt)
    schema = dataset.schema
    names = schema.names
    where = f"--source {spec.uri!r}"
    if spec.time_column not in names:
        raise DatasetError(f"{where} has no time column {spec.time_column!r} (--time-column); it has {names}")
    time_type = schema.field(spec.time_column).type
    if not (pat.is_timestamp(time_type) or pat.is_date(time_type)):
        raise DatasetError(
            f"{where}: time column {spec.time_column!r} is {time_type}, not a timestamp; write ISO 8601 "
            "date-times (2026-01-01T00:00:00Z) in CSV or a timestamp type in Parquet"
        )
    if spec.label_column is not None:
        if spec.label_column not in names:
            raise DatasetError(
                f"{where} has no label column {spec.label_column!r} (--label-column); leave it empty for "
                f"unlabelled data. Columns: {names}"
            )
        label_type = schema.field(spec.label_column).type
        if not (pat.is_integer(label_type) or pat.is_boolean(label_type)):
            raise DatasetError(
                f"{where}: label column {spec.label_column!r} is {label_type}; it must hold 0/1 integers"
            )
    reserved = {spec.time_column, spec.label_column}
    if spec.feature_columns:
        missing = [c for c in spec.feature_columns if c not in names]
        if missing:
            raise DatasetError(
                f"{where} has no feature column(s) {missing} (--feature-columns); it has {names}"
            )
        features = list(spec.feature_columns)
    else:
        features = [n for n in names if n not in reserved and _numeric(schema.field(n).type)]
    for name in features:
        if name in reserved or name in ("timestamp", "label", "anomaly_type"):
            raise DatasetError(f"{where}: {name!r} cannot be a feature (it names the time or label column)")
        if not _numeric(schema.field(name).type):
            raise DatasetError(
                f"{where}: feature column {name!r} is {schema.field(name).type}, not numeric; "
                "pick numeric columns with --feature-columns"
            )
    if not features:
        raise DatasetError(f"{where} has no numeric feature columns besides {spec.time_column!r}")
    return dataset, features


def _numeric(dtype: pa.DataType) -> bool:
    import pyarrow.types as pat

    return bool(pat.is_integer(dtype) or pat.is_floating(dtype) or pat.is_decimal(dtype))


def _bound(dataset: pads.Dataset, column: str, value: pd.Timestamp) -> Any:
    """``value`` as a scalar of the time column's type (a UTC instant for tz-aware columns)."""
    import pyarrow as pa

    dtype = dataset.schema.field(column).type
    if pa.types.is_date(dtype):
        return pa.scalar(value.date(), type=dtype)
    ts = value.tz_localize("UTC") if getattr(dtype, "tz", None) else value
    return pa.scalar(ts, type=dtype)


def _window_filter(dataset: pads.Dataset, spec: DatasetSpec) -> Any:
    import pyarrow.dataset as pads

    field = pads.field(spec.time_column)
    expr = None
    if spec.start is not None:
        expr = field >= _bound(dataset, spec.time_column, spec.start)
    if spec.end is not None:
        below = field < _bound(dataset, spec.time_column, spec.end)
        expr = below if expr is None else expr & below
    return expr


def latest_time(dataset: pads.Dataset, time_column: str) -> pd.Timestamp | None:
    """The dataset's last timestamp (naive UTC), reading only the time column."""
    import pyarrow.compute as pc

    latest = None
    for batch in dataset.to_batches(columns=[time_column], batch_size=BATCH_ROWS):
        if batch.num_rows:
            value = pc.max(batch.column(0)).as_py()
            latest = value if latest is None or (value is not None and value > latest) else latest
    return None if latest is None else _naive_utc(latest)


def _naive_utc(value: Any) -> pd.Timestamp:
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def read_batches(dataset: pads.Dataset, features: list[str], spec: DatasetSpec) -> Iterator[pd.DataFrame]:
    """The window's rows as frames of ``timestamp, <features>, label`` (label only when labelled).

    Raises:
        DatasetError: Timestamps out of order or duplicated, a missing timestamp, or labels other than 0/1;
            the message names the first offending timestamp.
    """
    import numpy as np
    import pandas as pd

    columns = [spec.time_column, *features, *([spec.label_column] if spec.label_column else [])]
    previous = None
    for batch in dataset.to_batches(
        columns=columns, filter=_window_filter(dataset, spec), batch_size=BATCH_ROWS, use_threads=False
    ):
        if batch.num_rows == 0:
            continue
        frame = batch.to_pandas()
        if frame[spec.time_column].isna().any():
            raise DatasetError(f"--source {spec.uri!r}: a row has no {spec.time_column!r} value")
        ts = pd.to_datetime(frame[spec.time_column])  # date columns arrive as datetime.date objects
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None) if ts.dt.tz is not None else ts
        stamps = ts.to_numpy().astype("datetime64[ns]")
        steps = np.diff(stamps if previous is None else np.r_[previous, stamps])
        if (steps <= np.timedelta64(0)).any():
            i = int(np.flatnonzero(steps <= np.timedelta64(0))[0])
            joined = stamps if previous is None else np.r_[previous, stamps]
            what = "is duplicated" if steps[i] == np.timedelta64(0) else f"comes after {joined[i]}"
            raise DatasetError(
                f"--source {spec.uri!r}: timestamps must increase; {joined[i + 1]} {what}. Sort the rows "
                "(files are read in name order: name them so that it is time order) and drop duplicates"
            )
        previous = stamps[-1:]
        out = frame[features].astype("float32")
        out.insert(0, "timestamp", stamps)
        if spec.label_column:
            labels = frame[spec.label_column]
            bad = ~labels.isin([0, 1]) | labels.isna()
            if bad.any():
                first = stamps[int(np.flatnonzero(bad.to_numpy())[0])]
                raise DatasetError(
                    f"--source {spec.uri!r}: label column {spec.label_column!r} holds "
                    f"{labels[bad].iloc[0]} at {first}; labels must be 0 (normal) or 1 (anomaly)"
                )
            out["label"] = labels.astype(np.int8).to_numpy()
        yield out
