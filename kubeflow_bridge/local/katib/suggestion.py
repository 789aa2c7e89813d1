"""The per-experiment suggestion process: Katib's suggestion service and early stopping, in-process.

Like Katib's per-experiment suggestion pod, the Katib controller starts one of these per running
Experiment (in the trainer environment, where Optuna lives)::

    python -m kubeflow_bridge.local.katib.suggestion --experiment NS/NAME --kubeconfig PATH

It polls the experiment's Trials and keeps ``parallelTrialCount`` of them active: each new Trial gets
its assignments from :class:`~kubeflow_bridge.local.katib.search.Searcher` (grid, random or TPE) and a
name derived from the experiment's uid and the Trial's index, so a create retried after a lost answer
or by a restarted process finds its Trial (409) instead of making a second one. The Katib controller
then creates the trial's job, collects metrics and writes status; each finished Trial's objective is
told to the searcher. With ``medianstop`` it follows running Trials' metrics and annotates one with
``EARLY_STOP_ANNOTATION`` when its latest objective value is worse than the median of the succeeded
Trials' averages (Katib's medianstop rule); the controller then marks it EarlyStopped. The process exits
0 when no Trial is active and no more may start (search space exhausted, maxTrialCount reached, or the
trials already end the experiment), 2 when the search space cannot be searched.

Nothing here listens on a port: the Ray Tune driver this replaces bound Ray's servers to every
interface (Ray 2.60 has no loopback-only setting) and took ~12 s to start.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeflow_bridge.local.katib.metrics import (
    file_source,
    local_metrics_file,
    metric_value,
    parse_json_lines,
    parse_metric_lines,
)
from kubeflow_bridge.local.katib.search import DEFAULT_MAX_TRIALS, Searcher, SearchSpaceError, settings_of
from kubeflow_bridge.local.katib.status import (
    experiment_would_end,
    trial_is_completed,
    trial_state,
)
from kubeflow_bridge.local.katib.template import EXPERIMENT_LABEL, TRIAL_LABEL, build_trial, metric_names

EARLY_STOP_ANNOTATION = "kubeflow-bridge.io/early-stop"
GROUP, VERSION = "kubeflow.org", "v1beta1"
POLL_SECONDS = 0.3
log = logging.getLogger("kubeflow_bridge.local.katib.suggestion")


RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRIES = 6


class _Retrying:
    """Wraps a kubernetes API object: calls retry on 429/5xx and dropped connections, with backoff."""

    def __init__(self, api: Any) -> None:
        self._api = api

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._api, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            import urllib3

            for attempt in range(RETRIES):
                try:
                    return method(*args, **kwargs)
                except urllib3.exceptions.HTTPError:
                    if attempt == RETRIES - 1:
                        raise
                except Exception as exc:
                    if getattr(exc, "status", None) not in RETRY_STATUSES or attempt == RETRIES - 1:
                        raise
                time.sleep(min(0.2 * 2**attempt, 3.0))
            raise AssertionError("unreachable")

        return call


def _apis(kubeconfig: str) -> tuple[Any, Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=kubeconfig)
    return _Retrying(client.CustomObjectsApi(api_client)), _Retrying(client.CoreV1Api(api_client))


def katib_trial_name(experiment: dict[str, Any], index: int) -> str:
    """A Katib-shaped trial name (``<experiment>-<8 chars>``), the same for the same experiment and index:
    a repeated create of one suggestion meets its own Trial."""
    digest = hashlib.sha256(f"{experiment['metadata']['uid']}/{index}".encode()).hexdigest()[:8]
    return f"{experiment['metadata']['name']}-{digest}"


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "status", None) == 404


def _primary_log(core: Any, trial: dict[str, Any], metrics_dir: str = "") -> str:
    namespace = trial["metadata"]["namespace"]
    # a File collector's metrics: in the trial's folder (the Trial controller's _job_body)
    path = local_metrics_file(Path(metrics_dir), trial) if metrics_dir else None
    if path is not None:
        return path.read_text(errors="replace") if path.exists() else ""
    selector = ",".join(
        [f"{TRIAL_LABEL}={trial['metadata']['name']}"]
        + [f"{k}={v}" for k, v in (trial["spec"].get("primaryPodLabels") or {}).items()]
    )
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    if not pods:
        return ""
    pod = max(pods, key=lambda p: (p.metadata.creation_timestamp or 0, p.metadata.name))
    container = trial["spec"].get("primaryContainerName") or None
    try:
        return str(core.read_namespaced_pod_log(pod.metadata.name, namespace, container=container) or "")
    except Exception as exc:  # the pod may not have started yet
        log.debug("no log yet for %s: %s", pod.metadata.name, exc)
        return ""


@dataclass
class MedianStop:
    """Katib's medianstop rule: once ``min_trials_required`` trials succeeded, a running trial whose
    latest objective value (from its ``start_step``-th report on) is worse than the median of the
    succeeded trials' average values is stopped.

    Args:
        maximize: Whether a larger objective is better.
        min_trials_required: Succeeded trials needed before any stop (Katib's default 3).
        start_step: Reports a trial makes before it may be stopped (Katib's default 4).
    """

    maximize: bool
    min_trials_required: int = 3
    start_step: int = 4
    averages: dict[str, float] = field(default_factory=dict)

    def succeeded(self, trial_name: str, values: list[float]) -> None:
        if values:
            self.averages.setdefault(trial_name, statistics.fmean(values))

    def should_stop(self, values: list[float]) -> bool:
        if len(self.averages) < self.min_trials_required or len(values) < self.start_step:
            return False
        median = statistics.median(self.averages.values())
        return values[-1] < median if self.maximize else values[-1] > median


def median_stop_of(experiment: dict[str, Any]) -> MedianStop | None:
    """The experiment's early stopping rule, or None without one."""
    early = experiment["spec"].get("earlyStopping") or {}
    if early.get("algorithmName") != "medianstop":
        return None
    settings = settings_of(early)
    return MedianStop(
        maximize=experiment["spec"]["objective"].get("type") != "minimize",
        min_trials_required=int(settings.get("min_trials_required", "3")),
        start_step=int(settings.get("start_step", "4")),
    )


def _objective_values(text: str, names: list[str], fmt: str, filters: list[str] | None) -> list[float]:
    parsed = parse_json_lines(text, names) if fmt == "JSON" else parse_metric_lines(text, names, filters)
    values = []
    for metric in parsed:
        if metric.name == names[0]:
            try:
                values.append(float(metric.value))
            except ValueError:
                continue
    return values


def _assignments(trial: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: str(a["value"]) for a in trial["spec"].get("parameterAssignments") or []}


def _final_value(trial: dict[str, Any]) -> float | None:
    """The objective value Katib's suggestion services learn from: the metric strategy's value of a
    Succeeded or EarlyStopped trial (None for others)."""
    if trial_state(trial) not in ("succeeded", "earlyStopped"):
        return None
    objective = trial["spec"]["objective"]
    name = objective["objectiveMetricName"]
    strategies = {s["name"]: s["value"] for s in objective.get("metricStrategies") or []}
    value = metric_value((trial.get("status") or {}).get("observation"), name, strategies.get(name, "latest"))
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class SuggestionDriver:
    """Keeps an Experiment's parallelTrialCount trials active, as Katib's controller and suggestion do.

    Args:
        custom: CustomObjectsApi (retrying).
        core: CoreV1Api (retrying), for pod logs when early stopping follows metrics.
        experiment: The Experiment object.
        metrics_dir: Where File-collector metrics of trials land.
    """

    def __init__(self, custom: Any, core: Any, experiment: dict[str, Any], metrics_dir: str = "") -> None:
        self.custom, self.core = custom, core
        self.experiment = experiment
        self.namespace = experiment["metadata"]["namespace"]
        self.name = experiment["metadata"]["name"]
        self.searcher = Searcher(experiment)
        self.median = median_stop_of(experiment)
        self.metrics_dir = metrics_dir
        self.seen: dict[str, list[float]] = {}  # objective values of running trials (medianstop)
        self.told: set[str] = set()
        self.exhausted = False

    def _trials(self) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "trials", label_selector=f"{EXPERIMENT_LABEL}={self.name}"
        )["items"]
        uid = self.experiment["metadata"]["uid"]
        return [
            t for t in items if any(r.get("uid") == uid for r in t["metadata"].get("ownerReferences") or [])
        ]

    def _follow(self, trial: dict[str, Any]) -> None:
        """Medianstop: read the running trial's objective values; annotate it when the rule says stop."""
        assert self.median is not None
        spec = self.experiment["spec"]
        collector = spec.get("metricsCollectorSpec")
        source = file_source(collector)
        filters = (((collector or {}).get("source") or {}).get("filter") or {}).get("metricsFormat")
        text = _primary_log(self.core, trial, self.metrics_dir)
        values = _objective_values(
            text, metric_names(self.experiment), source[1] if source else "TEXT", filters
        )
        name = trial["metadata"]["name"]
        self.seen[name] = max(values, self.seen.get(name, []), key=len)
        annotations = trial["metadata"].get("annotations") or {}
        if EARLY_STOP_ANNOTATION not in annotations and self.median.should_stop(self.seen[name]):
            patch = {"metadata": {"annotations": {EARLY_STOP_ANNOTATION: "true"}}}
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, "trials", name, patch)
            log.info("trial %s early stopped by medianstop (values %s)", name, self.seen[name][-3:])

    def step(self) -> bool:
        """One round: learn from finished trials, follow running ones, start new ones. True when done."""
        try:
            self.experiment = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "experiments", self.name
            )
        except Exception as exc:
            if _not_found(exc):
                return True  # deleted: the controller stops the trials
            raise
        trials = self._trials()
        active = 0
        for trial in trials:
            name = trial["metadata"]["name"]
            self.searcher.note(_assignments(trial))
            if not trial_is_completed(trial):
                active += 1
                if self.median is not None:
                    self._follow(trial)
            elif name not in self.told:
                self.told.add(name)
                value = _final_value(trial)
                self.searcher.tell(name, _assignments(trial), value)
                if self.median is not None and trial_state(trial) == "succeeded":
                    self.median.succeeded(
                        name, self.seen.pop(name, []) or ([value] if value is not None else [])
                    )
        spec = self.experiment["spec"]
        parallel = int(spec.get("parallelTrialCount") or 3)
        limit = int(spec.get("maxTrialCount") or DEFAULT_MAX_TRIALS)
        ending = experiment_would_end(self.experiment, trials)
        index = len(trials)
        names = {t["metadata"]["name"] for t in trials}
        while not ending and not self.exhausted and active < parallel and index < limit:
            name = katib_trial_name(self.experiment, index)
            index += 1
            if name in names:
                continue
            assignments = self.searcher.ask(name)
            if assignments is None:
                self.exhausted = True
                break
            body = build_trial(self.experiment, name, assignments)
            try:
                self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "trials", body)
            except Exception as exc:
                if getattr(exc, "status", None) != 409:  # 409: a retried create met its own trial
                    raise
            log.info("trial %s created: %s", name, assignments)
            active += 1
        return active == 0 and (ending or self.exhausted or index >= limit)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run(experiment_ref: str, kubeconfig: str, metrics_dir: str = "") -> int:
    """Drive one experiment's trials until the search ends. Returns the exit code.

    Args:
        experiment_ref: ``NAMESPACE/NAME``.
        kubeconfig: The runtime's kubeconfig.
        metrics_dir: Where File-collector metrics of trials land.
    """
    namespace, _, name = experiment_ref.partition("/")
    custom, core = _apis(kubeconfig)
    experiment = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        driver = SuggestionDriver(custom, core, experiment, metrics_dir)
    except SearchSpaceError as exc:
        log.error("cannot search this experiment's space: %s", exc)
        return 2
    while not driver.step():
        time.sleep(POLL_SECONDS)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--experiment", required=True, help="NAMESPACE/NAME of the Experiment")
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the local runtime")
    parser.add_argument("--metrics-dir", default="", help="where File-collector metrics of trials land")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args.experiment, args.kubeconfig, args.metrics_dir)


if __name__ == "__main__":
    sys.exit(main())
