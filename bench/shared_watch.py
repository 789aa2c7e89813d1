"""Benchmark: N concurrent async waits on one client share one watch; requests must not grow with N.

For N = 10, 100, 1000 PyTorchJobs it starts N ``AsyncKubeflowObjectClient.wait`` calls on one client,
keeps them waiting for ``--duration`` seconds while a driver (httpx, not counted) annotates a few jobs
every second (each a MODIFIED event), then deletes them all and waits for every waiter to return
(a deleted object ends a wait as ``cancelled``). The jobs are created suspended, so a real runtime or
cluster starts no pods for them. It counts the HTTP
requests the waiters' process sends (every aiohttp request) and reads its RSS.

Without ``--api-url`` it starts the repository's test Kubernetes-API server in a subprocess (so the RSS
is the client's alone); with ``--api-url`` it runs against that server (e.g. the local runtime), which
must serve PyTorchJobs and namespaces.

    .venv-trainer/bin/python bench/shared_watch.py [--api-url URL] [--duration 20] [--sizes 10,100,1000]

Prints a table and writes bench/results/shared_watch.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "kubeflow_bridge" / "clients" / "fake_apiserver.py"
REQUESTS = {"count": 0}
POLL_REFERENCE_SECONDS = 5.0


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def count_aiohttp_requests() -> None:
    """Count every request aiohttp sends in this process (the waiters' only transport)."""
    import aiohttp

    original = aiohttp.ClientSession._request

    async def counting(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        REQUESTS["count"] += 1
        return await original(self, method, url, *args, **kwargs)

    aiohttp.ClientSession._request = counting  # type: ignore[method-assign]


def serve() -> None:
    """Run the test API server until stdin closes (used as this script's subprocess)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_apiserver", FAKE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_apiserver"] = module
    spec.loader.exec_module(module)
    server = module.FakeApiServer(history_size=20000, bookmark_interval=60.0).start()
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop()


async def run_size(api_url: str, n: int, duration: float) -> dict[str, Any]:
    import httpx
    from kubernetes_asyncio import client as k8s

    from kubeflow_bridge.clients.kube import PYTORCHJOB, AsyncKubeflowObjectClient

    namespace = f"bench-{n}-{os.getpid()}"
    api = api_url.rstrip("/")
    base = api + PYTORCHJOB.collection_path(namespace)
    names = [f"job-{i:05d}" for i in range(n)]
    container = {"name": "pytorch", "image": "python:3.11", "command": ["python", "-c", "pass"]}
    replica = {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {"containers": [container]}}}
    manifest = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "spec": {"runPolicy": {"suspend": True}, "pytorchReplicaSpecs": {"Master": replica}},
    }
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=20)) as driver:
        gate = asyncio.Semaphore(20)

        async def send(method: str, url: str, body: dict[str, Any] | None = None) -> None:
            headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
            async with gate:
                resp = await driver.request(method, url, json=body, headers=headers)
                if resp.status_code >= 400 and resp.status_code != 404:
                    raise RuntimeError(f"{method} {url}: {resp.status_code} {resp.text[:200]}")

        ns_resp = await driver.post(f"{api}/api/v1/namespaces", json={"metadata": {"name": namespace}})
        if ns_resp.status_code >= 400 and ns_resp.status_code not in (404, 405, 409):
            raise RuntimeError(
                f"cannot create namespace {namespace}: {ns_resp.status_code} {ns_resp.text[:200]}"
            )
        await asyncio.gather(
            *(send("POST", base, {**manifest, "metadata": {"name": name}}) for name in names)
        )

        configuration = k8s.Configuration()
        configuration.host = api_url
        kube = AsyncKubeflowObjectClient(k8s.ApiClient(configuration))
        rss_before = rss_mb()
        REQUESTS["count"] = 0
        start = time.monotonic()
        timeout = duration + 600
        waits = [
            asyncio.create_task(kube.wait(PYTORCHJOB, name, namespace=namespace, timeout=timeout))
            for name in names
        ]
        rng = random.Random(n)
        while time.monotonic() - start < duration:
            await asyncio.sleep(1.0)
            touch = {"metadata": {"annotations": {"bench/tick": str(time.monotonic())}}}
            await asyncio.gather(
                *(send("PATCH", f"{base}/{name}", touch) for name in rng.sample(names, min(5, n)))
            )
        window = time.monotonic() - start
        requests_in_window = REQUESTS["count"]
        rss_waiting = rss_mb()
        early = [w.result() for w in waits if w.done()]
        assert not early, f"waiters returned before their jobs finished: {early[:3]}"
        finish = time.monotonic()
        await asyncio.gather(*(send("DELETE", f"{base}/{name}") for name in names))
        outcomes = await asyncio.gather(*waits)
        all_done = time.monotonic() - finish
        await kube.close()
        await driver.delete(f"{api}/api/v1/namespaces/{namespace}")
    return {
        "n": n,
        "window_s": round(window, 2),
        "requests": requests_in_window,
        "requests_per_minute": round(requests_in_window / window * 60, 2),
        "per_waiter_poll_reference_rpm": round(n * 60 / POLL_REFERENCE_SECONDS, 1),
        "rss_mb": round(rss_waiting, 1),
        "rss_delta_mb": round(rss_waiting - rss_before, 1),
        "deletes_sent_and_all_returned_s": round(all_done, 3),
        "outcomes": sorted({f"{o.state}/{o.reason}" for o in outcomes}),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    count_aiohttp_requests()
    results = []
    for n in args.sizes:
        row = await run_size(args.api_url, n, args.duration)
        print(
            f"N={row['n']:>5}  requests={row['requests']:>4}  req/min={row['requests_per_minute']:>7}  "
            f"(poll every {POLL_REFERENCE_SECONDS:g}s would be {row['per_waiter_poll_reference_rpm']:>8})  "
            f"RSS={row['rss_mb']:>6} MiB (+{row['rss_delta_mb']})  all done {row['deletes_sent_and_all_returned_s']}s  {row['outcomes']}",
            flush=True,
        )
        results.append(row)
    return {"benchmark": "shared_watch", "duration_s": args.duration, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", help="Kubernetes API URL (default: start the test API server)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds the waiters wait before the jobs finish"
    )
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated numbers of concurrent waits")
    parser.add_argument("--out", default=str(RESULTS_DIR / "shared_watch.json"))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="sizes 10 and 100, 3 s each (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.duration = "10,100", 3.0
    if args.serve:
        serve()
        return
    args.sizes = [int(s) for s in args.sizes.split(",")]
    server = None
    if not args.api_url:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        args.api_url = server.stdout.readline().strip()
    try:
        report = asyncio.run(main_async(args))
    finally:
        if server is not None:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(30)
    report["api_url"] = "test API server (subprocess)" if server is not None else args.api_url
    rpms = [r["requests_per_minute"] for r in report["results"]]
    report["requests_grow_with_n"] = bool(rpms and max(rpms) > 2 * max(1.0, min(rpms)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"requests grow with N: {report['requests_grow_with_n']}; wrote {out}")


if __name__ == "__main__":
    main()
