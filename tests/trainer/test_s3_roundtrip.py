"""Every step against a real S3 server (SeaweedFS on 127.0.0.1) through s3:// URIs."""

from __future__ import annotations

import io as bytes_io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from kubeflow_bridge.local.s3 import S3Server


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(data_dir=str(tmp_path_factory.mktemp("s3")), buckets=("mlops",)) as server:
        yield server


def test_pipeline_round_trip_through_s3(
    s3: S3Server, tools: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = s3.env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    client = s3._client()
    tools.in_process("ingest", "--out", "s3://mlops/raw", "--rows", "6000", "--freq", "10min")
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="mlops", Prefix="raw/")["Contents"]}
    assert "raw/_SUCCESS" in keys and "raw/metadata.json" in keys
    assert any(k.startswith("raw/month=") and k.endswith(".parquet") for k in keys)
    tools.in_process(
        "preprocess", "--data", "s3://mlops/raw", "--out", "s3://mlops/prep", "--scheduler", "threads"
    )
    res = tools.ok(
        tools.run(
            "train", "--data", "s3://mlops/prep", "--model-out", "s3://mlops/models/vae.pt", "--metrics-out",
            "s3://mlops/models/metrics.json", "--checkpoint-dir", "s3://mlops/ckpt", *tools.SMALL_TRAIN,
            "--summary-out", "s3://mlops/models/summary.json", env=env,
        )
    )  # fmt: skip
    assert res.summary["outputs"]["model"] == "s3://mlops/models/vae.pt"
    stored = json.loads(client.get_object(Bucket="mlops", Key="models/summary.json")["Body"].read())
    assert stored["step"] == "train" and stored["outputs"] == res.summary["outputs"]
    artifact = torch.load(
        bytes_io.BytesIO(client.get_object(Bucket="mlops", Key="models/vae.pt")["Body"].read()),
        weights_only=True,
    )
    assert artifact["format"] == "kubeflow-bridge/vae-anomaly"
    assert client.head_object(Bucket="mlops", Key="ckpt/checkpoint.pt")["ContentLength"] > 0
    tools.in_process(
        "evaluate",
        "--data",
        "s3://mlops/prep",
        "--model",
        "s3://mlops/models/vae.pt",
        "--out",
        "s3://mlops/eval",
    )
    metrics = json.loads(client.get_object(Bucket="mlops", Key="eval/metrics.json")["Body"].read())
    assert 0 <= metrics["composite_f1"] <= 1
    assert client.head_object(Bucket="mlops", Key="eval/_SUCCESS")


def test_incomplete_s3_dataset_is_refused(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.__main__ import main

    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    client = s3._client()
    client.put_object(Bucket="mlops", Key="half/month=2026-01/part-00000.parquet", Body=b"partial")
    assert main(["preprocess", "--data", "s3://mlops/half", "--out", "s3://mlops/half-prep"]) == 2
    assert "incomplete (no _SUCCESS marker)" in capsys.readouterr().err
    assert "Contents" not in client.list_objects_v2(Bucket="mlops", Prefix="half-prep/")
    code = main(
        ["evaluate", "--data", "s3://mlops/nothing", "--model", "s3://mlops/none.pt", "--out", "s3://mlops/e"]
    )
    assert code == 2
    assert "--model 's3://mlops/none.pt': cannot read from S3" in capsys.readouterr().err


def test_switching_s3_servers_in_one_process_uses_the_current_keys(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # boto3's default session caches the first credentials it resolves; the trainer must not.
    from trainer import io as trainer_io

    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    trainer_io.write_bytes("s3://mlops/switch/a.txt", b"first")
    with S3Server(data_dir=str(tmp_path / "other"), buckets=("other",)) as other:
        assert other.access_key != s3.access_key
        for k, v in other.env().items():
            monkeypatch.setenv(k, v)
        trainer_io.write_bytes("s3://other/b.txt", b"second")
        assert trainer_io.read_bytes("s3://other/b.txt") == b"second"


def test_team_datasets_on_s3_by_window(
    s3: S3Server, tools: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    client = s3._client()
    df = pd.DataFrame(
        {
            "ts": pd.date_range("2026-01-01T00:00:00Z", periods=3 * 288, freq="5min"),
            "temp": [20.0 + (i % 7) for i in range(3 * 288)],
            "label": [1 if 400 <= i < 410 else 0 for i in range(3 * 288)],
        }
    )
    for day, rows in df.groupby(df["ts"].dt.strftime("%Y-%m-%d")):
        buffer = bytes_io.BytesIO()
        rows.to_parquet(buffer, index=False)
        client.put_object(
            Bucket="mlops", Key=f"team/parquet/date={day}/part-0.parquet", Body=buffer.getvalue()
        )
    client.put_object(Bucket="mlops", Key="team/one.csv", Body=df.to_csv(index=False).encode())
    window = [
        "--time-column",
        "ts",
        "--label-column",
        "label",
        "--end",
        "2026-01-03T00:00:00Z",
        "--lookback",
        "1D",
    ]
    for source in ("s3://mlops/team/parquet/", "s3://mlops/team/one.csv"):
        name = "csv" if source.endswith(".csv") else "parquet"
        result = tools.in_process(
            "ingest", "--source", source, "--out", f"s3://mlops/ingested/{name}", *window
        )
        # The data interval's day only: 2026-01-02, 288 rows, holding the labelled event (rows 400..409).
        assert result.summary["metrics"] == {"rows": 288, "labelled_rows": 10}, name
        meta = json.loads(
            client.get_object(Bucket="mlops", Key=f"ingested/{name}/metadata.json")["Body"].read()
        )
        assert meta["start"] == "2026-01-02T00:00:00" and meta["end"] == "2026-01-02T23:55:00"


def test_rewriting_an_s3_dataset_replaces_it_whole(
    s3: S3Server, tools: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A smaller window re-ingested into the same prefix: readers see only the new rows, as locally."""
    from trainer import io as trainer_io

    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    client = s3._client()
    client.put_object(Bucket="mlops", Key="regen-sibling/keep.txt", Body=b"not ours")
    tools.in_process("ingest", "--out", "s3://mlops/regen", "--rows", "20000", "--freq", "1h")
    before = {o["Key"] for o in client.list_objects_v2(Bucket="mlops", Prefix="regen/")["Contents"]}
    tools.in_process("ingest", "--out", "s3://mlops/regen", "--rows", "2000", "--freq", "1h")
    after = {o["Key"] for o in client.list_objects_v2(Bucket="mlops", Prefix="regen/")["Contents"]}
    assert len(after) < len(before) and "regen/_SUCCESS" in after
    with trainer_io.local_input_dir("s3://mlops/regen") as local:
        meta = json.loads((Path(local) / "metadata.json").read_text())
        parts = sorted(Path(local).rglob("*.parquet"))
        import pandas as pd

        rows = sum(len(pd.read_parquet(p)) for p in parts)
    assert rows == 2000 and meta.get("rows", rows) == 2000
    # Only the dataset's own prefix is replaced; a sibling with a common name prefix stays.
    assert client.get_object(Bucket="mlops", Key="regen-sibling/keep.txt")["Body"].read() == b"not ours"
    with (
        pytest.raises(trainer_io.UriError, match="not the bucket root"),
        trainer_io.output_dir("s3://mlops/"),
    ):
        pass
