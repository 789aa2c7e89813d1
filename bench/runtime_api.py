"""Benchmark of the local runtime's Kubernetes API: create/get/list latency, watch delivery, throughput.

Starts a runtime (no S3) in a temporary state folder on free ports, creates 1,000 suspended
PyTorchJobs (admission + validation + SQLite write-through + the controller's status write each),
then reads them back. Prints the figures and writes bench/results/runtime_api.json.
Goal (issue 4): p99 under 10 ms for single-object calls on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

from kubeflow_bridge.local.testing import local_runtime

N = int(os.environ.get("BENCH_OBJECTS", "1000"))
NS = "default"
URL = f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(ms, 50), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "mean_ms": round(statistics.mean(ms), 3),
        "n": len(ms),
    }


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (load-independent cost, unlike wall latency on a shared box)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def job(i: int) -> dict[str, Any]:
    replica = {
        "replicas": 1,
        "restartPolicy": "Never",
        "template": {
            "spec": {
                "containers": [
                    {"name": "pytorch", "image": "python:3.11", "command": ["python", "-c", "pass"]}
                ]
            }
        },
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": f"bench-{i:05d}", "labels": {"bench": "yes", "shard": str(i % 10)}},
        "spec": {
            "runPolicy": {"suspend": True},
            "pytorchReplicaSpecs": {"Master": replica, "Worker": replica},
        },
    }


def main(argv: list[str] | None = None) -> int:
    global N  # the module's object count, read by run()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=N, help="objects to create (BENCH_OBJECTS, 1000)")
    parser.add_argument("--quick", action="store_true", help="100 objects (a smoke run)")
    args = parser.parse_args(argv)
    N = 100 if args.quick else args.objects
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        state = Path(tmp) / "state"
        with local_runtime(state, "--no-s3", "--history", "100000") as rt:
            results = run(rt.api, rt.proc.pid)
            db = sum(p.stat().st_size for p in state.glob("state.db*"))
            results["state_file_bytes"] = db
            results["state_file_bytes_per_object"] = round(db / N, 1)
            # Shared 2-core machine: the figures move with the load other work puts on it.
            results["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
            results["cpus"] = os.cpu_count()
    out = RESULTS_DIR / "runtime_api.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


def run(api: str, server_pid: int) -> dict[str, Any]:
    arrivals: dict[str, float] = {}
    ready = threading.Event()

    def watcher() -> None:
        with httpx.stream(
            "GET", f"{api}{URL}", params={"watch": "true", "timeoutSeconds": "600"}, timeout=None
        ) as r:
            ready.set()
            for line in r.iter_lines():
                ev = json.loads(line)
                name = ev["object"]["metadata"]["name"]
                if ev["type"] == "ADDED":
                    arrivals[name] = time.perf_counter()
                    if len(arrivals) >= N:
                        return

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    ready.wait(10)
    time.sleep(0.2)
    create_ms, get_ms, list_ms, watch_ms = [], [], [], []
    sent: dict[str, float] = {}
    with httpx.Client(base_url=api, timeout=30) as c:
        # Warm-up (connection, first-call imports).
        for _ in range(20):
            c.get("/version")
        cpu0 = cpu_seconds(server_pid)
        t0 = time.perf_counter()
        for i in range(N):
            body = job(i)
            start = time.perf_counter()
            sent[body["metadata"]["name"]] = start
            r = c.post(URL, json=body)
            create_ms.append((time.perf_counter() - start) * 1000)
            r.raise_for_status()
        create_wall = time.perf_counter() - t0
        t.join(30)
        time.sleep(1.0)  # let the controller finish its status writes
        create_cpu = cpu_seconds(server_pid) - cpu0
        for name, arrived in arrivals.items():
            watch_ms.append((arrived - sent[name]) * 1000)
        cpu0 = cpu_seconds(server_pid)
        t0 = time.perf_counter()
        for i in range(N):
            start = time.perf_counter()
            c.get(f"{URL}/bench-{i:05d}").raise_for_status()
            get_ms.append((time.perf_counter() - start) * 1000)
        get_wall = time.perf_counter() - t0
        get_cpu = cpu_seconds(server_pid) - cpu0
        for _ in range(30):
            start = time.perf_counter()
            items = c.get(URL, params={"labelSelector": "bench=yes"}).json()["items"]
            list_ms.append((time.perf_counter() - start) * 1000)
        assert len(items) == N
        page_ms = []
        for _ in range(100):
            start = time.perf_counter()
            c.get(URL, params={"labelSelector": "shard=3", "limit": "50"}).raise_for_status()
            page_ms.append((time.perf_counter() - start) * 1000)
    return {
        "objects": N,
        "kind": "PyTorchJob (suspended; admission + validation + SQLite write-through + controller status write)",
        "create": summary(create_ms),
        "get": summary(get_ms),
        "list_all_1000": summary(list_ms),
        "list_selector_limit_50": summary(page_ms),
        "watch_event_delivery": summary(watch_ms),
        "server_cpu_ms_per_create_incl_controller": round(create_cpu / N * 1000, 3),
        "server_cpu_ms_per_get": round(get_cpu / N * 1000, 3),
        "creates_per_second": round(N / create_wall, 1),
        "gets_per_second": round(N / get_wall, 1),
        "p99_single_object_under_10ms": pct(create_ms, 99) < 10 and pct(get_ms, 99) < 10,
    }


if __name__ == "__main__":
    sys.exit(main())
