"""Katib controllers of the local runtime: Experiments (with a suggestion process each) and Trials.

* :class:`ExperimentController` marks an Experiment Created, starts its suggestion process
  (:mod:`kubeflow_bridge.local.katib.suggestion`, in the trainer environment, like Katib's
  per-experiment suggestion pod), recomputes status from its Trials on every reconcile
  (LIFECYCLE: counters, lists, currentOptimalTrial, conditions goal -> maxFailed -> maxTrials ->
  suggestion end -> running) and, once completed, stops the suggestion process and kills active trials.
* :class:`TrialController` creates a Trial's job (Job or PyTorchJob from ``runSpec``, owned by the
  Trial), follows the job's success/failure conditions, collects metrics from the primary container's
  log as Katib's StdOut collector does, marks the trial Succeeded / MetricsUnavailable / Failed /
  EarlyStopped (when the suggestion process annotates it), and deletes the job when the trial finishes
  unless ``retainRun``.

Register both with ``manager.add(...)`` (see :func:`controllers`).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver.kinds import (
    EXPERIMENT,
    JOB,
    POD,
    PYTORCHJOB,
    TRAINJOB,
    TRIAL,
    ResourceType,
)
from kubeflow_bridge.local.controllers.base import Controller, Request
from kubeflow_bridge.local.images import TRAINER_IMAGE
from kubeflow_bridge.local.katib import metrics as katib_metrics
from kubeflow_bridge.local.katib import status as katib_status
from kubeflow_bridge.local.katib.suggestion import EARLY_STOP_ANNOTATION
from kubeflow_bridge.local.katib.template import EXPERIMENT_LABEL, TRIAL_LABEL, metric_names
from kubeflow_bridge.local.processes import ManagedProcess

log = logging.getLogger("kubeflow_bridge.local.katib.controller")

RUNNING_REQUEUE = 1.0
MAX_SUGGESTION_RESTARTS = 3
_CONDITION_RE = re.compile(r'#\(type=="([^"]+)"\)#\|#\(status=="([^"]+)"\)#')
#: The resource of each trial kind this runtime runs (``search.TRIAL_KINDS``).
TRIAL_KINDS: dict[str, ResourceType] = {"Job": JOB, "PyTorchJob": PYTORCHJOB, "TrainJob": TRAINJOB}


def _condition_match(job: dict[str, Any], expression: str) -> dict[str, Any] | None:
    """Evaluate Katib's GJSON success/failure condition form ``status.conditions.#(type=="X")#|#(status=="Y")#``."""
    match = _CONDITION_RE.search(expression or "")
    if not match:
        return None
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == match.group(1) and cond.get("status") == match.group(2):
            return cond  # type: ignore[no-any-return]
    return None


def _job_rt(trial: dict[str, Any]) -> ResourceType:
    kind = (trial["spec"].get("runSpec") or {}).get("kind", "Job")
    return TRIAL_KINDS.get(kind, JOB)


class TrialController(Controller):
    """Runs each Trial's job and writes the Trial's status (see the module docstring)."""

    name = "katib-trial"
    kinds = (TRIAL,)
    owns = (JOB, PYTORCHJOB, TRAINJOB)

    def _metrics_file(self, trial: dict[str, Any]) -> Path | None:
        return katib_metrics.local_metrics_file(self.ctx.state_dir / "katib-metrics", trial)

    def _job_body(self, trial: dict[str, Any]) -> dict[str, Any]:
        """The runSpec; with a File collector, its metrics path points into the trial's own folder."""
        run_spec: dict[str, Any] = trial["spec"]["runSpec"]
        local = self._metrics_file(trial)
        source = katib_metrics.file_source(trial["spec"].get("metricsCollector"))
        if local is None or source is None:
            return run_spec
        local.parent.mkdir(parents=True, exist_ok=True)
        return dict(json.loads(json.dumps(run_spec).replace(source[0], str(local))))

    def _primary_log(self, trial: dict[str, Any]) -> str:
        local = self._metrics_file(trial)
        if local is not None:
            return local.read_text(errors="replace") if local.exists() else ""
        ns = trial["metadata"]["namespace"]
        labels = {TRIAL_LABEL: trial["metadata"]["name"], **(trial["spec"].get("primaryPodLabels") or {})}
        pods = self.ctx.list(POD, ns, labels=labels)
        if not pods:
            return ""
        container = trial["spec"].get("primaryContainerName") or (
            ((pods[-1].get("spec") or {}).get("containers") or [{}])[0].get("name", "")
        )
        text = []
        for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")):
            path = self.ctx.pod_log_path(ns, pod["metadata"]["name"], container)
            if path.exists():
                text.append(path.read_text(errors="replace"))
        return text[-1] if text else ""

    def _observation(self, trial: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        names = metric_names({"spec": {"objective": trial["spec"]["objective"]}})
        filters = (
            ((trial["spec"].get("metricsCollector") or {}).get("source") or {}).get("filter") or {}
        ).get("metricsFormat")
        source = katib_metrics.file_source(trial["spec"].get("metricsCollector"))
        logs = katib_metrics.collect(
            self._primary_log(trial), names, filters, source[1] if source else "TEXT"
        )
        obs = katib_metrics.observation(logs, names)
        return obs, katib_metrics.objective_available(obs, names[0])

    def _orphaned(self, trial: dict[str, Any]) -> bool:
        for ref in trial["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Experiment" and ref.get("controller"):
                owner = self.ctx.get(EXPERIMENT, trial["metadata"]["namespace"], ref.get("name", ""))
                return owner is None or owner["metadata"].get("uid") != ref.get("uid")
        return False

    def _finish(self, trial: dict[str, Any]) -> None:
        if not trial["spec"].get("retainRun"):
            self.ctx.delete(_job_rt(trial), trial["metadata"]["namespace"], trial["metadata"]["name"])

    async def reconcile(self, req: Request) -> float | None:
        trial = self.ctx.get(TRIAL, req.namespace, req.name)
        if trial is None:
            return None
        if self._orphaned(trial):
            # Created by a suggestion process racing its experiment's deletion: garbage-collect it, as
            # Kubernetes' garbage collector does for objects whose owner is gone.
            self.ctx.delete(TRIAL, req.namespace, req.name)
            return None
        old = copy.deepcopy(trial.get("status") or {})
        status = copy.deepcopy(old)
        ns, name = req.namespace, req.name
        if katib_status.get_condition(status, "Created") is None:
            katib_status.mark_trial_created(status)
        if katib_status.trial_is_completed({"status": status}):
            if status != old:
                self.ctx.set_status(TRIAL, trial, status)
            return None
        rt = _job_rt(trial)
        annotations = trial["metadata"].get("annotations") or {}
        if annotations.get(EARLY_STOP_ANNOTATION) == "true":
            obs, _ = self._observation(trial)
            status["observation"] = obs
            katib_status.mark_trial_early_stopped(status)
            self.ctx.set_status(TRIAL, trial, status)
            self.ctx.event(trial, "TrialEarlyStopped", "Trial is early stopped by the median stopping rule")
            self.ctx.delete(rt, ns, name)
            return None
        job = self.ctx.get(rt, ns, name)
        if job is None:
            try:
                self.ctx.create(rt, self._job_body(trial), namespace=ns, owner=trial)
            except apierrors.ApiError as exc:
                katib_status.mark_trial_failed(status, "InvalidJob", str(exc))
                self.ctx.set_status(TRIAL, trial, status)
                self.ctx.event(trial, "TrialFailed", f"cannot create the trial job: {exc}", type="Warning")
                return None
            self.ctx.event(trial, "JobCreated", f"Job {name} has been created")
            katib_status.mark_trial_running(status)
            self.ctx.set_status(TRIAL, trial, status)
            return RUNNING_REQUEUE
        succeeded = _condition_match(job, trial["spec"].get("successCondition", ""))
        failed = _condition_match(job, trial["spec"].get("failureCondition", ""))
        if succeeded is not None or failed is not None:
            obs, available = self._observation(trial)
            status["observation"] = obs
            cond = succeeded if succeeded is not None else failed
            assert cond is not None
            reason, message = str(cond.get("reason") or ""), str(cond.get("message") or "")
            if failed is not None:
                katib_status.mark_trial_failed(status, reason, message)
            elif available:
                katib_status.mark_trial_succeeded(status, reason, message)
            else:
                katib_status.mark_trial_metrics_unavailable(status, reason, message)
            self.ctx.set_status(TRIAL, trial, status)
            self._finish(trial)
            return None
        katib_status.mark_trial_running(status)
        obs, available = self._observation(trial)
        if available:
            status["observation"] = obs
        if status != old:
            self.ctx.set_status(TRIAL, trial, status)
        return RUNNING_REQUEUE


class ExperimentController(Controller):
    """Drives each Experiment with a suggestion process (see the module docstring)."""

    name = "katib-experiment"
    kinds = (EXPERIMENT,)
    owns = (TRIAL,)

    def __init__(self) -> None:
        super().__init__()
        self._suggestions: dict[str, ManagedProcess] = {}
        self._restarts: dict[str, int] = {}

    async def stop(self) -> None:
        for key in list(self._suggestions):
            await self._stop_suggestion(key)

    @staticmethod
    def _key(exp: dict[str, Any]) -> str:
        return str(exp["metadata"]["uid"])

    async def _start_suggestion(self, exp: dict[str, Any]) -> ManagedProcess:
        python, overlay = self.ctx.image_env(TRAINER_IMAGE)
        ns, name = exp["metadata"]["namespace"], exp["metadata"]["name"]
        env = {**self.ctx.runtime_env(), **overlay}
        kubeconfig = env.get("KUBECONFIG") or str(self.ctx.state_dir / "kubeconfig")
        logdir = self.ctx.state_dir / "katib" / ns
        logdir.mkdir(parents=True, exist_ok=True)
        argv = [python or sys.executable, "-m", "kubeflow_bridge.local.katib.suggestion"]
        argv += ["--experiment", f"{ns}/{name}", "--kubeconfig", kubeconfig]
        argv += ["--metrics-dir", str(self.ctx.state_dir / "katib-metrics")]
        proc = await self.ctx.processes.spawn(
            f"katib-suggestion-{ns}-{name}", argv, env=env, log_path=logdir / f"{name}-suggestion.log"
        )
        self.ctx.event(exp, "SuggestionCreated", f"suggestion process started (pid {proc.pid})")
        return proc

    async def _stop_suggestion(self, key: str) -> None:
        proc = self._suggestions.pop(key, None)
        self._restarts.pop(key, None)
        if proc is not None and proc.returncode is None:
            await proc.terminate(grace=5.0)

    def _kill_active_trials(self, trials: list[dict[str, Any]]) -> None:
        for trial in trials:
            if katib_status.trial_is_completed(trial):
                continue
            status = copy.deepcopy(trial.get("status") or {})
            katib_status.mark_trial_killed(status)
            self.ctx.set_status(TRIAL, trial, status)
            self.ctx.delete(_job_rt(trial), trial["metadata"]["namespace"], trial["metadata"]["name"])

    async def reconcile(self, req: Request) -> float | None:
        exp = self.ctx.get(EXPERIMENT, req.namespace, req.name)
        if exp is None:
            return None
        key = self._key(exp)
        old = copy.deepcopy(exp.get("status") or {})
        if katib_status.get_condition(old, "Created") is None:
            status: dict[str, Any] = {}
            katib_status.mark_experiment_created(status)
            self.ctx.set_status(EXPERIMENT, exp, status)
            return 0.0
        trials = [
            t
            for t in self.ctx.list(TRIAL, req.namespace, labels={EXPERIMENT_LABEL: req.name})
            if any(r.get("uid") == key for r in t["metadata"].get("ownerReferences") or [])
        ]
        trials.sort(
            key=lambda t: (
                t["metadata"].get("creationTimestamp", ""),
                int(t["metadata"].get("resourceVersion") or 0),
            )
        )
        exp["status"] = copy.deepcopy(old)
        if katib_status.experiment_is_completed(exp):
            await self._stop_suggestion(key)
            self._kill_active_trials(trials)
            katib_status.summarize_trials(
                exp, self.ctx.list(TRIAL, req.namespace, labels={EXPERIMENT_LABEL: req.name})
            )
            if exp["status"] != old:
                self.ctx.set_status(EXPERIMENT, exp, exp["status"])
            return None
        proc = self._suggestions.get(key)
        if proc is not None and proc.returncode is not None and proc.returncode < 0:
            # Killed by a signal (not a search error): restart it, as a Deployment restarts Katib's
            # suggestion pod; its trainables find the trials that already exist.
            restarts = self._restarts.get(key, 0)
            if restarts < MAX_SUGGESTION_RESTARTS:
                self._restarts[key] = restarts + 1
                self.ctx.event(
                    exp, "SuggestionRestarted", f"suggestion process ended by signal {-proc.returncode}"
                )
                proc = None
        failure = ""
        if proc is None:
            try:
                proc = self._suggestions[key] = await self._start_suggestion(exp)
            except Exception as exc:  # e.g. the trainer environment is missing
                failure = f"Experiment has failed because the suggestion service could not start: {exc}"
        if proc is not None and proc.returncode not in (None, 0):
            failure = (
                f"Experiment has failed because the suggestion service failed (exit code {proc.returncode}); "
                f"see {proc.log_path}"
            )
        suggestion_done = proc is not None and proc.returncode == 0
        if failure:
            now = katib_status.now_rfc3339()
            katib_status.summarize_trials(exp, trials)
            running = katib_status.get_condition(exp["status"], "Running")
            if running is not None:
                katib_status.set_condition(
                    exp["status"], "Running", "False", running["reason"], running["message"], now
                )
            katib_status.set_condition(exp["status"], "Failed", "True", "ExperimentFailed", failure, now)
            exp["status"]["completionTime"] = now
        else:
            katib_status.update_experiment_status(exp, trials, suggestion_done)
        if exp["status"] != old:
            self.ctx.set_status(EXPERIMENT, exp, exp["status"])
        if katib_status.experiment_is_completed(exp):
            last = exp["status"]["conditions"][-1]
            self.ctx.event(exp, last["reason"], last["message"])
            return 0.0  # the completed branch stops the suggestion and kills active trials
        return 2.0

    async def on_deleted(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        await self._stop_suggestion(self._key(obj))


def label_trial_pod(store: Any, pod: dict[str, Any]) -> None:
    """Katib's pod webhook (``mutatePodMetadata``): a pod whose controller chain leads to a Trial gets
    the Trial's labels, so its primary pod is found whatever made it (a TrainJob's pods come from its
    runtime's template, which the Trial never sees)."""
    namespace = pod["metadata"].get("namespace", "")
    owners = pod["metadata"].get("ownerReferences") or []
    for _ in range(4):  # pod -> job (-> ...) -> Trial
        ref = next((r for r in owners if r.get("controller")), None)
        if ref is None:
            return
        if ref.get("kind") == "Trial":
            trial = store.find(TRIAL, namespace, ref.get("name", ""))
            if trial is not None:
                labels = pod["metadata"].setdefault("labels", {})
                labels[TRIAL_LABEL] = trial["metadata"]["name"]
                experiment = (trial["metadata"].get("labels") or {}).get(EXPERIMENT_LABEL)
                if experiment:
                    labels[EXPERIMENT_LABEL] = experiment
            return
        rt = TRIAL_KINDS.get(str(ref.get("kind")))
        owner = store.find(rt, namespace, ref.get("name", "")) if rt is not None else None
        if owner is None:
            return
        owners = owner["metadata"].get("ownerReferences") or []


def install(runtime: Any) -> None:
    """Add Katib to a runtime: its two controllers, and its Experiment admission (Katib's webhook rules
    plus what this runtime can run, so an experiment it cannot run is refused at create)."""
    from kubeflow_bridge.local.katib.validation import validate_experiment

    runtime.admission.validators["kubeflow.org/experiments"] = validate_experiment
    runtime.admission.webhooks["kubeflow.org/experiments"] = "validator.experiment.katib.kubeflow.org"

    def label_new_pod(pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        if old is None:
            label_trial_pod(runtime.store, pod)

    runtime.admission.validators[POD.key] = label_new_pod
    runtime.manager.add(ExperimentController())
    runtime.manager.add(TrialController())
