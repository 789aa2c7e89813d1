"""preprocess: Dask resampling, rolling features, time split, train-only scaler."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainer import ingest, preprocess


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "raw"
    ingest.run(
        argparse.Namespace(
            out=str(out), source="synthetic", rows=12_000, seed=1, freq="10min", end="2026-03-01", start=None
        )
    )
    return out


def _args(data: Path, out: Path, **kw: object) -> argparse.Namespace:
    base = {
        "data": str(data), "out": str(out), "freq": None, "window": 6, "train_frac": 0.7, "val_frac": 0.15,
        "start": None, "end": None, "scheduler": "threads", "workers": 2,
    }  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def _split(out: Path, name: str) -> pd.DataFrame:
    return pd.concat(pd.read_parquet(f) for f in sorted((out / name).glob("*.parquet")))


def test_time_split_rolling_features_and_train_only_scaler(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    result = preprocess.run(_args(raw, out))
    train, val, test = (_split(out, s) for s in preprocess.SPLITS)
    assert len(train) + len(val) + len(test) == 12_000
    assert result["metrics"] == {"train_rows": len(train), "val_rows": len(val), "test_rows": len(test)}
    # Split by time: no overlap, in order, roughly 70/15/15.
    assert train.index.max() < val.index.min() and val.index.max() < test.index.min()
    assert abs(len(train) / 12_000 - 0.7) < 0.01
    scaler = json.loads((out / "scaler.json").read_text())
    channels = scaler["channels"]
    assert scaler["features"] == preprocess.feature_names(channels)
    # Scaler statistics come from the train split only.
    np.testing.assert_allclose(
        scaler["mean"], train[scaler["features"]].mean().to_numpy(), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        scaler["std"], train[scaler["features"]].std().to_numpy(), rtol=1e-3, atol=1e-4
    )
    assert not np.allclose(
        scaler["mean"], pd.concat([train, val, test])[scaler["features"]].mean().to_numpy(), rtol=1e-4
    )
    # Rolling features over the configured window, continuous across splits.
    full = pd.concat([train, val, test])
    c = channels[0]
    np.testing.assert_allclose(
        full[f"{c}__rmean"].to_numpy(),
        full[c].rolling(6, min_periods=1).mean().to_numpy(),
        rtol=1e-4,
        atol=1e-3,
    )
    np.testing.assert_allclose(
        full[f"{c}__rstd"].to_numpy(),
        full[c].rolling(6, min_periods=1).std().fillna(0).to_numpy(),
        rtol=1e-3,
        atol=1e-3,
    )


def test_resample_aggregates_values_by_mean_and_labels_by_max(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    preprocess.run(_args(raw, out, freq="30min"))
    full = pd.concat([_split(out, s) for s in preprocess.SPLITS])
    assert len(full) == 4_000
    src = pd.concat(pd.read_parquet(f) for f in sorted(raw.glob("month=*/*.parquet"))).set_index("timestamp")
    expected = src["cabin_temp"].resample("30min").mean()
    np.testing.assert_allclose(full["cabin_temp"].to_numpy(), expected.to_numpy(), rtol=1e-5)
    assert (full["label"].to_numpy() == src["label"].resample("30min").max().to_numpy()).all()


def test_local_cluster_and_data_window(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    preprocess.run(_args(raw, out, scheduler="local", workers=1, start="2026-01-01", end="2026-02-01"))
    full = pd.concat([_split(out, s) for s in preprocess.SPLITS])
    assert full.index.min() == pd.Timestamp("2026-01-01")
    assert full.index.max() == pd.Timestamp("2026-01-31 23:50")
    assert len(full) == 31 * 144


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"start": "2030-01-01", "end": "2030-02-01"}, "the data window .* is empty"),
        ({"window": 1}, r"--window must be in \[2, 10000\]"),
        ({"train_frac": 0.9, "val_frac": 0.2}, "sum below 1"),
        ({"freq": "sometimes"}, "--freq 'sometimes' is not a duration"),
        ({"scheduler": "tcp://127.0.0.1:1", "scheduler_timeout": 1.0}, "cannot reach the Dask scheduler"),
    ],
)
def test_bad_input(raw: Path, tmp_path: Path, kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        preprocess.run(_args(raw, tmp_path / "prep", **kw))
    assert not (tmp_path / "prep").exists()


def test_missing_or_incomplete_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such directory"):
        preprocess.run(_args(tmp_path / "nothing", tmp_path / "prep"))
    (tmp_path / "half" / "month=2026-01").mkdir(parents=True)
    with pytest.raises(ValueError, match="incomplete"):
        preprocess.run(_args(tmp_path / "half", tmp_path / "prep"))


def _ts(day: float) -> pd.Timestamp:
    return pd.Timestamp("2026-01-01") + pd.Timedelta(days=day)


def test_split_moves_a_boundary_off_an_event() -> None:
    # 100 days; the 70 % boundary (day 70) falls inside the event [69, 71]: the event goes to validation whole.
    plan = preprocess.plan_split(
        _ts(0), _ts(100), 0.7, 0.15, [(_ts(20), _ts(21)), (_ts(69), _ts(71)), (_ts(90), _ts(91))]
    )
    assert plan.val_start == _ts(69) and plan.test_start == _ts(85)
    assert plan.events == {"train": 1, "val": 1, "test": 1} and plan.notes == []


def test_split_gives_test_and_validation_an_event_where_it_can() -> None:
    # All events early: test starts at the latest one, validation keeps its 15 days before it.
    evs = [(_ts(10), _ts(11)), (_ts(50), _ts(51)), (_ts(60), _ts(60.5))]
    plan = preprocess.plan_split(_ts(0), _ts(100), 0.7, 0.15, evs)
    assert (plan.val_start, plan.test_start) == (_ts(45), _ts(60))
    assert plan.events == {"train": 1, "val": 1, "test": 1} and plan.notes == []
    # Validation without an event while train has one to spare: validation starts at it.
    plan = preprocess.plan_split(
        _ts(0), _ts(100), 0.7, 0.15, [(_ts(10), _ts(11)), (_ts(50), _ts(51)), (_ts(90), _ts(91))]
    )
    assert (plan.val_start, plan.test_start) == (_ts(50), _ts(85))
    assert plan.events == {"train": 1, "val": 1, "test": 1}


def test_split_says_when_it_cannot() -> None:
    # One event: test gets it; validation cannot have one (its threshold comes from --contamination).
    plan = preprocess.plan_split(_ts(0), _ts(100), 0.7, 0.15, [(_ts(80), _ts(80.2))])
    assert plan.events == {"train": 0, "val": 0, "test": 1} and plan.notes == [
        "the validation split holds no labelled event: thresholds come from the labelled rate there"
    ]
    # An event so early that train would lose more than half its share stays in train.
    plan = preprocess.plan_split(_ts(0), _ts(100), 0.7, 0.15, [(_ts(5), _ts(6))])
    assert plan.events == {"train": 1, "val": 0, "test": 0} and len(plan.notes) == 2


def test_preprocess_reports_events_per_split(raw: Path, tmp_path: Path) -> None:
    preprocess.run(_args(raw, tmp_path / "prep"))
    meta = json.loads((tmp_path / "prep" / "meta.json").read_text())
    assert meta["labelled"] and meta["split_notes"] == []
    assert min(meta["events"].values()) >= 1
    for split in ("val", "test"):
        first = _split(tmp_path / "prep", split)["label"].iloc[0]
        assert first == 0  # no split starts inside an event


def test_auto_runs_on_threads_and_a_local_cluster_gives_the_same_output(raw: Path, tmp_path: Path) -> None:
    assert preprocess.pick_scheduler("auto") == "threads"
    assert preprocess.pick_scheduler("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    clustered, threaded = tmp_path / "clustered", tmp_path / "threaded"
    preprocess.run(_args(raw, clustered, scheduler="local", workers=1))
    preprocess.run(_args(raw, threaded, scheduler="auto", workers=1))
    for split in preprocess.SPLITS:
        pd.testing.assert_frame_equal(_split(clustered, split), _split(threaded, split))
    assert (clustered / "scaler.json").read_text() == (threaded / "scaler.json").read_text()
