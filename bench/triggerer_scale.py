"""Benchmark: N concurrent deferred waits (KubeflowObjectTrigger.run) in one event loop, as in a triggerer.

Against the local Kubeflow runtime (started here from .venv-trainer, free ports, tmp state) it creates N
suspended PyTorchJobs (no pods), runs N ``KubeflowObjectTrigger`` coroutines in one asyncio loop, keeps
them waiting for ``--duration`` seconds, then marks every job Succeeded through the status subresource
(as the training operator would) and waits for every trigger's single event. It reports:

- Kubernetes API requests per minute sent by the triggers while waiting (every aiohttp request in
  this process is counted; the driver uses httpx and is not counted), and during start-up;
- RSS of this process;
- event delivery latency: time from a job's status write to its trigger's event (p50/p99/max).

With the shared watch the steady-state request rate must not grow with N.

    .venv/bin/python bench/triggerer_scale.py [--sizes 10,100,1000] [--duration 20]

Prints a table and writes bench/results/triggerer_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

from kubeflow_bridge.local.testing import local_runtime

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = {"count": 0}


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def count_aiohttp_requests() -> None:
    import aiohttp

    original = aiohttp.ClientSession._request

    async def counting(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        REQUESTS["count"] += 1
        return await original(self, method, url, *args, **kwargs)

    aiohttp.ClientSession._request = counting  # type: ignore[method-assign]


def job(name: str) -> dict[str, Any]:
    container = {
        "name": "pytorch",
        "image": "kubeflow-bridge/trainer:latest",
        "command": ["python", "-c", "pass"],
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "runPolicy": {"suspend": True},
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {"spec": {"containers": [container]}},
                }
            },
        },
    }


async def run_size(api: str, n: int, duration: float) -> dict[str, Any]:
    import httpx

    from kubeflow_bridge.triggers.kubeflow import KubeflowObjectTrigger

    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    base = f"{api}/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs"
    async with httpx.AsyncClient(timeout=60) as http:
        (
            await http.post(f"{api}/api/v1/namespaces", json={"metadata": {"name": namespace}})
        ).raise_for_status()
        names = [f"j-{i:05d}" for i in range(n)]
        for start in range(0, n, 50):
            batch = names[start : start + 50]
            for resp in await asyncio.gather(*(http.post(base, json=job(x)) for x in batch)):
                resp.raise_for_status()

        delivered: dict[str, float] = {}
        events: dict[str, str] = {}

        async def one(name: str) -> None:
            trigger = KubeflowObjectTrigger(
                kind="PyTorchJob", name=name, namespace=namespace, deadline=time.time() + 3600
            )
            async for event in trigger.run():
                delivered[name] = time.monotonic()
                events[name] = event.payload["status"]

        rss_before = rss_mb()
        REQUESTS["count"] = 0
        t0 = time.monotonic()
        tasks = [asyncio.create_task(one(x)) for x in names]
        await asyncio.sleep(min(5.0, duration / 2))  # start-up: every waiter reads its object once
        startup_requests = REQUESTS["count"]
        startup_s = time.monotonic() - t0
        steady_from, steady_count = time.monotonic(), REQUESTS["count"]
        await asyncio.sleep(duration)
        steady_requests = REQUESTS["count"] - steady_count
        steady_s = time.monotonic() - steady_from
        rss_waiting = rss_mb()

        written: dict[str, float] = {}
        status = {
            "status": {
                "conditions": [
                    {"type": "Created", "status": "True", "reason": "PyTorchJobCreated"},
                    {
                        "type": "Succeeded",
                        "status": "True",
                        "reason": "PyTorchJobSucceeded",
                        "message": "bench",
                    },
                ]
            }
        }
        headers = {"Content-Type": "application/merge-patch+json"}

        async def finish(name: str) -> None:
            resp = await http.patch(f"{base}/{name}/status", content=json.dumps(status), headers=headers)
            resp.raise_for_status()
            written[name] = time.monotonic()

        for start in range(0, n, 50):
            await asyncio.gather(*(finish(x) for x in names[start : start + 50]))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
        await http.delete(f"{api}/api/v1/namespaces/{namespace}")

    latencies = sorted(max(0.0, delivered[x] - written[x]) for x in names)
    wrong = {x: s for x, s in events.items() if s != "succeeded"}
    return {
        "waits": n,
        "startup_seconds": round(startup_s, 2),
        "startup_requests": startup_requests,
        "steady_seconds": round(steady_s, 2),
        "steady_requests": steady_requests,
        "steady_requests_per_minute": round(steady_requests * 60 / steady_s, 1),
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_waiting": round(rss_waiting, 1),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        "latency_max_ms": round(latencies[-1] * 1000, 1),
        "events_not_succeeded": len(wrong),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of steady-state waiting per size"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 10 and 100, 3 s each (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.duration = "10,100", 3.0
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT))
    os.environ.setdefault("AIRFLOW_CONFIG", str(ROOT / "airflow.cfg"))
    count_aiohttp_requests()
    results = []
    with tempfile.TemporaryDirectory() as tmp, local_runtime(Path(tmp) / "state", "--no-s3") as rt:
        os.environ.update(rt.env)
        for size in (int(s) for s in args.sizes.split(",")):
            result = asyncio.run(run_size(rt.api, size, args.duration))
            results.append(result)
            print(json.dumps(result), flush=True)
    print(
        f"\n{'waits':>6} {'req/min waiting':>16} {'startup req':>12} {'RSS MB':>8} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for r in results:
        print(
            f"{r['waits']:>6} {r['steady_requests_per_minute']:>16} {r['startup_requests']:>12} "
            f"{r['rss_mb_waiting']:>8} {r['latency_p50_ms']:>8} {r['latency_p99_ms']:>8}"
        )
    out = RESULTS_DIR / "triggerer_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
