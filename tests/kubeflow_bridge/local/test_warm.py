"""Warm starts: a real zygote forks processes that behave as cold ones do; the runtime uses it for
trainer-image pods and KFP components, and a run's kill still takes its components."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeflow_bridge.local.images import TRAINER_IMAGE, ImageMap
from kubeflow_bridge.local.warm import START_UP_ENV, WarmPool, ZygoteInfo, start_sync, warm_argv

from .conftest import RuntimeHandle, group_gone, python_pod, wait_for

PYTHON = ImageMap().resolve(TRAINER_IMAGE)[0]
BASE_ENV = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WarmPool, ZygoteInfo]]:
    """A zygote of the trainer environment preloading numpy (a loop in a thread serves its requests)."""
    loop = asyncio.new_event_loop()
    pool = WarmPool(tmp_path_factory.mktemp("warm"), dict(BASE_ENV))

    async def ready() -> ZygoteInfo:
        while (info := pool.ready(PYTHON, ("numpy",))) is None:
            await asyncio.sleep(0.05)
        return info

    info = loop.run_until_complete(asyncio.wait_for(ready(), 60))
    try:
        yield pool, info
    finally:
        loop.run_until_complete(pool.stop())
        loop.close()


def _run(info: ZygoteInfo, argv: list[str], tmp_path: Path, **env: str) -> tuple[int, str, int]:
    """Fork ``argv`` (cwd tmp_path); its exit code, output and pid."""
    out = tmp_path / f"out-{time.monotonic_ns()}.log"
    with out.open("wb") as fh:
        proc = start_sync(info, argv, {**BASE_ENV, **env}, cwd=str(tmp_path), stdout=fh.fileno())
    code = proc.wait()
    return code, out.read_text(), proc.pid


def test_forked_process_is_what_a_cold_one_would_be(
    zygote: tuple[WarmPool, ZygoteInfo], tmp_path: Path
) -> None:
    _, info = zygote
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper.py").write_text("VALUE = 7\n")
    code = (
        "import json, os, sys, numpy, helper\n"
        "print(json.dumps({'env': os.environ.get('GREETING'), 'cwd': os.getcwd(), 'argv': sys.argv,"
        " 'helper': helper.VALUE, 'leader': os.getpgrp() == os.getpid(), 'sid': os.getsid(0) == os.getpid(),"
        " 'stdin': sys.stdin.read(), 'draw': numpy.random.rand(), 'preloaded': 'numpy' in sys.modules}))\n"
        "sys.exit(3)"
    )
    results = []
    for _ in range(2):
        exit_code, output, _pid = _run(
            info, [PYTHON, "-c", code, "x", "y"], tmp_path, GREETING="hi", PYTHONPATH=str(tmp_path / "lib")
        )
        assert exit_code == 3, output
        results.append(json.loads(output))
    first, second = results
    assert first["env"] == "hi" and first["cwd"] == str(tmp_path) and first["argv"] == ["-c", "x", "y"]
    assert first["helper"] == 7 and first["leader"] and first["sid"] and first["stdin"] == ""
    assert first["draw"] != second["draw"], "each process needs its own random state, as a cold start has"


def test_exit_statuses_and_tracebacks(zygote: tuple[WarmPool, ZygoteInfo], tmp_path: Path) -> None:
    _, info = zygote
    code, output, _ = _run(info, [PYTHON, "-c", "raise ValueError('boom')"], tmp_path)
    assert code == 1
    assert output.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<string>", line 1, in <module>',
        "ValueError: boom",
    ], "the traceback is the program's, without the zygote's frames"
    code, output, _ = _run(info, [PYTHON, "-c", "import sys; sys.exit('bad input')"], tmp_path)
    assert (code, output.strip()) == (1, "bad input")
    code, _, _ = _run(
        info, [PYTHON, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], tmp_path
    )
    assert code == -signal.SIGKILL
    script = tmp_path / "tool.py"
    script.write_text(
        "import sys\nprint(__name__, sys.argv[1:])\nimport atexit\natexit.register(print, 'bye')\n"
    )
    code, output, _ = _run(info, [PYTHON, str(script), "--flag"], tmp_path)
    assert (code, output.split("\n")[:2]) == (0, ["__main__ ['--flag']", "bye"])
    code, output, _ = _run(info, [PYTHON, "-m", "json.tool", "--help"], tmp_path)
    assert code == 0 and "usage:" in output and "json.tool" in output


def test_unbuffered_output_arrives_while_the_process_runs(
    zygote: tuple[WarmPool, ZygoteInfo], tmp_path: Path
) -> None:
    _, info = zygote
    out = tmp_path / "live.log"
    with out.open("wb") as fh:
        proc = start_sync(
            info,
            [PYTHON, "-c", "import time; print('first'); time.sleep(30)"],
            {**BASE_ENV, "PYTHONUNBUFFERED": "1"},
            cwd=str(tmp_path),
            stdout=fh.fileno(),
        )
    wait_for(lambda: out.read_text().strip() == "first", timeout=10, what="the first line")
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait() == -signal.SIGTERM


def test_dies_with_its_parent(zygote: tuple[WarmPool, ZygoteInfo], tmp_path: Path) -> None:
    """A KFP component forked for a run's executor ends when the executor is killed (as its group would)."""
    _, info = zygote
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with (tmp_path / "child.log").open("wb") as fh:
        child = start_sync(
            info,
            [PYTHON, "-c", "import time; time.sleep(60)"],
            BASE_ENV,
            cwd=str(tmp_path),
            stdout=fh.fileno(),
            parent=parent.pid,
        )
    os.kill(child.pid, 0)
    parent.kill()
    parent.wait()
    started = time.monotonic()
    assert child.wait() == -signal.SIGTERM
    assert time.monotonic() - started < 5


def test_an_edited_project_source_retires_the_zygote(tmp_path: Path) -> None:
    """Cold starts run the code as it is now; so do warm ones: an edit starts a new zygote."""
    project = tmp_path / "project"
    project.mkdir()
    module = project / "stepcode.py"
    module.write_text("VERSION = 1\n")
    pool = WarmPool(tmp_path / "warm", {**BASE_ENV, "PYTHONPATH": str(project)})
    probe = [PYTHON, "-c", "import stepcode; print(stepcode.VERSION)"]

    async def ready() -> ZygoteInfo:
        while (info := pool.ready(PYTHON, ("stepcode",))) is None:
            await asyncio.sleep(0.05)
        return info

    async def version(info: ZygoteInfo) -> str:
        out = tmp_path / f"v-{time.monotonic_ns()}.log"
        with out.open("wb") as fh:
            proc = await pool.spawn(
                info, probe, {**BASE_ENV, "PYTHONPATH": str(project)}, cwd=None, stdout=fh.fileno()
            )
        assert await proc.wait() == 0
        return out.read_text().strip()

    async def scenario() -> None:
        first = await asyncio.wait_for(ready(), 60)
        assert await version(first) == "1"
        with (tmp_path / "long.log").open("wb") as fh:
            running = await pool.spawn(
                first,
                [PYTHON, "-c", "import time, sys; time.sleep(2); sys.exit(5)"],
                BASE_ENV,
                cwd=None,
                stdout=fh.fileno(),
            )
        module.write_text("VERSION = 22\n")  # another size: a same-second edit of one size keeps its .pyc
        assert pool.ready(PYTHON, ("stepcode",)) is None, "a zygote with the old code must not serve"
        second = await asyncio.wait_for(ready(), 60)
        assert await version(second) == "22"
        # the retired zygote still reports what ran from it, then ends
        assert await running.wait() == 5
        await asyncio.wait_for(pool.retired[0].proc.wait(), 10)

    async def scenario_then_stop() -> None:
        try:
            await scenario()
        finally:  # a failed assertion must not leave zygotes running
            await pool.stop()

    asyncio.run(scenario_then_stop())


def test_what_starts_cold() -> None:
    info = ZygoteInfo(PYTHON, "/nonexistent.sock", {"LANG": "C.UTF-8"})
    env = {"LANG": "C.UTF-8", "OTHER": "1", "PATH": str(Path(PYTHON).parent)}
    assert info.command([PYTHON, "-m", "trainer", "train"], env) == [PYTHON, "-m", "trainer", "train"]
    # a console script of the environment runs as its #! line does: python SCRIPT
    torchrun = str(Path(PYTHON).parent / "torchrun")
    assert info.command(["torchrun", "-m", "trainer"], env) == [PYTHON, torchrun, "-m", "trainer"]
    assert info.command([PYTHON, "-m", "trainer"], {**env, "OMP_NUM_THREADS": "1"}) is None
    assert info.command([PYTHON, "-m", "trainer"], {}) is None, (
        "a different locale reads differently at start-up"
    )
    assert warm_argv(["/usr/bin/python3", "-c", "pass"], PYTHON) is None  # another interpreter
    assert warm_argv([PYTHON, "-u", "-c", "pass"], PYTHON) is None  # interpreter options
    assert warm_argv(["sh", "-c", "python -c pass"], PYTHON, "/bin:/usr/bin") is None  # not a Python script
    assert warm_argv(["torchrun"], PYTHON, "/bin:/usr/bin") is None  # not this environment's
    assert warm_argv([PYTHON, "script.py", "--x"], PYTHON) == [PYTHON, "script.py", "--x"]
    assert {"PYTHONHASHSEED", "OMP_NUM_THREADS", "LD_PRELOAD"} <= set(START_UP_ENV)
    with pytest.raises(OSError):
        start_sync(info, [PYTHON, "-c", "pass"], {}, cwd=None, stdout=1)


PRELOADED = "import os, sys; print('torch' in sys.modules, os.getpgrp() == os.getpid(), flush=True)"


def _trainer_pod(name: str, code: str) -> dict[str, Any]:
    return python_pod(name, code, image=TRAINER_IMAGE)


def test_trainer_pods_start_warm_once_the_zygote_is_ready(runtime: RuntimeHandle, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"

    def finished(c: Any, name: str) -> str:
        pod = c.get(f"{pods}/{name}").json()
        return pod["status"]["phase"] if pod["status"].get("phase") in ("Succeeded", "Failed") else ""

    with runtime.http() as c:
        for attempt in range(30):  # the first trainer pod of a runtime starts cold and the zygote beside it
            name = f"p{attempt}"
            c.post(pods, json=_trainer_pod(name, PRELOADED)).raise_for_status()
            assert wait_for(lambda name=name: finished(c, name), timeout=60, what="pod end") == "Succeeded"
            if c.get(f"{pods}/{name}/log").text.split() == ["True", "True"]:
                break
            time.sleep(0.5)
        else:
            pytest.fail("no trainer pod was forked from a ready zygote")
        # warm or cold, delete takes the pod's whole process group
        c.post(
            pods, json=_trainer_pod("k", "import os, time; print(os.getpid(), flush=True); time.sleep(300)")
        )
        pid = int(wait_for(lambda: c.get(f"{pods}/k/log").text.strip(), timeout=30, what="pid"))
        os.killpg(pid, 0)
        c.delete(f"{pods}/k").raise_for_status()
        wait_for(lambda: group_gone(pid), timeout=15, what="process group gone")
        # another image stays cold (nothing preloaded)
        c.post(pods, json=python_pod("cold", PRELOADED)).raise_for_status()
        assert wait_for(lambda: finished(c, "cold"), timeout=60, what="pod end") == "Succeeded"
        assert c.get(f"{pods}/cold/log").text.split() == ["False", "True"]


def test_kfp_components_fork_from_the_zygote_and_die_with_their_run(
    runtime: RuntimeHandle, tmp_path: Path
) -> None:
    import kfp

    from . import kfp_fixtures as fx

    package = fx.compile_pipelines(tmp_path)["slow"]
    client = kfp.Client(host=runtime.kfp, existing_token=runtime.own_token or None)
    for attempt in range(10):  # the first run starts the zygote; its components start cold
        pid_file = tmp_path / f"pid-{attempt}"
        run = client.create_run_from_pipeline_package(
            str(package), arguments={"pid_file": str(pid_file)}, run_name=f"warm-{attempt}"
        )
        fx.wait_for(
            lambda pid_file=pid_file: pid_file.exists() and pid_file.read_text(),
            60,
            what="the component to start",
        )
        pid = int(pid_file.read_text())
        warm = "zygote.py" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        client.terminate_run(run.run_id)
        fx.wait_for(lambda pid=pid: not fx.pid_alive(pid), 15, what="the component to end with its run")
        if warm:
            break
        time.sleep(1)
    else:
        pytest.fail("no component was forked from the zygote")
    assert client.get_run(run.run_id).state == "CANCELING"
