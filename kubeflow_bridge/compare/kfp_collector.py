"""Collect one KFP run as step records.

Source: the KFP v2beta1 REST API's run (``GET /apis/v2beta1/runs/{id}``) through
:class:`kubeflow_bridge.clients.kfp.KfpClient`: ``run_details.task_details`` give each task's start,
end, state and error. Compute seconds and outcome values come from each task's output parameters
(the local runtime's ``output_parameters`` extension; on a real KFP they live in MLMD, and the
components also write them into their Metrics artifact). Dependencies come from the run's
``pipeline_spec`` (``dependentTasks``), so the critical path follows the pipeline's real edges.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubeflow_bridge.compare.model import OrchestratorRun, StepRecord, normalize_state, parse_time
from kubeflow_bridge.compare.outputs import compute_seconds_from_output, outcome_from_outputs

#: Task details that are KFP's own structure, not steps: the root DAG and control-flow groups.
_STRUCTURAL_TASK = re.compile(r"^(root|condition(-branches)?-\d+|exit-handler-\d+|for-loop-\d+|.*-driver)$")


def spec_dependencies(pipeline_spec: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """``{task name: upstream task names}`` from a compiled pipeline spec, through control-flow groups.

    A task inside a ``dsl.If`` group depends on what the group depends on, and on its siblings as the
    group's own DAG says; a task that depends on a group depends on the group's tasks.
    """
    if not pipeline_spec:
        return {}
    spec = pipeline_spec.get("pipeline_spec", pipeline_spec)
    components = spec.get("components", {})
    result: dict[str, list[str]] = {}
    group_members: dict[str, list[str]] = {}

    def walk(dag: Mapping[str, Any], inherited: list[str]) -> list[str]:
        leaves: list[str] = []
        for name, task in dag.get("tasks", {}).items():
            deps = [*inherited, *task.get("dependentTasks", [])]
            ref = task.get("componentRef", {}).get("name", "")
            sub = components.get(ref, {}).get("dag")
            if sub is not None:
                group_members[name] = walk(sub, deps)
                leaves.extend(group_members[name])
            else:
                result[name] = deps
                leaves.append(name)
        return leaves

    walk(spec.get("root", {}).get("dag", {}), [])
    # A dependency on a group means a dependency on everything inside it.
    for name, deps in result.items():
        expanded: list[str] = []
        for dep in deps:
            for member in group_members.get(dep, [dep]):
                if member not in expanded:
                    expanded.append(member)
        result[name] = expanded
    return result


def spec_groups(pipeline_spec: Mapping[str, Any] | None) -> set[str]:
    """Names of a spec's structure, not steps: control-flow groups (``dsl.If`` ...) and the pipeline."""
    if not pipeline_spec:
        return set()
    spec = pipeline_spec.get("pipeline_spec", pipeline_spec)
    components = spec.get("components", {})
    names: set[str] = set()

    def walk(dag: Mapping[str, Any]) -> None:
        for name, task in dag.get("tasks", {}).items():
            sub = components.get(task.get("componentRef", {}).get("name", ""), {}).get("dag")
            if sub is not None:
                names.add(name)
                display = (task.get("taskInfo") or {}).get("name")
                if display:
                    names.add(str(display))
                walk(sub)

    walk(spec.get("root", {}).get("dag", {}))
    # Some backends (the local runtime among them) list the pipeline itself as a task.
    pipeline_name = (spec.get("pipelineInfo") or {}).get("name")
    if pipeline_name:
        names.add(str(pipeline_name))
    return names


def _task_name(detail: Mapping[str, Any]) -> str:
    return str(detail.get("display_name") or detail.get("task_id") or "")


def kfp_run_from_details(
    run: Mapping[str, Any],
    *,
    pipeline_spec: Mapping[str, Any] | None = None,
    step_names: Mapping[str, str] | None = None,
) -> OrchestratorRun:
    """Turn a v2beta1 run (as the REST API returns it) into an :class:`OrchestratorRun` (pure).

    Args:
        run: The run object, with ``run_details.task_details``.
        pipeline_spec: The compiled spec for dependencies (default: ``run["pipeline_spec"]``).
        step_names: Renames KFP task names to canonical step names (default: the task name).
    """
    rename = dict(step_names or {})
    spec = pipeline_spec if pipeline_spec is not None else run.get("pipeline_spec")
    deps = spec_dependencies(spec)
    groups = spec_groups(spec)
    details = (run.get("run_details") or {}).get("task_details") or []
    steps: list[StepRecord] = []
    states: dict[str, str] = {}
    outputs: dict[str, Any] = {}
    for detail in details:
        task = _task_name(detail)
        if not task or task in groups or _STRUCTURAL_TASK.match(task):
            continue
        name = rename.get(task, task)
        if name in states:
            # Retries of a task appear as several details; keep the last one (the one that counts).
            steps = [s for s in steps if s.step != name]
        state = normalize_state(detail.get("state"))
        params = dict(detail.get("output_parameters") or {})
        error = (detail.get("error") or {}).get("message") or None
        upstream = None if not deps else tuple(rename.get(u, u) for u in deps.get(task, []))
        steps.append(
            StepRecord(
                step=name,
                start=parse_time(detail.get("start_time")) or parse_time(detail.get("create_time")),
                end=parse_time(detail.get("end_time")),
                state=state,
                compute_seconds=compute_seconds_from_output(params),
                error=error,
                upstream=upstream,
            )
        )
        states[name] = state
        outputs[name] = params
    steps.sort(key=lambda s: (s.start is None, s.start.timestamp() if s.start else 0.0))
    return OrchestratorRun(
        orchestrator="kfp",
        run_id=str(run.get("run_id", "")),
        steps=steps,
        outcome=outcome_from_outputs(outputs, states),
        start=parse_time(run.get("created_at")),
        end=parse_time(run.get("finished_at")),
        state=normalize_state(run.get("state")),
        params=dict((run.get("runtime_config") or {}).get("parameters") or {}),
    )


def collect_kfp_run(
    host: str, run_id: str, *, namespace: str | None = None, step_names: Mapping[str, str] | None = None
) -> OrchestratorRun:
    """Fetch a run from a KFP API (``host``, e.g. the local runtime's endpoint) and collect it."""
    from kubeflow_bridge.clients.kfp import KfpClient  # the bridge core; imported when used

    client = KfpClient(host, namespace=namespace)
    run = client.get_run(run_id)
    return kfp_run_from_details(run, step_names=step_names)
