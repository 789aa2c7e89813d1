"""Chaos bench: the operators under injected faults, runtime restarts and kills, on the local runtime.

For each fault rate (default 0, 15 % and 30 % of API requests, split evenly between 5xx answers, 429
with Retry-After, dropped requests and applied requests whose answer is lost; watches cut every second)
it runs ``--tasks`` tasks of each kind against one local runtime and counts:

* ``correct``: the task ended as it should (succeeded for a good job, or a clear error);
* ``duplicates``: objects or runs beyond one per task (a retried create that created again);
* ``orphans``: pods still Pending/Running after every task ended.

Kinds: ``pytorchjob-deferrable`` (submit, then the trigger waits in this process), ``pytorchjob-sync``
(the worker waits), ``katib-experiment`` (2 trials, deferrable; duplicates also count trials beyond
maxTrialCount), ``kserve-deploy`` (an InferenceService Ready, deferrable), ``kfp-run`` (a KFP run
started without waiting), ``restart-mid-wait`` (the runtime is stopped and started again while the
trigger waits), ``kill`` (``on_kill`` while the job runs).

    .venv/bin/python bench/chaos.py [--tasks 8] [--rates 0,0.15,0.3] [--quick]

Prints a table and writes bench/results/chaos.json. Needs ``make setup`` (both environments).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

ROOT = Path(__file__).resolve().parent.parent
TRAINER_PYTHON = ROOT / ".venv-trainer" / "bin" / "python"
PIPELINE = """
from kfp import compiler, dsl

@dsl.component(base_image="kubeflow-bridge/trainer:latest", install_kfp_package=False)
def add(a: int, b: int) -> int:
    return a + b

@dsl.pipeline(name="chaos-add")
def add_pipeline(a: int, b: int = 2) -> None:
    add(a=a, b=b).set_caching_options(False)

compiler.Compiler().compile(add_pipeline, __import__("sys").argv[1])
"""
TRIAL = (
    "import sys\n"
    "x = float(dict(a.lstrip('-').split('=', 1) for a in sys.argv[1:])['x'])\n"
    "print(f'loss={(x - 0.3) ** 2:.6f}', flush=True)\n"
)
SERVER = (
    "import os\n"
    "from http.server import BaseHTTPRequestHandler, HTTPServer\n"
    "class H(BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'{}')\n"
    "    def log_message(self, *a): pass\n"
    "HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
)
ISVC_LABEL = "serving.kserve.io/inferenceservice"
RESOURCES = {  # kind -> the API path (under the namespace) of the objects its tasks create
    "katib-experiment": "/apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments",
    "kserve-deploy": "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices",
}


class TaskInstance:
    """What the operators read of a task instance (its identity and XCom)."""

    def __init__(self, task_id: str, run_id: str) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "chaos", task_id, run_id, -1
        self.stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        pass


class StateStore(dict):  # type: ignore[type-arg]
    def set(self, key: str, value: Any, **_: Any) -> None:
        self[key] = value


def context(task_id: str, run_id: str) -> dict[str, Any]:
    return {"ti": TaskInstance(task_id, run_id), "task_state_store": StateStore()}


def run_trigger(trigger: Any) -> dict[str, Any]:
    trigger.fire_not_before = None  # no scheduler here to race with

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        return {}

    return asyncio.run(first())


def pytorchjob(task_id: str, *, deferrable: bool, seconds: float = 1.0) -> Any:
    from kubeflow_bridge.operators.training import PyTorchJobOperator

    return PyTorchJobOperator(
        task_id=task_id,
        image="kubeflow-bridge/trainer:latest",
        command=["python", "-c", f"import time; time.sleep({seconds}); print('done')"],
        deferrable=deferrable,
        poll_interval=1,
        timeout=300,
    )


def katib(task_id: str) -> Any:
    from kubeflow_bridge.operators.katib import KatibExperimentOperator

    return KatibExperimentOperator(
        task_id=task_id,
        image="python:3.11",
        trial_command=["python", "-c", TRIAL],
        objective_metric="loss",
        search_space=[{"name": "x", "type": "double", "min": "0", "max": "1"}],
        parallel_trial_count=2,
        max_trial_count=2,
        poll_interval=1,
        timeout=300,
    )


def kserve(task_id: str) -> Any:
    from kubeflow_bridge.operators.kserve import KServeDeployOperator

    container = {"name": "kserve-container", "image": "python:3.11", "command": ["python", "-c", SERVER]}
    return KServeDeployOperator(
        task_id=task_id,
        name=task_id,
        inference_service={
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {},
            "spec": {"predictor": {"containers": [container]}},
        },
        poll_interval=1,
        timeout=120,
    )


def result(op: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    """Run an operator to its end (the trigger in this process when it defers); its XCom result."""
    from airflow.sdk.exceptions import TaskDeferred

    try:
        return dict(op.execute(ctx) or {})
    except TaskDeferred as deferred:
        method = getattr(op, deferred.method_name)
        return dict(method(ctx, run_trigger(deferred.trigger)) or {})


def finish(op: Any, ctx: dict[str, Any]) -> str:
    """The final state of a job operator run to its end."""
    return str(result(op, ctx).get("state", "succeeded"))


class Bench:
    def __init__(self, state: Path, pipeline: str) -> None:
        from kubeflow_bridge.local.testing import start_runtime

        self.state, self.pipeline = state, pipeline
        self.rt = start_runtime(state, "--no-s3", env={"KUBEFLOW_BRIDGE_GPUS": "0"})
        self.use_connections()

    def use_connections(self) -> None:
        import os

        os.environ.update(self.rt.env)

    def namespace(self) -> str:
        import os

        import httpx

        name = f"chaos-{uuid.uuid4().hex[:8]}"
        httpx.post(f"{self.rt.api}/api/v1/namespaces", json={"metadata": {"name": name}}, timeout=10)
        conn = json.loads(self.rt.env["AIRFLOW_CONN_KUBEFLOW_DEFAULT"])
        conn["extra"] = {**conn["extra"], "namespace": name}
        os.environ["AIRFLOW_CONN_KUBEFLOW_DEFAULT"] = json.dumps(conn)
        # Deferrable tasks defer at once, so their triggers (run here, no scheduler to race) are what
        # the faults meet; with the default delay a quick job would end on the worker first.
        os.environ["AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY"] = "0"
        return name

    def items(self, path: str) -> list[dict[str, Any]]:
        """What exists, read past the injected faults (the bench's own reads are not under test)."""
        import httpx

        for _ in range(50):
            try:
                resp = httpx.get(f"{self.rt.api}{path}", timeout=30)
                if resp.status_code == 200:
                    return list(resp.json()["items"])
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"could not list {path}")

    def restart(self) -> None:
        """Stop the runtime and start it again on the same state folder (it keeps its ports)."""
        from kubeflow_bridge.local.testing import start_runtime, stop_runtime

        stop_runtime(self.rt.proc)
        self.rt = start_runtime(self.state, "--no-s3", env={"KUBEFLOW_BRIDGE_GPUS": "0"})

    def stop(self) -> None:
        from kubeflow_bridge.local.testing import stop_runtime

        stop_runtime(self.rt.proc)

    # --- one kind at one fault rate ---------------------------------------------------------------
    def run_kind(self, kind: str, tasks: int, rate: float) -> dict[str, Any]:
        ns = self.namespace()
        if rate:
            share = rate / 4
            self.rt.faults(
                error_rate=share, throttle_rate=share, retry_after=1, drop_rate=share, lose_rate=share,
                watch_cut_after=1.0, seed=int(rate * 1000),
            )  # fmt: skip
        outcomes: list[bool] = []
        started = time.monotonic()
        try:
            for i in range(tasks):
                outcomes.append(self.one(kind, f"{kind}-{i}", f"run{uuid.uuid4().hex[:6]}"))
        finally:
            self.rt.reset_faults()
        seconds = time.monotonic() - started
        path = RESOURCES.get(kind, "/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs").format(ns=ns)
        objects = self.items(path)
        per_task = Counter(
            o["metadata"].get("annotations", {}).get("kubeflow-bridge.io/task-id") for o in objects
        )
        duplicates = sum(n - 1 for n in per_task.values())
        if kind == "katib-experiment":
            trials = Counter(
                t["metadata"]["labels"].get("katib.kubeflow.org/experiment")
                for t in self.items(f"/apis/kubeflow.org/v1beta1/namespaces/{ns}/trials")
            )
            duplicates += sum(max(0, n - 2) for n in trials.values())
        if kind == "kfp-run":
            import httpx

            runs = httpx.get(
                f"{self.rt.kfp}/apis/v2beta1/runs", params={"page_size": 1000}, timeout=30
            ).json()
            names = Counter(r["display_name"] for r in runs.get("runs") or [] if ns in r["display_name"])
            duplicates = sum(n - 1 for n in names.values())
        deadline = time.monotonic() + 30  # a killed job's pods take a moment to go
        while True:
            pods = self.items(f"/api/v1/namespaces/{ns}/pods")
            serving = {o["metadata"]["name"] for o in objects} if kind == "kserve-deploy" else set()
            orphans = []  # a deployed model's one predictor pod is meant to run on; no other live pod
            for pod in pods:
                if pod.get("status", {}).get("phase") not in ("Pending", "Running"):
                    continue
                owner = pod["metadata"].get("labels", {}).get(ISVC_LABEL)
                if owner in serving:
                    serving.discard(owner)
                else:
                    orphans.append(pod)
            if not orphans or time.monotonic() > deadline:
                break
            time.sleep(1)
        return {
            "kind": kind, "rate": rate, "tasks": tasks, "correct": sum(outcomes), "duplicates": duplicates,
            "orphans": len(orphans), "seconds": round(seconds, 1),
        }  # fmt: skip

    def one(self, kind: str, task_id: str, run_id: str) -> bool:
        ctx = context(task_id, run_id)
        try:
            if kind == "pytorchjob-deferrable":
                return finish(pytorchjob(task_id, deferrable=True), ctx) == "succeeded"
            if kind == "pytorchjob-sync":
                return finish(pytorchjob(task_id, deferrable=False), ctx) == "succeeded"
            if kind == "katib-experiment":
                return bool(result(katib(task_id), ctx)["trial_counts"].get("trialsSucceeded") == 2)
            if kind == "kserve-deploy":
                return bool(result(kserve(task_id), ctx).get("ready"))
            if kind == "kfp-run":
                return self.kfp_run(task_id, ctx)
            if kind == "restart-mid-wait":
                return self.restart_mid_wait(task_id, ctx)
            if kind == "kill":
                return self.kill(task_id, ctx)
        except Exception as exc:  # a wrong outcome is counted, and said
            print(f"  {kind} {task_id}: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)
            return False
        raise ValueError(kind)

    def kfp_run(self, task_id: str, ctx: dict[str, Any]) -> bool:
        import os

        from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator

        ns = json.loads(os.environ["AIRFLOW_CONN_KUBEFLOW_DEFAULT"])["extra"]["namespace"]
        op = KubeflowPipelineRunOperator(
            task_id=task_id, pipeline_package_path=self.pipeline, parameters={"a": 1},
            run_name=f"{ns}-{task_id}", deferrable=False, wait_for_completion=False,
        )  # fmt: skip
        return bool(op.execute(ctx))

    def restart_mid_wait(self, task_id: str, ctx: dict[str, Any]) -> bool:
        from airflow.sdk.exceptions import TaskDeferred

        op = pytorchjob(task_id, deferrable=True, seconds=6)
        try:
            op.execute(ctx)
            return False
        except TaskDeferred as deferred:
            trigger = deferred.trigger
        trigger.fire_not_before = None

        async def wait_across_restart() -> dict[str, Any]:
            async def first() -> dict[str, Any]:
                async for event in trigger.run():
                    return dict(event.payload)
                return {}

            waiting = asyncio.create_task(first())
            await asyncio.sleep(1.5)
            await asyncio.to_thread(self.restart)
            return await asyncio.wait_for(waiting, 120)

        event = asyncio.run(wait_across_restart())
        return str(op.execute_complete(ctx, event)["state"]) == "succeeded"

    def kill(self, task_id: str, ctx: dict[str, Any]) -> bool:
        from airflow.sdk.exceptions import TaskDeferred

        op = pytorchjob(task_id, deferrable=True, seconds=60)
        try:
            op.execute(ctx)
        except TaskDeferred:
            pass
        op.on_kill()  # on_kill_action='delete': the job and its pods go
        name = op._resource_name
        ns = op._resource_namespace
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not [j for j in self.items(f"/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs")
                    if j["metadata"]["name"] == name]:  # fmt: skip
                return True
            time.sleep(0.5)
        return False


def compile_pipeline(folder: Path) -> str:
    (folder / "make.py").write_text(PIPELINE)
    out = folder / "pipeline.yaml"
    subprocess.run([str(TRAINER_PYTHON), str(folder / "make.py"), str(out)], check=True, timeout=300)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=8, help="tasks per kind and rate (default 8)")
    parser.add_argument("--rates", default="0,0.15,0.3", help="fault rates, comma-separated")
    parser.add_argument("--quick", action="store_true", help="2 tasks per kind, rates 0.15 and 0.3")
    parser.add_argument("--out", default=str(RESULTS_DIR / "chaos.json"))
    args = parser.parse_args(argv)
    tasks = 2 if args.quick else args.tasks
    rates = [0.15, 0.3] if args.quick else [float(r) for r in args.rates.split(",")]
    kinds = [
        "pytorchjob-deferrable", "pytorchjob-sync", "katib-experiment", "kserve-deploy", "kfp-run",
        "restart-mid-wait", "kill",
    ]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="kb-chaos-") as tmp:
        bench = Bench(Path(tmp) / "state", compile_pipeline(Path(tmp)))
        try:
            for rate in rates:
                for kind in kinds:
                    row = bench.run_kind(kind, tasks, rate)
                    rows.append(row)
                    print(
                        f"{kind:<22} faults {rate:>4.0%}: {row['correct']}/{row['tasks']} correct, "
                        f"{row['duplicates']} duplicates, {row['orphans']} orphan pods ({row['seconds']} s)",
                        flush=True,
                    )
        finally:
            bench.stop()
    total = {k: sum(r[k] for r in rows) for k in ("tasks", "correct", "duplicates", "orphans")}
    print(f"all: {total['correct']}/{total['tasks']} correct, {total['duplicates']} duplicates, "
          f"{total['orphans']} orphans")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "total": total}, indent=2) + "\n")
    return 0 if total["correct"] == total["tasks"] and not total["duplicates"] and not total["orphans"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
