"""serve: a real kserve ModelServer answering V1 and V2 on 127.0.0.1."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest

from trainer.serve import AnomalyScorer

NAME = "anomaly-vae"


@pytest.fixture(scope="module")
def server(pipeline: Any, tools: Any) -> Iterator[str]:
    port = tools.free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer",
            "serve",
            "--model",
            str(pipeline.evaluation / "model.pt"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/v2/models/{NAME}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        listening = {c.laddr.ip for c in psutil.Process(proc.pid).connections("tcp") if c.status == "LISTEN"}
        assert listening == {"127.0.0.1"}, f"listeners on {listening}"
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def test_rows(pipeline: Any) -> pd.DataFrame:
    files = sorted(glob.glob(str(pipeline.prep / "test" / "*.parquet")))
    return pd.concat(pd.read_parquet(f) for f in files)


def test_v1_scores_match_the_model_and_flags_follow_threshold(
    server: str, pipeline: Any, test_rows: pd.DataFrame
) -> None:
    scorer = AnomalyScorer(str(pipeline.evaluation / "model.pt"))
    rows = test_rows[scorer.features].to_numpy()[:200]
    res = httpx.post(f"{server}/v1/models/{NAME}:predict", json={"instances": rows.tolist()}, timeout=30)
    assert res.status_code == 200, res.text
    body = res.json()
    scores = np.array([p["score"] for p in body["predictions"]])
    flags = np.array([p["anomaly"] for p in body["predictions"]])
    expected, _ = scorer.score(rows)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)
    assert body["threshold"] == pytest.approx(scorer.threshold)
    assert (flags == (scores >= body["threshold"])).all()


def test_the_served_trace_scores_as_the_eager_model_does(pipeline: Any, test_rows: pd.DataFrame) -> None:
    import torch

    from trainer.model import anomaly_scores, scale

    scorer = AnomalyScorer(str(pipeline.evaluation / "model.pt"))
    assert scorer.forward is not scorer.model  # the trace serves
    for n in (1, 7, 200):  # any batch size, not only the traced one
        rows = test_rows[scorer.features].to_numpy()[:n]
        x = torch.from_numpy(scale(rows, scorer.scaler))
        for score in (scorer.artifact.get("score"), {"mix": 0.5, "mse_scale": 0.4, "kl_scale": 5.0}):
            eager = anomaly_scores(scorer.model, x, score)
            traced = anomaly_scores(scorer.forward, x, score)
            assert traced.shape == (n,)
            np.testing.assert_allclose(traced, eager, rtol=1e-6, atol=1e-7)


def test_v1_accepts_raw_channel_rows(server: str, pipeline: Any, test_rows: pd.DataFrame) -> None:
    scorer = AnomalyScorer(str(pipeline.evaluation / "model.pt"))
    rows = test_rows[scorer.channels].to_numpy()[:48]
    res = httpx.post(f"{server}/v1/models/{NAME}:predict", json={"instances": rows.tolist()}, timeout=30)
    assert res.status_code == 200, res.text
    scores = [p["score"] for p in res.json()["predictions"]]
    assert len(scores) == 48
    # Once the rolling window is full, the request-side features equal preprocess's, and so do the scores.
    full, _ = scorer.score(test_rows[scorer.features].to_numpy()[:48])
    np.testing.assert_allclose(scores[12:], full[12:], rtol=1e-3, atol=1e-5)


def test_v2_infer(server: str, test_rows: pd.DataFrame, pipeline: Any) -> None:
    scorer = AnomalyScorer(str(pipeline.evaluation / "model.pt"))
    rows = test_rows[scorer.features].to_numpy(dtype=np.float32)[:64]
    req = {
        "inputs": [
            {"name": "x", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
        ]
    }
    res = httpx.post(f"{server}/v2/models/{NAME}/infer", json=req, timeout=30)
    assert res.status_code == 200, res.text
    out = {o["name"]: o for o in res.json()["outputs"]}
    assert out["score"]["shape"] == [64] and out["score"]["datatype"] == "FP32"
    assert out["anomaly"]["datatype"] == "BOOL"
    expected, flags = scorer.score(rows)
    np.testing.assert_allclose(out["score"]["data"], expected, rtol=1e-4, atol=1e-6)
    assert out["anomaly"]["data"] == flags.tolist()
    meta = httpx.get(f"{server}/v2/models/{NAME}", timeout=10).json()
    assert meta["name"] == NAME


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("v1", {"instances": [[1.0, 2.0, 3.0]]}, "got width 3"),
        ("v1", {"instances": []}, "expected a 2-D [rows, width] input"),
        ("v1", {"instances": [["a"] * 30]}, "rows must be numbers"),
        ("v1", {"instances": [[1.0] * 30, [1.0] * 29]}, "rows must be numbers in equal-length lists"),
        ("v1", {"rows": [[1.0] * 30]}, '{"instances": [[...], ...]}'),
        (
            "v2",
            {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]},
            "got width 3",
        ),
        (
            "v2",
            {
                "inputs": [
                    {"name": "a", "shape": [1, 10], "datatype": "FP32", "data": [0.0] * 10},
                    {"name": "b", "shape": [1, 10], "datatype": "FP32", "data": [0.0] * 10},
                ]
            },
            "exactly one input tensor",
        ),
    ],
)
def test_wrong_shapes_get_400_with_a_clear_message(
    server: str, path: str, body: dict[str, Any], message: str
) -> None:
    url = f"{server}/v1/models/{NAME}:predict" if path == "v1" else f"{server}/v2/models/{NAME}/infer"
    res = httpx.post(url, json=body, timeout=30)
    assert res.status_code == 400, res.text
    assert message in res.json()["error"]


def test_corrupt_artifact_fails_at_load(tmp_path: Path, tools: Any) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x00garbage")
    res = tools.run("serve", "--model", str(bad), "--port", str(tools.free_port()), timeout=120)
    assert res.returncode == 2
    assert "is not a readable model artifact" in res.stderr
    with pytest.raises(ValueError, match=r"--model .*absent\.pt.*no such file"):
        AnomalyScorer(str(tmp_path / "absent.pt"))


def test_inference_routes_match_first_and_every_route_still_answers(server: str) -> None:
    import fastapi

    from trainer.serve import INFERENCE_PATHS, _inference_first, import_kserve

    import_kserve()
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.rest.server import RESTServer

    app = fastapi.FastAPI()
    rest = RESTServer.__new__(RESTServer)  # only its route registration, on a bare app
    rest.dataplane, rest.model_repository_extension = DataPlane(ModelRepository()), None
    rest._register_endpoints(app)
    assert _inference_first(app.router.routes), (
        "kserve's inference routes were not found: the order is kserve's"
    )

    def first_paths(routes: list[Any]) -> list[str]:
        head = routes[0]
        inner = getattr(getattr(head, "original_router", None), "routes", None)
        return first_paths(inner) if isinstance(inner, list) else [getattr(head, "path", "")]

    assert first_paths(app.router.routes)[0] in INFERENCE_PATHS
    # the served app: only the order changed, every route kserve registers still answers
    for path in (
        "/",
        "/v1/models",
        f"/v1/models/{NAME}",
        "/v2/health/live",
        f"/v2/models/{NAME}/ready",
        "/metrics",
    ):
        assert httpx.get(f"{server}{path}", timeout=10).status_code == 200, path
