"""Benchmark: InferenceService request latency through the local canary proxy vs the predictor directly.

Trains a tiny VAE with the trainer (ingest -> preprocess -> 1 epoch), serves it as an InferenceService
with ``modelFormat: kubeflow-bridge-vae`` on a local runtime it starts (no S3), then sends ``--requests``
V1 predict requests of ``--rows`` rows alternately to ``status.url`` (the proxy) and to the predictor's
own port, over keep-alive connections, and reports p50/p99/mean of each and the proxy's added p50.

    .venv-trainer/bin/python bench/isvc_latency.py [--requests 300] [--rows 8]

Prints the figures and writes bench/results/isvc_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

from kubeflow_bridge.local.testing import local_runtime

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def train_tiny_model(workdir: Path) -> tuple[Path, int]:
    """A 1-epoch VAE on 3000 synthetic rows; returns the artifact path and the raw channel count."""
    trainer = [sys.executable, "-m", "trainer"]
    raw, prep, model = workdir / "raw", workdir / "prep", workdir / "model.pt"
    subprocess.run(
        [*trainer, "ingest", "--out", str(raw), "--rows", "3000", "--seed", "1"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*trainer, "preprocess", "--data", str(raw), "--out", str(prep), "--scheduler", "threads"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*trainer, "train", "--data", str(prep), "--model-out", str(model), "--epochs", "1"],
        check=True,
        capture_output=True,
    )
    from trainer.model import load_artifact

    _, artifact = load_artifact(str(model), arg="--model")
    scaler = artifact["scaler"]
    return model, len(scaler.get("channels") or scaler["features"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="50 requests (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.requests = 50
    import httpx
    from kubernetes import client, config

    with tempfile.TemporaryDirectory(prefix="kb-bench-isvc-") as tmp:
        workdir = Path(tmp)
        model, width = train_tiny_model(workdir)
        state = workdir / "state"
        with local_runtime(state, "--no-s3") as rt:
            api = config.new_client_from_config(config_file=str(rt.kubeconfig))
            custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
            body: dict[str, Any] = {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": "vae"},
                "spec": {
                    "predictor": {
                        "model": {"modelFormat": {"name": "kubeflow-bridge-vae"}, "storageUri": str(model)}
                    }
                },
            }
            started = time.monotonic()
            custom.create_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", "default", "inferenceservices", body
            )
            while True:
                isvc = custom.get_namespaced_custom_object(
                    "serving.kserve.io", "v1beta1", "default", "inferenceservices", "vae"
                )
                ready = [
                    c for c in (isvc.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"
                ]
                if ready and ready[0]["status"] == "True":
                    break
                if (ready and ready[0]["status"] == "False") or time.monotonic() - started > 120:
                    raise SystemExit(f"InferenceService not ready: {isvc.get('status')}")
                time.sleep(0.2)
            time_to_ready = time.monotonic() - started
            pod = core.list_namespaced_pod(
                "default", label_selector="serving.kserve.io/inferenceservice=vae"
            ).items[0]
            direct = f"http://127.0.0.1:{pod.metadata.annotations['kubeflow-bridge.io/port']}"
            proxied = isvc["status"]["url"]
            payload = {"instances": [[0.1 * (i + j) for j in range(width)] for i in range(args.rows)]}
            timings: dict[str, list[float]] = {"proxy": [], "direct": []}
            with httpx.Client(timeout=30) as http:
                for base in (proxied, direct):
                    for _ in range(20):  # warm-up
                        http.post(f"{base}/v1/models/vae:predict", json=payload).raise_for_status()
                for _ in range(args.requests):
                    for name, base in (("proxy", proxied), ("direct", direct)):
                        t0 = time.perf_counter()
                        response = http.post(f"{base}/v1/models/vae:predict", json=payload)
                        timings[name].append((time.perf_counter() - t0) * 1000)
                        response.raise_for_status()
    proxy, direct_s = summary(timings["proxy"]), summary(timings["direct"])
    result = {
        "benchmark": "isvc_latency",
        "requests": args.requests,
        "rows_per_request": args.rows,
        "time_to_ready_s": round(time_to_ready, 2),
        "proxy": proxy,
        "direct": direct_s,
        "proxy_added_p50_ms": round(proxy["p50_ms"] - direct_s["p50_ms"], 3),
        "proxy_added_p99_ms": round(proxy["p99_ms"] - direct_s["p99_ms"], 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(result, indent=2))
    out = RESULTS_DIR / "isvc_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
