"""Run execution: one executor subprocess (own process group) per run attempt, and task details.

States follow the Argo-backed KFP backend: PENDING (waiting for a slot) -> RUNNING -> SUCCEEDED or
FAILED; a terminate sets CANCELING and kills the run's process group; the run then STAYS CANCELING,
as KFP never reports CANCELED for an Argo run. Tasks that were unfinished when the run was
terminated are reported CANCELED in task_details once the process group is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubeflow_bridge.local.kfp.query import ApiError, bad_request, now_ts, rfc3339
from kubeflow_bridge.local.kfp.store import Store
from kubeflow_bridge.local.warm import WARM_ENV, ZygoteInfo

TERMINAL = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")
_EXECUTOR_MODULE = "kubeflow_bridge.local.kfp.executor"
_RESTART_ERROR = "the local KFP API stopped while this run was in progress; retry the run to execute it again"


def split_root(root: str, local_default: str) -> tuple[str, str | None]:
    """(the folder kfp.local writes to, the s3:// URI its artifacts are mirrored to, if any).

    kfp.local writes only to local folders, so an s3:// (or KFP's minio://) root means: run on the
    local folder and upload each task's output artifacts there, reporting the s3:// URIs.
    """
    if not root:
        return local_default, None
    root = root.removeprefix("file://")
    if root.startswith("/"):
        return root, None
    for scheme in ("s3://", "minio://"):
        if root.startswith(scheme):
            rest = root[len(scheme) :].strip("/")
            if not rest:
                raise bad_request(f"pipeline_root {root!r} has no bucket: use s3://bucket/prefix")
            return local_default, "s3://" + rest
    raise bad_request(
        f"pipeline_root {root!r}: use s3://bucket/prefix (the runtime's S3), minio://bucket/prefix, "
        "or an absolute local folder"
    )


def _status(message: str, code: int = 2) -> dict[str, Any]:
    return {"code": code, "message": message, "details": []}


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))  # a line being written is skipped until complete
    return events


def _ts(text: str | None) -> str:
    return text.split(".")[0] + "Z" if text else rfc3339(None)


def build_run_details(
    run: dict[str, Any], events: list[dict[str, Any]], process_alive: bool
) -> dict[str, Any]:
    """task_details (with the output_parameters/output_artifacts/output_artifact_metadata extensions) from
    the executor's events."""
    run_id = run["run_id"]
    attempt = run.get("_attempt", 1)
    ns = uuid.uuid5(uuid.NAMESPACE_URL, f"kfp-local/{run_id}/{attempt}")
    pipeline_name = (run.get("_spec") or {}).get("pipelineInfo", {}).get("name", "pipeline")
    root_id = str(uuid.uuid5(ns, "root"))
    tasks: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for ev in events:
        kind = ev.get("event")
        if kind == "task_started":
            key = str(ev["seq"])
            order.append(key)
            tasks[key] = {
                "run_id": run_id,
                "task_id": str(uuid.uuid5(ns, key)),
                "display_name": ev["task"],
                "create_time": _ts(ev["time"]),
                "start_time": _ts(ev["time"]),
                "end_time": rfc3339(None),
                "state": "RUNNING",
                "execution_id": str(attempt * 10000 + int(ev["seq"])),
                "parent_task_id": root_id,
                "pod_name": f"{pipeline_name}-{run_id[:8]}-system-container-impl-{attempt}{int(ev['seq']):03d}",
                "state_history": [{"update_time": _ts(ev["time"]), "state": "RUNNING"}],
                "child_tasks": [],
                "output_parameters": {},
                "output_artifacts": {},
                "output_artifact_metadata": {},
            }
        elif kind == "task_finished" and str(ev.get("seq")) in tasks:
            task = tasks[str(ev["seq"])]
            task["state"] = ev["state"]
            task["end_time"] = _ts(ev["time"])
            task["state_history"].append({"update_time": _ts(ev["time"]), "state": ev["state"]})
            task["output_parameters"] = ev.get("output_parameters", {})
            task["output_artifacts"] = ev.get("output_artifacts", {})
            task["output_artifact_metadata"] = ev.get("output_artifact_metadata", {})
            if ev.get("error"):
                task["error"] = _status(ev["error"])
            if ev.get("cache_fingerprint"):  # served from the cache: SKIPPED with the cached outputs
                task["cache_fingerprint"] = ev["cache_fingerprint"]
                task["pod_name"] = ""  # nothing ran
        elif kind == "task_skipped":
            key = f"skipped-{ev['task']}"
            order.append(key)
            tasks[key] = {
                "run_id": run_id,
                "task_id": str(uuid.uuid5(ns, key)),
                "display_name": ev["task"],
                "create_time": _ts(ev["time"]),
                "start_time": rfc3339(None),
                "end_time": _ts(ev["time"]),
                "state": "SKIPPED",
                "parent_task_id": root_id,
                "state_history": [{"update_time": _ts(ev["time"]), "state": "SKIPPED"}],
                "child_tasks": [],
                "output_parameters": {},
                "output_artifacts": {},
                "output_artifact_metadata": {},
            }
    if not process_alive and run.get("state") in ("CANCELING", "CANCELED", "FAILED"):
        for task in tasks.values():
            if task["state"] == "RUNNING":
                task["state"] = "CANCELED" if run["state"] != "FAILED" else "FAILED"
                task["state_history"].append(
                    {"update_time": rfc3339(run.get("_finished")), "state": task["state"]}
                )
    children = [tasks[k] for k in order]
    root = {
        "run_id": run_id,
        "task_id": root_id,
        "display_name": pipeline_name,
        "create_time": rfc3339(run.get("_started") or run.get("_created")),
        "start_time": rfc3339(run.get("_started")),
        "end_time": rfc3339(run.get("_finished")),
        "state": run.get("state"),
        "execution_id": str(attempt * 10000),
        "pod_name": "",
        "state_history": run.get("state_history", []),
        "child_tasks": [{"task_id": t["task_id"], "pod_name": t.get("pod_name", "")} for t in children],
    }
    return {
        "pipeline_context_id": str(uuid.uuid5(ns, "context").int % 10**6),
        "pipeline_run_context_id": str(uuid.uuid5(ns, "run-context").int % 10**6),
        "task_details": [root, *children],
    }


class RunExecutor:
    """Starts, watches, terminates and recovers run processes; updates run records in the store."""

    def __init__(
        self,
        store: Store,
        *,
        state_dir: Path,
        pipeline_root: str,
        env: dict[str, str],
        python: str,
        max_parallel: int = 4,
        images_file: Path | None = None,
        warm: Callable[[], ZygoteInfo | None] | None = None,
    ) -> None:
        self._store = store
        self._warm = warm  # the ready zygote for the components (kubeflow_bridge.local.warm), if any
        self._runs_dir = state_dir / "runs"
        self._cache_root = state_dir / "cache"  # kfp.local's task cache, shared by runs as KFP's is
        self._envs_root = state_dir / "envs"  # packages_to_install environments, by requirement set
        self._images_file = images_file
        self._local_root = str(state_dir / "pipeline-root")
        self._pipeline_root = pipeline_root
        self.roots(pipeline_root)  # fail at construction on a bad default
        self._env = env
        self._python = python
        self._slots = asyncio.Semaphore(max_parallel)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self.on_finished: Callable[[dict[str, Any]], None] | None = None

    def roots(self, requested: str) -> tuple[str, str | None]:
        """Where a run with this runtime_config.pipeline_root writes; 400 if it cannot be honoured."""
        local, mirror = split_root(requested or self._pipeline_root, self._local_root)
        if mirror and not any(
            k in {**os.environ, **self._env} for k in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        ):
            raise bad_request(
                f"pipeline_root {mirror!r}: this KFP API has no S3 endpoint configured (AWS_ENDPOINT_URL); "
                "start it with the runtime's env or use a local folder"
            )
        return local, mirror

    def events_path(self, run: dict[str, Any]) -> Path:
        return self._runs_dir / run["run_id"] / f"attempt-{run.get('_attempt', 1)}" / "events.jsonl"

    def task_log(self, run: dict[str, Any], pod_name: str) -> str | None:
        """The output of the task execution shown with this (pseudo) pod name, or None if unknown."""
        for task in self.details(run)["task_details"][1:]:
            if task.get("pod_name") == pod_name and task.get("execution_id"):
                attempt, seq = divmod(int(task["execution_id"]), 10000)
                path = self._runs_dir / run["run_id"] / f"attempt-{attempt}" / "tasks" / f"{seq}.log"
                return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return None

    def forget(self, run_id: str) -> None:
        """Removes a deleted run's folder (spec, events, logs); its artifacts stay in the pipeline root."""
        shutil.rmtree(self._runs_dir / run_id, ignore_errors=True)
        self._procs.pop(run_id, None)
        self._tasks.pop(run_id, None)

    def alive(self, run_id: str) -> bool:
        proc = self._procs.get(run_id)
        return proc is not None and proc.returncode is None

    def details(self, run: dict[str, Any]) -> dict[str, Any]:
        return build_run_details(run, read_events(self.events_path(run)), self.alive(run["run_id"]))

    def _set_state(self, run: dict[str, Any], state: str) -> None:
        run["state"] = state
        run.setdefault("state_history", []).append({"update_time": rfc3339(now_ts()), "state": state})

    def start(self, run: dict[str, Any]) -> None:
        """Schedules the run's current attempt; the record must already be stored (state PENDING)."""
        self._tasks[run["run_id"]] = asyncio.get_running_loop().create_task(self._execute(run["run_id"]))

    async def _execute(self, run_id: str) -> None:
        async with self._slots:
            run = self._store.get("runs", run_id)
            if run is None or run["state"] != "PENDING":
                return
            attempt_dir = self.events_path(run).parent
            attempt_dir.mkdir(parents=True, exist_ok=True)
            (attempt_dir / "spec.json").write_text(json.dumps(run["_spec"]))
            (attempt_dir / "params.json").write_text(json.dumps(run.get("_params", {})))
            local_root, mirror_root = self.roots(run.get("runtime_config", {}).get("pipeline_root") or "")
            cmd = [
                self._python,
                "-m",
                _EXECUTOR_MODULE,
                "--spec",
                str(attempt_dir / "spec.json"),
                "--params",
                str(attempt_dir / "params.json"),
                "--pipeline-root",
                local_root,
                *(["--mirror-root", mirror_root] if mirror_root else []),
                "--events",
                str(attempt_dir / "events.jsonl"),
                "--cache-root",
                str(self._cache_root),
                "--envs-root",
                str(self._envs_root),
                *(["--images", str(self._images_file)] if self._images_file else []),
                "--run-id",
                run_id,
            ]
            env = {**os.environ, **self._env, "KFP_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}
            zygote = self._warm() if self._warm is not None else None
            if zygote is not None:
                env[WARM_ENV] = zygote.to_env()
            with (attempt_dir / "executor.log").open("ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    *cmd, cwd=str(attempt_dir), env=env, stdout=log, stderr=log, start_new_session=True
                )
            self._procs[run_id] = proc
            # re-read: a terminate or delete may have landed while the process was being spawned
            run = self._store.get("runs", run_id)
            if run is None or run["state"] != "PENDING":
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            else:
                run["_pid"] = proc.pid
                run["_started"] = now_ts()
                self._set_state(run, "RUNNING")
                self._store.put("runs", run_id, run)
            code = await proc.wait()
        self._finish(run_id, code)

    def _finish(self, run_id: str, code: int) -> None:
        run = self._store.get("runs", run_id)
        if run is None:
            return
        run["_finished"] = now_ts()
        run["_pid"] = None
        if run["state"] == "CANCELING":  # terminated: stays CANCELING, as on Argo
            self._store.put("runs", run_id, run)
            return
        final = [e for e in read_events(self.events_path(run)) if e.get("event") == "run_finished"]
        if final and final[-1].get("state") == "SUCCEEDED" and code == 0:
            self._set_state(run, "SUCCEEDED")
            run["error"] = None
        else:
            message = final[-1].get("error") if final else None
            failed = [
                e
                for e in read_events(self.events_path(run))
                if e.get("event") == "task_finished" and e.get("error")
            ]
            if failed:
                message = f"task {failed[0]['task']!r} failed: {failed[0]['error']}"
            self._set_state(run, "FAILED")
            run["error"] = _status(message or f"the run's executor exited with code {code}; see its log")
        run["finished_at"] = rfc3339(run["_finished"])
        self._store.put("runs", run_id, run)
        if self.on_finished is not None:
            self.on_finished(run)

    async def terminate(self, run: dict[str, Any]) -> None:
        run_id = run["run_id"]
        self._set_state(run, "CANCELING")
        self._store.put("runs", run_id, run)
        proc = self._procs.get(run_id)
        if proc is None or proc.returncode is not None:
            return  # not started yet: _execute sees CANCELING and never starts (or kills) it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=3)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        # kill what the component processes may have left in the group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def recover(self) -> None:
        """After a restart: runs that were in flight are FAILED; their orphaned process groups are killed."""
        for run in self._store.all("runs"):
            pid = run.get("_pid")
            if pid and _is_our_executor(pid, run["run_id"]):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            if run.get("state") in ("PENDING", "RUNNING"):
                run["_finished"] = now_ts()
                run["finished_at"] = rfc3339(run["_finished"])
                run["error"] = _status(_RESTART_ERROR)
                self._set_state(run, "FAILED")
            run["_pid"] = None
            self._store.put("runs", run["run_id"], run)

    async def close(self) -> None:
        """Stops watching first, then kills run processes: a restart then reports them FAILED."""
        for task in self._tasks.values():
            if not task.done():
                task.cancel()
        for proc in list(self._procs.values()):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


def _is_our_executor(pid: int, run_id: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return _EXECUTOR_MODULE in cmdline and run_id in cmdline


def require_state(run: dict[str, Any], allowed: tuple[str, ...], action: str) -> None:
    if run.get("state") not in allowed:
        raise ApiError(
            400,
            f"cannot {action} run {run['run_id']!r} in state {run.get('state')}: only {', '.join(allowed)} runs",
        )
