"""Shared helpers of the local KFP API tests: the standalone server, compiled test pipelines, waits.

Imported by the test modules (`from . import kfp_fixtures as fx`); each module that uses `kfp_server`
gets its own server on a free 127.0.0.1 port with a tmp state dir.
"""

# No `from __future__ import annotations` here: kfp reads the components' annotations as types.
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kfp import compiler, dsl
from kfp.dsl import Dataset, Metrics, Output

IMAGE = "kubeflow-bridge/trainer:latest"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def report(x: int, metrics: Output[Metrics], data: Output[Dataset]) -> str:
    metrics.log_metric("x", x)
    with open(data.path, "w") as fh:
        fh.write(str(x))
    return f"reported {x}"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def boom(x: int) -> None:
    raise ValueError(f"boom {x}")


@dsl.pipeline(name="demo")
def demo_pipeline(a: int = 1, b: int = 2, fail: bool = False) -> None:
    total = add(a=a, b=b)
    report(x=total.output)
    with dsl.If(fail == True):  # noqa: E712 - a KFP condition, not a Python comparison
        boom(x=total.output).set_display_name("explode")  # display name != task key


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def sleeper(pid_file: str, seconds: float) -> None:
    import os
    import time

    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(seconds)


@dsl.pipeline(name="slow")
def slow_pipeline(pid_file: str, seconds: float = 60.0) -> None:
    sleeper(pid_file=pid_file, seconds=seconds).set_caching_options(False)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def first_ok(marker: str) -> str:
    return marker


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def fail_once(marker: str) -> None:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails on purpose")


@dsl.pipeline(name="flaky")
def flaky_pipeline(marker: str) -> None:
    first = first_ok(marker=marker)
    fail_once(marker=first.output).set_caching_options(False)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def launch_pytorchjob(name: str, namespace: str, timeout: float) -> str:
    """Creates a 2-replica PyTorchJob through the runtime (KUBECONFIG from the run's env) and waits."""
    import os
    import time

    from kubernetes import client, config

    config.load_kube_config()
    api = client.CustomObjectsApi()
    script = "import os; print('rank', os.environ['RANK'], 'world', os.environ['WORLD_SIZE'])"
    container = {
        "name": "pytorch",
        "image": "kubeflow-bridge/trainer:latest",
        "command": ["python", "-c", script],
    }
    replica = {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {"containers": [container]}}}
    body = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {
            "name": name,
            "annotations": {"kubeflow-bridge.io/pipeline-run": os.environ["KFP_RUN_ID"]},
        },
        "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}},
    }
    api.create_namespaced_custom_object("kubeflow.org", "v1", namespace, "pytorchjobs", body)
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = api.get_namespaced_custom_object("kubeflow.org", "v1", namespace, "pytorchjobs", name)
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond["type"] in ("Succeeded", "Failed") and cond["status"] == "True":
                if cond["type"] == "Failed":
                    raise RuntimeError(f"PyTorchJob {name} failed: {cond.get('message')}")
                return str(cond["type"])
        time.sleep(0.5)
    raise TimeoutError(f"PyTorchJob {name} did not finish in {timeout}s")


@dsl.pipeline(name="pytorchjob-launcher")
def pytorchjob_pipeline(name: str, namespace: str = "default", timeout: float = 120.0) -> None:
    launch_pytorchjob(name=name, namespace=namespace, timeout=timeout).set_caching_options(False)


def compile_pipelines(folder: Path) -> dict[str, Path]:
    out = {}
    for name, func in (
        ("demo", demo_pipeline),
        ("slow", slow_pipeline),
        ("flaky", flaky_pipeline),
        ("pytorchjob", pytorchjob_pipeline),
    ):
        path = folder / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path))
        out[name] = path
    return out


class KfpServer:
    """`python -m kubeflow_bridge.local.kfp` in its own session; stopped by pid."""

    def __init__(self, state_dir: Path, *extra_args: str) -> None:
        self.state_dir = state_dir
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 60) -> "KfpServer":
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeflow_bridge.local.kfp",
                "--port",
                "0",
                "--state-dir",
                str(self.state_dir),
                *self.extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=open(self.state_dir.parent / f"{self.state_dir.name}-server.log", "a"),  # noqa: SIM115
            text=True,
            start_new_session=True,
            cwd=str(self.state_dir.parent),
            # no S3 here: a run asking for an s3:// pipeline_root must be refused
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("KFP_ENDPOINT="):
                self.url = line.strip().split("=", 1)[1]
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"the KFP server did not start; see {self.state_dir}-server.log")

    def kill_hard(self) -> None:
        """SIGKILL the server process only (its runs are left behind, as after a crash)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is gone for our purposes
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def wait_run(http: httpx.Client, run_id: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = http.get(f"/apis/v2beta1/runs/{run_id}").json()
        return run if run["state"] in ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED") else None

    result: dict[str, Any] = wait_for(done, timeout, what=f"run {run_id} to finish")
    return result


def tasks_by_name(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["display_name"]: t for t in run["run_details"]["task_details"]}


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return compile_pipelines(tmp_path_factory.mktemp("kfp-packages"))


@pytest.fixture(scope="module")
def kfp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KfpServer]:
    server = KfpServer(tmp_path_factory.mktemp("kfp-state") / "state")
    server.state_dir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(kfp_server: KfpServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kfp_server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def kfp_client(kfp_server: KfpServer) -> Any:
    import kfp

    return kfp.Client(host=kfp_server.url)
