"""``preprocess``: Dask resampling, windowed features, a time split and a train-only scaler.

Reads the ingest dataset out of core (one parquet file per Dask partition), resamples to ``--freq``
(channels by mean, labels by max), adds per-channel rolling mean and rolling std over ``--window`` points
(the rolling std exposes stuck sensors, the rolling mean drifts and level shifts), splits by time into
train/val/test, fits a standard scaler on train only and writes::

    <out>/train/*.parquet  <out>/val/*.parquet  <out>/test/*.parquet   (timestamp index, features, label)
    <out>/scaler.json   {"features": [...], "mean": [...], "std": [...], "channels": [...], "window": W}
    <out>/meta.json     split boundaries and row counts

Features are written unscaled; train/evaluate/serve apply the scaler, so serve can take raw values.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("trainer.preprocess")

SPLITS = ("train", "val", "test")
NON_CHANNELS = ("timestamp", "label", "anomaly_type")


class PreprocessError(ValueError):
    """Bad preprocess arguments or input."""


def feature_names(channels: list[str]) -> list[str]:
    """Feature columns in model order: channels, then rolling means, then rolling stds."""
    return [*channels, *(f"{c}__rmean" for c in channels), *(f"{c}__rstd" for c in channels)]


@contextlib.contextmanager
def dask_client(scheduler: str, workers: int, timeout: float = 20.0) -> Iterator[Any]:
    """A Dask client: a LocalCluster ("local"), in-process threads ("threads"), or an existing scheduler
    (see :func:`pick_scheduler` for ``auto``)."""
    import dask

    if scheduler == "threads":
        with dask.config.set(scheduler="threads", num_workers=workers):
            yield None
        return
    from distributed import Client, LocalCluster

    if scheduler == "local":
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                # In-process workers: no pickling between processes, which dominates on 2 cores, and
                # no TCP listeners at all (inproc transport). Partitions still stream, so memory stays bounded.
                processes=False,
                memory_limit="3GiB",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout=f"{timeout}s")
    except OSError as exc:
        raise PreprocessError(f"--scheduler {scheduler!r}: cannot reach the Dask scheduler ({exc})") from exc
    with client:
        yield client


def _bound(text: str | None, arg: str) -> Any:
    import pandas as pd

    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise PreprocessError(f"{arg} {text!r} is not an ISO timestamp") from exc
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def label_events(positives: Any, freq: Any) -> list[tuple[Any, Any]]:
    """Labelled events as (first, last) timestamps: runs of positive rows no more than ``freq`` apart."""
    if len(positives) == 0:
        return []
    stamps = list(positives.sort_values())
    out = [[stamps[0], stamps[0]]]
    for ts in stamps[1:]:
        if ts - out[-1][1] <= freq:
            out[-1][1] = ts
        else:
            out.append([ts, ts])
    return [(a, b) for a, b in out]


@dataclass(frozen=True)
class SplitPlan:
    """Where validation and test start, and what the plan could not do.

    Attributes:
        val_start: First timestamp of the validation split (train is before it).
        test_start: First timestamp of the test split.
        events: Labelled events per split.
        notes: Why a split holds no event when the data could not give it one.
    """

    val_start: Any
    test_start: Any
    events: dict[str, int]
    notes: list[str]


def plan_split(t0: Any, t1: Any, train_frac: float, val_frac: float, evs: list[tuple[Any, Any]]) -> SplitPlan:
    """Time-ordered train/validation/test boundaries that never cut a labelled event in two.

    Starts from the fractions; a boundary inside an event moves to the event's start. When the data has
    events and test would hold none, test starts at the last event (validation keeps its length before
    it); when validation would hold none, it starts at the latest event train can spare. Train keeps at
    least half of its share and validation a fifth of its own; notes say when that is not possible.
    """
    span = t1 - t0
    b1, b2 = t0 + span * train_frac, t0 + span * (train_frac + val_frac)
    min_train, min_val = span * train_frac / 2, span * val_frac / 5

    def unsplit(b: Any) -> Any:
        for first, last in evs:
            if first < b <= last:
                return first
        return b

    b1, b2 = unsplit(b1), unsplit(b2)
    notes: list[str] = []
    if evs and not any(first >= b2 for first, _ in evs):
        last = evs[-1][0]
        if last - t0 >= min_train + min_val:
            # Test starts at the last event; validation keeps its length before it where train allows.
            b2 = last
            b1 = unsplit(max(min(b1, b2 - span * val_frac), t0 + min_train))
        else:
            notes.append("the test split holds no labelled event: the data has none late enough to spare")
    if evs and not any(b1 <= first < b2 for first, _ in evs):
        movable = [first for first, _ in evs if first < b1 and first - t0 >= min_train]
        if movable:
            b1 = movable[-1]
        else:
            notes.append(
                "the validation split holds no labelled event: thresholds come from the labelled rate there"
            )
    counts = {
        "train": sum(first < b1 for first, _ in evs),
        "val": sum(b1 <= first < b2 for first, _ in evs),
        "test": sum(first >= b2 for first, _ in evs),
    }
    return SplitPlan(b1, b2, counts, notes)


def build(in_dir: str, out_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the Dask graph from the local dataset ``in_dir`` into the local staging dir ``out_dir``."""
    import dask
    import dask.dataframe as dd
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    files = sorted(glob.glob(os.path.join(in_dir, "month=*", "*.parquet")))
    if not files:
        raise PreprocessError(f"--data {args.data!r} holds no month=*/ parquet files; run ingest first")
    meta_path = os.path.join(in_dir, "metadata.json")
    source_meta = json.loads(Path(meta_path).read_text()) if os.path.exists(meta_path) else {}
    import pyarrow.parquet as pq

    schema_names = pq.read_schema(files[0]).names
    channels = [c for c in schema_names if c not in NON_CHANNELS and c != "month"]
    if "timestamp" not in schema_names:
        raise PreprocessError(f"--data {args.data!r} has no timestamp column; run ingest to make it")
    labelled = "label" in schema_names
    cols = [*channels, "label"] if labelled else channels
    ddf = dd.read_parquet(files, columns=cols, index="timestamp", calculate_divisions=True)
    if not channels:
        raise PreprocessError(f"--data {args.data!r} has no feature columns besides timestamp and label")
    if not ddf.known_divisions:
        raise PreprocessError(f"--data {args.data!r}: timestamps are not sorted across files; re-run ingest")
    if not labelled:
        # Unlabelled data trains as well; evaluate reports it as not evaluable and the gate's policy decides.
        ddf = ddf.assign(label=0)
    lo, hi = ddf.divisions[0], ddf.divisions[-1]
    start, end = _bound(args.start, "--start"), _bound(args.end, "--end")
    t0 = max(lo, start) if start is not None else lo
    t1 = min(hi, end - pd.Timedelta(1, "ns")) if end is not None else hi
    if t0 >= t1:
        raise PreprocessError(
            f"the data window [{args.start}, {args.end}) is empty: the dataset spans {lo} to {hi}; "
            "pass --start/--end inside it"
        )
    ddf = ddf.loc[t0:t1]
    log.info("preprocess: %d files, window %s .. %s, %d partitions", len(files), t0, t1, ddf.npartitions)
    freq = args.freq or source_meta.get("freq") or "1min"
    try:
        freq_td = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        raise PreprocessError(f"--freq {freq!r} is not a duration (e.g. 5min)") from exc
    span_points = int((t1 - t0) / freq_td)
    if span_points < 10 * args.window:
        raise PreprocessError(
            f"the data window holds ~{span_points} points at {freq}: too few for --window {args.window}; "
            "widen the window or lower --freq/--window"
        )
    rule = to_offset(freq_td)
    values = ddf[channels].astype("float32").resample(rule).mean()
    labels = ddf["label"].resample(rule).max()
    frame = values.assign(label=labels).dropna()
    rmean = frame[channels].rolling(args.window, min_periods=1).mean()
    rstd = frame[channels].rolling(args.window, min_periods=1).std().fillna(0.0)
    rmean.columns = [f"{c}__rmean" for c in channels]
    rstd.columns = [f"{c}__rstd" for c in channels]
    feats = dd.concat([frame[channels], rmean, rstd], axis=1).astype("float32")
    feats = feats.assign(label=frame["label"].astype("int8"))
    positives = labels[labels > 0].index.compute() if labelled else pd.DatetimeIndex([])
    plan = plan_split(t0, t1, args.train_frac, args.val_frac, label_events(positives, freq_td))
    for note in plan.notes:
        log.warning("preprocess: %s", note)
    b1, b2 = plan.val_start, plan.test_start
    parts = {
        "train": feats.loc[: b1 - pd.Timedelta(1, "ns")],
        "val": feats.loc[b1 : b2 - pd.Timedelta(1, "ns")],
        "test": feats.loc[b2:],
    }
    names = feature_names(channels)
    train_x = parts["train"][names]
    writes = [
        parts[sp].to_parquet(
            os.path.join(out_dir, sp), write_index=True, compute=False, write_metadata_file=False
        )
        for sp in SPLITS
    ]
    # One pass over the data: features are written unscaled, so the train statistics and the three writes
    # share a single graph (read + resample + rolling happen once per partition).
    mean, std, *counts = dask.compute(
        train_x.mean(), train_x.std(), *(parts[sp].shape[0] for sp in SPLITS), *writes
    )[: 2 + len(SPLITS)]
    rows = dict(zip(SPLITS, (int(c) for c in counts), strict=True))
    for split, n in rows.items():
        if n == 0:
            raise PreprocessError(
                f"the {split} split is empty: widen the data window or change --train-frac/--val-frac"
            )
    std = std.fillna(1.0)
    std[std < 1e-6] = 1.0
    scaler = {
        "features": names,
        "channels": channels,
        "mean": [float(mean[n]) for n in names],
        "std": [float(std[n]) for n in names],
        "window": args.window,
        "freq": to_offset(freq_td).freqstr,
        "labelled": labelled,
    }
    meta = {
        "source": source_meta.get("source"),
        "window_start": str(t0),
        "window_end": str(t1),
        "freq": to_offset(freq_td).freqstr,
        "boundaries": {"val_start": str(b1), "test_start": str(b2)},
        "rows": rows,
        "labelled": labelled,
        "events": plan.events,
        "split_notes": plan.notes,
    }
    with open(os.path.join(out_dir, "scaler.json"), "w") as fh:
        json.dump(scaler, fh, indent=2)
    with open(os.path.join(out_dir, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=2)
    log.info("preprocess: rows %s", rows)
    return meta


def pick_scheduler(scheduler: str) -> str:
    """``auto`` is Dask's threads in this process: measured on 2 cores (bench/preprocess_scale.py) they
    beat a LocalCluster at every size, 2.1x at 10M rows (12.6 s against 26.7 s) with the same flat memory
    (405 MiB against 415), since a LocalCluster pays its start-up and moves partitions between processes.
    Any other choice (``local``, ``threads``, a scheduler's address) stands as given."""
    return "threads" if scheduler == "auto" else scheduler


def run(args: argparse.Namespace) -> dict[str, Any]:
    from trainer import io

    io.parse_uri(args.data, arg="--data")
    io.parse_uri(args.out, arg="--out")
    if not 2 <= args.window <= 10_000:
        raise PreprocessError(f"--window must be in [2, 10000]; got {args.window}")
    if not (0 < args.train_frac < 1 and 0 < args.val_frac < 1 and args.train_frac + args.val_frac < 1):
        raise PreprocessError("--train-frac and --val-frac must be in (0, 1) with a sum below 1")
    if args.workers < 1:
        raise PreprocessError(f"--workers must be >= 1; got {args.workers}")
    with io.local_input_dir(args.data, arg="--data") as in_dir:
        scheduler = pick_scheduler(args.scheduler)
        log.info("preprocess: scheduler %s", scheduler)
        with (
            dask_client(scheduler, args.workers, getattr(args, "scheduler_timeout", 20.0)),
            io.output_dir(args.out, arg="--out") as staging,
        ):
            meta = build(in_dir, staging, args)
    return {
        "outputs": {"features": args.out, "scaler": f"{args.out.rstrip('/')}/scaler.json"},
        "metrics": {f"{k}_rows": v for k, v in meta["rows"].items()},
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="ingest dataset URI")
    p.add_argument("--out", required=True, help="output URI for splits + scaler")
    p.add_argument("--freq", default=None, help="resample interval (default: the data's own)")
    p.add_argument("--window", type=int, default=12, help="rolling feature window in points (default 12)")
    p.add_argument("--train-frac", type=float, default=0.7)
    p.add_argument("--val-frac", type=float, default=0.15)
    p.add_argument("--start", default=None, help="keep data from this time (ISO)")
    p.add_argument("--end", default=None, help="keep data before this time (ISO)")
    p.add_argument(
        "--scheduler",
        default="auto",
        help="auto (default: threads), local (a LocalCluster of --workers), threads, or a scheduler address",
    )
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    p.add_argument("--scheduler-timeout", type=float, default=20.0, help="seconds to reach --scheduler")
