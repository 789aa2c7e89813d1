"""ingest from a team's own dataset: CSV and partitioned Parquet, the window, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trainer import ingest
from trainer.__main__ import build_parser

START = pd.Timestamp("2026-01-01T00:00:00Z")


def frame(rows: int = 2880, freq: str = "5min") -> pd.DataFrame:
    """Two numeric channels, a text column, a 0/1 label with two events, UTC timestamps."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "ts": pd.date_range(START, periods=rows, freq=freq),
            "temp": rng.normal(20, 1, rows),
            "load": rng.integers(0, 100, rows),
            "site": ["north"] * rows,
            "is_anomaly": 0,
        }
    )
    df.loc[100:110, "is_anomaly"] = 1
    df.loc[2000:2005, "is_anomaly"] = 1
    return df


def run(out: Path, source: Path | str, *flags: str) -> dict[str, Any]:
    args = build_parser().parse_args(["ingest", "--out", str(out), "--source", str(source), *flags])
    return ingest.run(args)


def read(out: Path) -> pd.DataFrame:
    return pd.concat(pd.read_parquet(f) for f in sorted(out.glob("month=*/*.parquet"))).reset_index(drop=True)


def write_partitioned(df: pd.DataFrame, root: Path) -> Path:
    for day, rows in df.groupby(df["ts"].dt.strftime("%Y-%m-%d")):
        (root / f"date={day}").mkdir(parents=True)
        rows.to_parquet(root / f"date={day}" / "part-0.parquet", index=False)
    (root / "_SUCCESS").write_text("")  # markers and metadata are skipped
    return root


def test_csv_with_labels_columns_and_window(tmp_path: Path) -> None:
    df = frame()
    df.to_csv(tmp_path / "data.csv", index=False)
    flags = ["--time-column", "ts", "--label-column", "is_anomaly", "--end", "2026-01-10T00:00:00Z"]
    result = run(tmp_path / "out", tmp_path / "data.csv", *flags, "--lookback", "5D")
    out = read(tmp_path / "out")
    # [end - 5 days, end): exactly the rows of 2026-01-05 .. 2026-01-09 at 5 minutes.
    assert len(out) == 5 * 288 == result["metrics"]["rows"]
    assert out["timestamp"].iloc[0] == pd.Timestamp("2026-01-05") and out["timestamp"].iloc[
        -1
    ] < pd.Timestamp("2026-01-10")
    assert list(out.columns) == ["timestamp", "temp", "load", "label"]  # numeric columns only, by default
    assert out["label"].sum() == 6  # only the second event is in the window
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["channels"] == ["temp", "load"] and meta["labelled"] and meta["freq"] == "300s"


def test_daily_dates_without_times(tmp_path: Path) -> None:
    days = frame(rows=400, freq="1D")
    days["ts"] = days["ts"].dt.strftime("%Y-%m-%d")  # a date column: pyarrow reads it as date32
    days.to_csv(tmp_path / "daily.csv", index=False)
    run(
        tmp_path / "out",
        tmp_path / "daily.csv",
        "--time-column",
        "ts",
        "--end",
        "2026-06-01",
        "--lookback",
        "150D",
    )
    out = read(tmp_path / "out")
    assert len(out) == 150 and out["timestamp"].iloc[0] == pd.Timestamp("2026-01-02")
    assert json.loads((tmp_path / "out" / "metadata.json").read_text())["freq"] == "86400s"


def test_partitioned_parquet_folder_unlabelled_and_lookback_from_the_last_row(tmp_path: Path) -> None:
    write_partitioned(frame(), tmp_path / "ds")
    run(
        tmp_path / "out",
        tmp_path / "ds",
        "--time-column",
        "ts",
        "--feature-columns",
        "temp",
        "--lookback",
        "2D",
    )
    out = read(tmp_path / "out")
    assert list(out.columns) == ["timestamp", "temp"]  # no label column: unlabelled
    assert len(out) == 2 * 288  # the last two days of the data
    assert out["timestamp"].is_monotonic_increasing and out["timestamp"].iloc[-1] == pd.Timestamp(
        "2026-01-10 23:55"
    )


def test_file_uri_and_preprocess_of_unlabelled_data(tmp_path: Path) -> None:
    from trainer import preprocess

    frame().drop(columns=["is_anomaly"]).to_parquet(tmp_path / "data.parquet", index=False)
    run(tmp_path / "raw", f"file://{tmp_path}/data.parquet", "--time-column", "ts")
    args = build_parser().parse_args(
        [
            "preprocess",
            "--data",
            str(tmp_path / "raw"),
            "--out",
            str(tmp_path / "prep"),
            "--scheduler",
            "threads",
        ]
    )
    preprocess.run(args)
    scaler = json.loads((tmp_path / "prep" / "scaler.json").read_text())
    meta = json.loads((tmp_path / "prep" / "meta.json").read_text())
    assert scaler["labelled"] is False and scaler["channels"] == ["temp", "load"]
    assert meta["events"] == {"train": 0, "val": 0, "test": 0} and sum(meta["rows"].values()) == 2880


def _unsorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[[*range(0, 500), *range(600, 2880), *range(500, 600)]]


def _duplicated(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df.iloc[:1000], df.iloc[999:]])


def _bad_label(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(is_anomaly=df["is_anomaly"].where(df.index != 700, 2))


@pytest.mark.parametrize(
    ("change", "flags", "message"),
    [
        (None, ["--time-column", "when"], "has no time column 'when'"),
        (
            None,
            ["--time-column", "ts", "--feature-columns", "temp,pressure"],
            r"no feature column\(s\) \['pressure'\]",
        ),
        (
            None,
            ["--time-column", "ts", "--feature-columns", "site"],
            "feature column 'site' is string, not numeric",
        ),
        (None, ["--time-column", "ts", "--label-column", "label"], "has no label column 'label'"),
        (None, ["--time-column", "site"], "time column 'site' is string, not a timestamp"),
        (None, ["--time-column", "ts", "--end", "2025-01-01"], "holds 0 rows; at least 120"),
        (None, ["--time-column", "ts", "--lookback", "1h", "--end", "2026-01-05"], "holds 12 rows"),
        (None, ["--time-column", "ts", "--lookback", "a while"], "--lookback 'a while' is not a duration"),
        (_unsorted, ["--time-column", "ts"], "timestamps must increase; .* comes after"),
        (_duplicated, ["--time-column", "ts"], "timestamps must increase; 2026-01-04T11:15.* is duplicated"),
        (_bad_label, ["--time-column", "ts", "--label-column", "is_anomaly"], "holds 2 at 2026-01-03T10:20"),
    ],
)
def test_bad_dataset_fails_before_anything_is_published(
    tmp_path: Path, change: Any, flags: list[str], message: str
) -> None:
    df = frame() if change is None else change(frame())
    df.to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(ValueError, match=message):
        run(tmp_path / "out", tmp_path / "data.csv", *flags)
    assert not (tmp_path / "out").exists()


def test_folder_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match=r"holds no \.csv or \.parquet files"):
        run(tmp_path / "out", tmp_path / "empty")
    mixed = write_partitioned(frame(), tmp_path / "mixed")
    frame().to_csv(mixed / "extra.csv", index=False)
    with pytest.raises(ValueError, match="mixes CSV and Parquet files"):
        run(tmp_path / "out", mixed, "--time-column", "ts")
    assert not (tmp_path / "out").exists()
