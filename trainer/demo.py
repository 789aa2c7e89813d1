"""``python -m trainer.demo``: ingest -> preprocess -> train -> evaluate -> serve on synthetic data.

Each step runs as ``python -m trainer <step>`` in a subprocess, exactly as an orchestrator would run it,
in a work dir (default ``.artifacts/demo`` under the current directory). Then the model server starts on
a free 127.0.0.1 port, answers one V1 and one V2 request, and is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from trainer.summary import parse_summary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _step(step: str, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "trainer", step, *args]
    print(f"\n$ python -m trainer {step} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if not line.startswith("TRAINER_SUMMARY"):
            print("  " + line)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"demo: step {step} failed with exit code {proc.returncode}")
    summary = parse_summary(proc.stdout)
    print(f"  -> {step} done in {time.perf_counter() - t0:.1f}s; outputs {summary['outputs']}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.demo", description=__doc__)
    p.add_argument("--workdir", default=os.path.join(os.getcwd(), ".artifacts", "demo"))
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    w = os.path.abspath(args.workdir)
    os.makedirs(w, exist_ok=True)
    t_all = time.perf_counter()
    raw, prep, model, report = (os.path.join(w, n) for n in ("raw", "features", "model.pt", "evaluation"))
    _step("ingest", "--out", raw, "--rows", str(args.rows), "--seed", str(args.seed))
    _step("preprocess", "--data", raw, "--out", prep, "--freq", "5min", "--workers", "2")
    _step(
        "train", "--data", prep, "--model-out", model, "--metrics-out", os.path.join(w, "train_metrics.json"),
        "--epochs", str(args.epochs), "--seed", str(args.seed),
    )  # fmt: skip
    ev = _step("evaluate", "--data", prep, "--model", model, "--out", report)
    served = ev["outputs"]["model"]
    port = _free_port()
    print(f"\n$ python -m trainer serve --model {served} --port {port}", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "trainer", "serve", "--model", served, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        answer_v1, answer_v2 = _ask(port, prep)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    print("  V1 answer:", json.dumps(answer_v1))
    print("  V2 answer:", json.dumps(answer_v2))
    m = ev["metrics"]
    print(
        f"\nDemo finished in {time.perf_counter() - t_all:.0f}s. composite F-score {m['composite_f1']:.3f}, "
        f"point-wise F1 {m['f1']:.3f}, threshold {m['threshold']:.4g}"
    )
    print(f"Report: {ev['outputs']['report']}")
    print(f"Model (with threshold): {served}")
    return 0


def _ask(port: int, prep: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait for the server, then send the last rows of the test split (raw channel values)."""
    import glob

    import httpx
    import pandas as pd

    scaler = json.loads(Path(os.path.join(prep, "scaler.json")).read_text())
    test = pd.read_parquet(sorted(glob.glob(os.path.join(prep, "test", "*.parquet")))[-1])
    rows = test[scaler["channels"]].tail(24).to_numpy().tolist()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/v1/models/anomaly-vae", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("demo: the model server did not become ready in 60s")
        time.sleep(0.3)
    v1 = httpx.post(f"{base}/v1/models/anomaly-vae:predict", json={"instances": rows}, timeout=10).json()
    v1["predictions"] = v1["predictions"][-3:]
    v1["note"] = "last 3 of 24 rows"
    flat = [v for r in rows for v in r]
    v2_req = {
        "inputs": [
            {"name": "telemetry", "shape": [len(rows), len(rows[0])], "datatype": "FP32", "data": flat}
        ]
    }
    v2 = httpx.post(f"{base}/v2/models/anomaly-vae/infer", json=v2_req, timeout=10).json()
    v2["outputs"] = [{**o, "data": o["data"][-3:], "note": "last 3 of 24"} for o in v2["outputs"]]
    return v1, v2


if __name__ == "__main__":
    sys.exit(main())
