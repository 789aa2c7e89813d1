"""Executes one KFP run with kfp.local and reports task progress as JSON lines.

Started by the local KFP API as its own process group::

    python -m kubeflow_bridge.local.kfp.executor --spec SPEC.json --params PARAMS.json \
        --pipeline-root DIR --events EVENTS.jsonl [--cache-root DIR]

The compiled pipeline spec is loaded as a component (`load_component_from_text`) and called under
`kfp.local.init(runner=SubprocessRunner(use_venv=False))`. Progress comes from a wrapper around
`kfp.local.orchestrator.task_executor.execute_single_task`, the one function both kfp.local
orchestrators call per leaf task; each component process's output is teed to find its error line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from kubeflow_bridge.local.images import ImageMap
from kubeflow_bridge.local.kfp.platform import PLATFORM_KEY, executors, task_env
from kubeflow_bridge.local.warm import WARM_ENV, SyncWarmProcess, ZygoteInfo, start_sync

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*)$")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventWriter:
    """Appends one JSON object per line; thread safe (kfp.local runs tasks on threads)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.task_logs = path.parent / "tasks"  # one log per task execution: <seq>.log
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": _now(), **fields}, default=str)
        with self._lock, self._path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _split_outputs(
    outputs: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, Any]]]:
    """(parameters, artifact URIs, artifacts' type and metadata: what MLMD holds on KFP, e.g. the scalars
    a ``dsl.Metrics`` logged) of a task's outputs."""
    params: dict[str, Any] = {}
    artifacts: dict[str, str] = {}
    details: dict[str, dict[str, Any]] = {}
    for name, value in (outputs or {}).items():
        if isinstance(value, list) and value and isinstance(getattr(value[0], "uri", None), str):
            value = value[0]
        uri = getattr(value, "uri", None)
        if isinstance(uri, str):
            artifacts[name] = uri
            details[name] = {
                "schema_title": str(getattr(value, "schema_title", "") or ""),
                "metadata": _jsonable(getattr(value, "metadata", None) or {}),
            }
        else:
            params[name] = _jsonable(value)
    return params, artifacts, details


def _error_from_output(lines: list[str]) -> str:
    for line in reversed(lines):
        match = _ERROR_LINE.match(line.strip())
        if match:
            return match.group(1)
    tail = [ln.strip() for ln in lines if ln.strip()]
    return tail[-1] if tail else "the component exited with a non-zero status"


class ArtifactMirror:
    """Uploads task output artifacts from kfp.local's local root to an s3:// root (boto3, AWS_* env)."""

    def __init__(self, local_root: str, s3_root: str) -> None:
        import boto3

        self._local = Path(local_root).resolve()
        bucket, _, prefix = s3_root.removeprefix("s3://").partition("/")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._s3 = boto3.client("s3")

    def upload(self, local_uri: str) -> str:
        path = Path(local_uri).resolve()
        rel = path.relative_to(self._local).as_posix()
        key = f"{self._prefix}/{rel}" if self._prefix else rel
        if path.is_dir():
            for item in sorted(p for p in path.rglob("*") if p.is_file()):
                self._s3.upload_file(str(item), self._bucket, f"{key}/{item.relative_to(path).as_posix()}")
        elif path.exists():
            self._s3.upload_file(str(path), self._bucket, key)
        return f"s3://{self._bucket}/{key}"


def _install_hooks(
    events: EventWriter,
    display_names: dict[str, str],
    mirror: ArtifactMirror | None = None,
    images: ImageMap | None = None,
    envs_root: Path | None = None,
    platform_env: Callable[[str, str], tuple[dict[str, str], list[str]]] | None = None,
) -> list[str]:
    """Wraps kfp.local's per-task seams; returns the list that collects executed task names.

    Seams: ``task_executor.execute_single_task`` (task events), ``LocalCache.get`` (cache hits),
    ``SubprocessTaskHandler`` (how a component starts: :mod:`.components`) and
    ``subprocess_task_handler.run_local_subprocess`` (the task's log).
    """
    from kfp.local import cache as kfp_cache
    from kfp.local import executor_output_utils, subprocess_task_handler
    from kfp.local import status as kfp_status
    from kfp.local.orchestrator import task_executor
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    from kubeflow_bridge.local.kfp.components import LaunchError, PackageEnvs, error_line, plan_launch

    local = threading.local()
    executed: list[str] = []
    original_execute = task_executor.execute_single_task
    counter = {"n": 0}
    counter_lock = threading.Lock()

    zygote = ZygoteInfo.from_env(os.environ)

    def run_local_subprocess(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        env = {**os.environ, **(env_vars or {})}
        env.pop(WARM_ENV, None)
        captured: list[str] = getattr(local, "lines", [])
        log_path: Path | None = getattr(local, "log_path", None)
        log = log_path.open("a", encoding="utf-8") if log_path is not None else None
        with _start_component(zygote, full_command, env) as process:
            assert process.stdout is not None
            for line in iter(process.stdout.readline, ""):
                print(line, end="", flush=True)
                if log is not None:
                    log.write(line)
                    log.flush()
                captured.append(line.rstrip("\n"))
                del captured[:-200]
            code = process.wait()
        if log is not None:
            log.close()
        return code

    def execute_single_task(*args: Any, **kwargs: Any) -> Any:
        task_key = kwargs.get("task_name", args[0] if args else "task")
        task_name = display_names.get(task_key, task_key)  # taskInfo.name, KFP's display name
        parent = kwargs.get("pipeline_resource_name", "")
        with counter_lock:
            counter["n"] += 1
            seq = counter["n"]
        executed.append(task_key)
        local.lines = []
        local.cache_key = None
        task_spec, components = kwargs.get("task_spec"), kwargs.get("components") or {}
        component = components.get(task_spec.component_ref.name) if task_spec is not None else None
        local.executor_label = getattr(component, "executor_label", "")
        local.task_name = task_name
        events.task_logs.mkdir(exist_ok=True)
        local.log_path = events.task_logs / f"{seq}.log"
        events.emit("task_started", seq=seq, task=task_name, parent=parent)
        if "unique_pipeline_id" in kwargs and os.environ.get("KFP_RUN_ID"):
            # dsl.PIPELINE_JOB_ID_PLACEHOLDER is the run's id on KFP; kfp.local makes up a random one.
            kwargs["unique_pipeline_id"] = os.environ["KFP_RUN_ID"]
        try:
            outputs, task_status = original_execute(*args, **kwargs)
        except BaseException as exc:
            events.emit("task_finished", seq=seq, task=task_name, state="FAILED", error=f"{exc}")
            raise
        if task_status == kfp_status.Status.SUCCESS:
            params, artifacts, details = _split_outputs(outputs)
            if mirror is not None:
                try:
                    artifacts = {name: mirror.upload(uri) for name, uri in artifacts.items()}
                except Exception as exc:  # the artifacts are part of the task's result
                    error = f"could not upload output artifacts to S3: {type(exc).__name__}: {exc}"
                    events.emit("task_finished", seq=seq, task=task_name, state="FAILED", error=error)
                    return {}, kfp_status.Status.FAILURE
            cached = {"cache_fingerprint": local.cache_key} if local.cache_key else {}
            events.emit(
                "task_finished",
                seq=seq,
                task=task_name,
                state="SKIPPED" if cached else "SUCCEEDED",  # KFP: "skipped, for example, due to caching"
                output_parameters=params,
                output_artifacts=artifacts,
                output_artifact_metadata=details,
                **cached,
            )
        else:
            events.emit(
                "task_finished",
                seq=seq,
                task=task_name,
                state="FAILED",
                error=_error_from_output(local.lines),
            )
        return outputs, task_status

    def say(line: str) -> None:
        print(line, flush=True)
        log_path: Path | None = getattr(local, "log_path", None)
        if log_path is not None:
            with log_path.open("a", encoding="utf-8") as log:
                log.write(line + "\n")
        local.lines = [*getattr(local, "lines", []), line][-200:]

    def run_capturing(argv: list[str]) -> tuple[int, list[str]]:
        local.lines = []
        code = run_local_subprocess(argv)
        return code, list(local.lines)

    package_envs = PackageEnvs(envs_root or Path("envs").resolve(), run_capturing, say)
    image_map = images or ImageMap()

    def run_component(handler: Any) -> Any:
        extra: dict[str, str] = {}
        try:
            if platform_env is not None:
                extra, notes = platform_env(
                    getattr(local, "executor_label", ""), getattr(local, "task_name", "")
                )
                for note in notes:
                    say(note)
            launch = plan_launch(handler.image, list(handler.full_command), image_map, package_envs)
        except (LaunchError, LookupError) as exc:
            say(error_line(str(exc)))
            return kfp_status.Status.FAILURE
        code = run_local_subprocess(launch.argv, {**launch.env, **handler.env_vars, **extra})
        return kfp_status.Status.SUCCESS if code == 0 else kfp_status.Status.FAILURE

    original_get = kfp_cache.LocalCache.get

    def cache_get(self: Any, key: str) -> Any:
        found = original_get(self, key)
        local.cache_key = key if found is not None else None
        return found

    original_to_python = executor_output_utils.pb2_value_to_python

    def pb2_value_to_python(value: Any) -> Any:
        # an optional input with no default compiles to an empty Value; KFP passes nothing (None)
        return None if value.WhichOneof("kind") is None else original_to_python(value)

    original_outputs = executor_output_utils.get_outputs_for_task

    def get_outputs_for_task(executor_input: Any, component_spec: Any) -> Any:
        _copy_custom_paths(executor_input.outputs.output_file)
        return original_outputs(executor_input, component_spec)

    original_arguments = OrchestratorUtils.make_task_arguments.__func__  # type: ignore[attr-defined]

    def make_task_arguments(cls: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # an optional input left empty is not passed: the component's own default applies, as on KFP
        return {k: v for k, v in original_arguments(cls, *args, **kwargs).items() if v is not None}

    handler_cls = subprocess_task_handler.SubprocessTaskHandler
    # kfp.local refuses container components and warns on non-python images: the image map decides here
    handler_cls.validate_image = lambda self, image: None  # type: ignore[method-assign]
    handler_cls.validate_not_container_component = lambda self, cmd: None  # type: ignore[method-assign]
    handler_cls.validate_not_containerized_python_component = lambda self, cmd: None  # type: ignore[method-assign]
    handler_cls.run = run_component  # type: ignore[method-assign]
    kfp_cache.LocalCache.get = cache_get  # type: ignore[method-assign]
    executor_output_utils.pb2_value_to_python = pb2_value_to_python
    executor_output_utils.get_outputs_for_task = get_outputs_for_task
    OrchestratorUtils.make_task_arguments = classmethod(make_task_arguments)  # type: ignore[method-assign,assignment]
    task_executor.execute_single_task = execute_single_task
    subprocess_task_handler.run_local_subprocess = run_local_subprocess
    return executed


class _WarmComponent:
    """A component forked from the runtime's zygote, read as ``subprocess.Popen(stdout=PIPE, text=True)``."""

    def __init__(self, process: SyncWarmProcess, stdout: IO[str]) -> None:
        self.process = process
        self.stdout = stdout

    def wait(self) -> int:
        return self.process.wait()

    def __enter__(self) -> _WarmComponent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stdout.close()


def _start_component(
    zygote: ZygoteInfo | None, command: list[str], env: dict[str, str]
) -> _WarmComponent | subprocess.Popen[str]:
    """Start a task's process, its output on a pipe.

    A lightweight component's ``sh -ec`` launcher is run as the ``python -m kfp.dsl.executor_main``
    command it wraps (one process per component, not a shell and its Python), forked from the
    zygote when there is one that can run it: the fork dies with this executor, as a child in its process
    group would. Anything else runs as it is.
    """
    from kubeflow_bridge.local.kfp.components import without_shell

    direct = without_shell(command)
    if direct is not None:
        command, extra = direct
        env = {**env, **extra}
        argv = zygote.command(command, env) if zygote is not None else None
        if zygote is not None and argv is not None:
            read_end, write_end = os.pipe()
            try:
                warm = start_sync(zygote, argv, env, cwd=os.getcwd(), stdout=write_end, parent=os.getpid())
                return _WarmComponent(warm, open(read_end, encoding="utf-8", errors="replace"))
            except OSError:  # the zygote is gone: start it cold
                os.close(read_end)
            finally:
                os.close(write_end)
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
    )


def _platform_env(
    platform: dict[str, Any] | None, params: dict[str, Any]
) -> Callable[[str, str], tuple[dict[str, str], list[str]]] | None:
    """The kfp-kubernetes settings of a task, as its environment (secrets read from the runtime)."""
    settings = executors(platform)
    if not settings:
        return None
    from kubernetes import client, config

    api_client = config.new_client_from_config()
    namespace = config.list_kube_config_contexts()[1]["context"].get("namespace") or "default"
    core = client.CoreV1Api(api_client)

    def read(kind: str, name: str) -> dict[str, Any] | None:
        try:
            obj = (core.read_namespaced_secret if kind == "Secret" else core.read_namespaced_config_map)(
                name, namespace
            )
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {"data": obj.data or {}}

    def env_for(label: str, task: str) -> tuple[dict[str, str], list[str]]:
        return task_env(settings.get(label) or {}, params, read, namespace, task)

    return env_for


def _copy_custom_paths(executor_output: str) -> None:
    """An output artifact written to its ``custom_path`` is stored at its URI, as KFP's launcher uploads
    it from there (kfp.local reads only the default path)."""
    import shutil

    try:
        written = json.loads(Path(executor_output).read_text())
    except (OSError, ValueError):
        return
    for entry in (written.get("artifacts") or {}).values():
        for artifact in entry.get("artifacts") or []:
            source, uri = artifact.get("custom_path"), str(artifact.get("uri") or "")
            if not source or not Path(source).exists() or "://" in uri.removeprefix("file://"):
                continue
            target = Path(uri.removeprefix("file://"))
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(source).is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, target)


def _leaf_tasks(spec: dict[str, Any]) -> dict[str, str]:
    """{task key: taskInfo.name} of every task that runs a component (not a sub-DAG)."""
    components = spec.get("components", {})
    names: dict[str, str] = {}
    for comp in [spec.get("root", {}), *components.values()]:
        for key, task in (comp.get("dag", {}).get("tasks", {}) or {}).items():
            ref = task.get("componentRef", {}).get("name", "")
            if "executorLabel" in components.get(ref, {}):
                names.setdefault(key, (task.get("taskInfo") or {}).get("name") or key)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeflow_bridge.local.kfp.executor")
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--events", required=True, type=Path)
    parser.add_argument("--cache-root", default=None, help="kfp.local's task cache, shared by every run")
    parser.add_argument(
        "--envs-root", default=None, type=Path, help="cached environments of packages_to_install"
    )
    parser.add_argument("--images", default=None, type=Path, help="the runtime's images.yaml")
    parser.add_argument(
        "--mirror-root", default=None, help="s3://bucket/prefix to upload output artifacts to"
    )
    parser.add_argument("--run-id", default="", help="the run this process executes (identifies it in ps)")
    args = parser.parse_args(argv)

    events = EventWriter(args.events)
    events.emit("run_started")
    try:
        import yaml
        from kfp import components, local

        spec = json.loads(args.spec.read_text())
        params = json.loads(args.params.read_text())
        platform_env = _platform_env(spec.pop(PLATFORM_KEY, None), params)
        workspace = args.events.parent / "workspace"
        workspace.mkdir(exist_ok=True)
        mirror = ArtifactMirror(args.pipeline_root, args.mirror_root) if args.mirror_root else None
        leaves = _leaf_tasks(spec)
        executed = _install_hooks(
            events, leaves, mirror, ImageMap.from_file(args.images), args.envs_root, platform_env
        )
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=args.pipeline_root,
            workspace_root=str(workspace),  # not a fresh /tmp folder per run
            raise_on_error=True,
            enable_caching=args.cache_root is not None,
            cache_root=args.cache_root,
        )
        pipeline = components.load_component_from_text(yaml.safe_dump(spec))
        outputs = pipeline(**params)
    except BaseException as exc:  # report every failure, including a KeyboardInterrupt
        traceback.print_exc()
        events.emit("run_finished", state="FAILED", error=_ANSI.sub("", f"{type(exc).__name__}: {exc}"))
        return 1
    for key, name in leaves.items():
        if key not in executed:
            events.emit("task_skipped", task=name)
    del outputs
    events.emit("run_finished", state="SUCCEEDED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
