"""Serving latency: p50/p99 and requests/s of `python -m trainer serve` on 127.0.0.1, V1 and V2.

Trains a small model, starts the real kserve ModelServer in a subprocess on a free loopback port, sends a
bounded number of requests per case over one keep-alive connection, back to back and (1-row cases) at a
fixed rate, stops the server. Prints figures and writes bench/results/serve_latency.json.
Goal (issue 17): a 1-row request at 200/s, p50 <= 1.5 ms and p99 <= 3 ms.

    .venv-trainer/bin/python bench/serve_latency.py [--quick] [--requests N] [--rate 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

NAME = "anomaly-vae"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model(tmp: str) -> tuple[str, list[list[float]]]:
    from trainer.__main__ import main

    raw, prep, model = (os.path.join(tmp, n) for n in ("raw", "prep", "model.pt"))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["ingest", "--out", raw, "--rows", "20000", "--log-level", "WARNING"]) == 0
        assert (
            main(
                [
                    "preprocess",
                    "--data",
                    raw,
                    "--out",
                    prep,
                    "--scheduler",
                    "threads",
                    "--log-level",
                    "WARNING",
                ]
            )
            == 0
        )
        assert (
            main(["train", "--data", prep, "--model-out", model, "--epochs", "2", "--log-level", "WARNING"])
            == 0
        )
    import pandas as pd

    scaler = json.loads(Path(prep, "scaler.json").read_text())
    test = pd.concat(pd.read_parquet(f) for f in sorted(Path(prep, "test").glob("*.parquet")))
    return model, test[scaler["features"]].to_numpy().tolist()


def _measure(port: int, path: str, body: dict[str, Any], n: int, rate: float | None) -> dict[str, Any]:
    """``n`` requests over one keep-alive connection: back to back, or at a fixed ``rate`` per second
    (then a request sent late because the one before was slow counts from when it was due, so a stall
    shows in the figures instead of being skipped). ``http.client``: the least client time per request."""
    import http.client

    import numpy as np

    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send() -> None:
        conn.request("POST", path, body=data, headers=headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"{path} answered {answer.status}")

    for _ in range(min(20, n)):  # warm-up
        send()
    lat = []
    interval = 1.0 / rate if rate else 0.0
    t0 = time.perf_counter()
    for i in range(n):
        start = time.perf_counter()
        if rate:
            due = t0 + i * interval
            if start < due:
                time.sleep(due - start)
                start = time.perf_counter()
            else:
                start = due  # behind schedule: the wait counts
        send()
        lat.append(time.perf_counter() - start)
    wall = time.perf_counter() - t0
    conn.close()
    arr = np.array(lat) * 1000
    return {
        "requests": n,
        "rate_per_s": rate,
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "mean_ms": round(float(arr.mean()), 3),
        "requests_per_s": round(n / wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--requests", type=int, default=None, help="requests per case (default 1000; quick 200)")
    p.add_argument("--rate", type=float, default=200.0, help="the fixed-rate cases' requests/s (default 200)")
    args = p.parse_args(argv)
    n = args.requests or (200 if args.quick else 1000)
    import httpx

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        model, rows = _model(tmp)
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainer", "serve", "--model", model, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/v2/models/{NAME}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("serve did not start")
                time.sleep(0.2)
            batch = rows[:256]
            cases: dict[str, tuple[str, dict[str, Any]]] = {
                "v1_1row": (f"/v1/models/{NAME}:predict", {"instances": rows[:1]}),
                "v2_1row": (
                    f"/v2/models/{NAME}/infer",
                    {
                        "inputs": [
                            {"name": "x", "shape": [1, len(rows[0])], "datatype": "FP32", "data": rows[0]}
                        ]
                    },
                ),
                "v1_256rows": (f"/v1/models/{NAME}:predict", {"instances": batch}),
                "v2_256rows": (
                    f"/v2/models/{NAME}/infer",
                    {
                        "inputs": [
                            {
                                "name": "x",
                                "shape": [len(batch), len(batch[0])],
                                "datatype": "FP32",
                                "data": [v for r in batch for v in r],
                            }
                        ]
                    },
                ),
            }
            results: dict[str, Any] = {}
            for name, (path, body) in cases.items():
                results[name] = _measure(port, path, body, n if "1row" in name else max(50, n // 5), None)
            for name in ("v1_1row", "v2_1row"):  # at a fixed rate: what a steady client sees
                path, body = cases[name]
                results[f"{name}_at_{args.rate:g}_per_s"] = _measure(port, path, body, 2 * n, args.rate)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print(f"{'case':22} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>9}")
    for name, r in results.items():
        print(f"{name:22} {r['p50_ms']:9.2f} {r['p99_ms']:9.2f} {r['requests_per_s']:9.1f}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {"host": "127.0.0.1", "client": "http.client, one keep-alive connection", "quick": args.quick,
           "cases": results}  # fmt: skip
    (RESULTS_DIR / "serve_latency.json").write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
