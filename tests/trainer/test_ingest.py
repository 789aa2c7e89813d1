"""ingest: synthetic ISS-like telemetry and the NAB series."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainer import ingest


def _args(out: Path, **kw: object) -> argparse.Namespace:
    """ingest's arguments as its CLI parses them, with 12,000 rows at 10min unless ``kw`` says otherwise."""
    from trainer.__main__ import build_parser

    args = build_parser().parse_args(["ingest", "--out", str(out), "--rows", "12000", "--freq", "10min"])
    for key, value in kw.items():
        setattr(args, key, value)
    return args


def _read(out: Path) -> pd.DataFrame:
    return pd.concat(pd.read_parquet(f) for f in sorted(out.glob("month=*/*.parquet"))).reset_index(drop=True)


def test_synthetic_is_partitioned_by_month_and_ends_at_end(tmp_path: Path) -> None:
    ingest.run(_args(tmp_path / "d", end="2026-03-01T00:00:00Z"))
    months = sorted(p.name for p in (tmp_path / "d").glob("month=*"))
    # 12k rows x 10 min = 83.3 days before 2026-03-01 -> Dec, Jan, Feb.
    assert months == ["month=2025-12", "month=2026-01", "month=2026-02"]
    df = _read(tmp_path / "d")
    assert len(df) == 12_000
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2026-02-28 23:50:00")
    assert df["timestamp"].is_monotonic_increasing
    for month in months:
        part = pd.read_parquet(next((tmp_path / "d" / month).glob("*.parquet")))
        assert (part["timestamp"].dt.strftime("month=%Y-%m") == month).all()
    meta = json.loads((tmp_path / "d" / "metadata.json").read_text())
    assert meta["rows"] == 12_000 and (tmp_path / "d" / "_SUCCESS").exists()


def test_synthetic_channels_cycles_correlations_and_anomalies(tmp_path: Path) -> None:
    ingest.run(_args(tmp_path / "d", rows=40_000, freq="1min"))
    df = _read(tmp_path / "d")
    channels = [c for c in df.columns if c not in ("timestamp", "label", "anomaly_type")]
    assert len(channels) >= 8
    normal = df[df["label"] == 0]
    # Power system: solar current drives battery voltage (lagged, but strongly correlated).
    assert normal["solar_array_current"].corr(normal["battery_voltage"]) > 0.4
    lagged = df["solar_array_current"].shift(12)
    assert (
        lagged.corr(df["battery_voltage"])
        > normal["solar_array_current"].corr(normal["battery_voltage"]) + 0.2
    )
    # Coupled coolant loops.
    assert normal["coolant_loop_a_temp"].corr(normal["coolant_loop_b_temp"]) > 0.9
    # The dominant period of the solar current is the ~92.7-minute orbit.
    x = df["solar_array_current"].to_numpy() - df["solar_array_current"].mean()
    spec = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), d=1.0)
    period = 1 / freqs[1:][np.argmax(spec[1:])]
    assert 90 < period < 95
    # The crew day shows in CO2: its spectrum has a peak at the 1440-minute period.
    c = df["co2_partial_pressure"].to_numpy() - df["co2_partial_pressure"].mean()
    cspec = np.abs(np.fft.rfft(c))
    day_bin = round(len(c) / 1440)
    assert cspec[day_bin] > 20 * np.median(cspec[1:])
    # Every anomaly kind is injected and labelled.
    kinds = set(df.loc[df["label"] == 1, "anomaly_type"].unique())
    assert kinds == {1, 2, 3, 4}
    assert ((df["anomaly_type"] > 0) == (df["label"] == 1)).all()
    assert 0.01 < df["label"].mean() < 0.2


def test_synthetic_is_deterministic_by_seed(tmp_path: Path) -> None:
    ingest.run(_args(tmp_path / "a", seed=7))
    ingest.run(_args(tmp_path / "b", seed=7))
    ingest.run(_args(tmp_path / "c", seed=8))
    a, b, c = _read(tmp_path / "a"), _read(tmp_path / "b"), _read(tmp_path / "c")
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["cabin_temp"], c["cabin_temp"])


def test_start_and_end_select_the_window(tmp_path: Path) -> None:
    ingest.run(_args(tmp_path / "d", rows=None, freq="1h", start="2026-01-01", end="2026-04-01"))
    df = _read(tmp_path / "d")
    assert len(df) == 90 * 24
    assert df["timestamp"].iloc[0] == pd.Timestamp("2026-01-01")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"source": "kaggle"}, "--source 'kaggle': no such file or folder .* or synthetic or nab"),
        ({"rows": 10}, r"rows must be in \[1000"),
        ({"freq": "often"}, "--freq 'often' is not a duration"),
        ({"end": "yesterday-ish"}, "--end 'yesterday-ish' is not an ISO timestamp"),
        ({"start": "2026-02-01", "end": "2026-01-01", "rows": None}, "the data window is empty"),
        ({"out": ""}, "--out is missing"),
    ],
)
def test_bad_input_is_rejected_before_writing(tmp_path: Path, kw: dict[str, object], message: str) -> None:
    args = _args(tmp_path / "d")
    for k, v in kw.items():
        setattr(args, k, v)
    with pytest.raises(ValueError, match=message):
        ingest.run(args)
    assert not (tmp_path / "d").exists()


def test_nab_series_with_its_known_anomaly_windows(tmp_path: Path) -> None:
    ingest.run(_args(tmp_path / "nab", source="nab"))
    df = _read(tmp_path / "nab")
    assert len(df) == 22_683
    assert list(df.columns) == ["timestamp", "machine_temperature", "label", "anomaly_type"]
    # The labels are exactly NAB's four known windows of this series.
    expected = np.zeros(len(df), dtype=bool)
    for lo, hi in ingest.NAB_WINDOWS:
        expected |= (df["timestamp"] >= pd.Timestamp(lo)).to_numpy() & (
            df["timestamp"] <= pd.Timestamp(hi)
        ).to_numpy()
    assert (df["label"].to_numpy() == 1).tolist() == expected.tolist()
    assert int(df["label"].sum()) == 4 * 567
    months = sorted(p.name for p in (tmp_path / "nab").glob("month=*"))
    assert months == ["month=2013-12", "month=2014-01", "month=2014-02"]


def test_nab_window_outside_the_series_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ingest.IngestError, match="selects no NAB rows"):
        ingest.run(_args(tmp_path / "nab", source="nab", start="2020-01-01", end="2020-02-01"))


def test_a_step_process_reports_its_start_up_apart_from_its_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    from trainer.__main__ import main, preload

    done = subprocess.run(
        [sys.executable, "-m", "trainer", "ingest", "--out", str(tmp_path / "a"), "--rows", "2000"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    summary = json.loads(done.stdout.strip().splitlines()[-1].removeprefix("TRAINER_SUMMARY "))
    # its own process: the interpreter and pandas/pyarrow imported before the work's clock starts
    assert summary["import_seconds"] > 0 and summary["compute_seconds"] >= 0
    # called inside another program there is no start-up of its own to report
    assert main(["ingest", "--out", str(tmp_path / "b"), "--rows", "2000"]) == 0
    inner = json.loads(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("TRAINER_SUMMARY "))
    assert "import_seconds" not in inner
    s3_args = argparse.Namespace(data="s3://bucket/raw", out="s3://bucket/prep")
    assert preload("train", s3_args) == ["numpy", "pandas", "pyarrow.parquet", "torch", "boto3"]
    assert "torch" in sys.modules and "boto3" in sys.modules
