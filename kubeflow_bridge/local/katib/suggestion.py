"""The per-experiment suggestion process: a real ``ray.tune.Tuner`` driving Katib Trials.

Like Katib's per-experiment suggestion pod, the Katib controller starts one of these per running
Experiment (in the trainer environment, where Ray lives)::

    python -m kubeflow_bridge.local.katib.suggestion --experiment NS/NAME --kubeconfig PATH

Ray Tune is the suggestion service and the scheduler: its search algorithm proposes parameters, its
ConcurrencyLimiter/max_concurrent keeps parallelTrialCount trials active, and its MedianStoppingRule
stops bad trials. Each Ray trial's trainable creates a Trial object through the API (the Katib
controller then creates the trial's job, collects metrics and writes status), follows the primary
container's log, ``tune.report``s each objective value it parses, and returns when the Trial is
terminal. When Ray stops a trial early, a callback annotates the Trial with ``EARLY_STOP_ANNOTATION``;
the controller then marks it EarlyStopped and deletes its job. The process exits 0 when Ray has no more
trials to run (the controller then reports ExperimentSuggestionEndReached once no trial is active).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubeflow_bridge.local.katib.metrics import (
    file_source,
    local_metrics_file,
    parse_json_lines,
    parse_metric_lines,
)
from kubeflow_bridge.local.katib.search import OBJECTIVE_KEY, build_tune_setup, format_value
from kubeflow_bridge.local.katib.status import experiment_would_end, trial_is_completed
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


def katib_trial_name(experiment_name: str, ray_trial_id: str) -> str:
    """A Katib-shaped trial name (``<experiment>-<8 chars>``) derived from Ray's trial id, so the driver's
    callbacks find the Trial of a Ray trial."""
    return f"{experiment_name}-{hashlib.sha256(ray_trial_id.encode()).hexdigest()[:8]}"


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


def make_trainable(experiment: dict[str, Any], kubeconfig: str, metrics_dir: str = "") -> Any:
    """The Ray function trainable: one Katib Trial per Ray trial."""
    params = {p["name"]: p for p in experiment["spec"].get("parameters") or []}
    names = metric_names(experiment)
    filters = (
        ((experiment["spec"].get("metricsCollectorSpec") or {}).get("source") or {}).get("filter") or {}
    ).get("metricsFormat")
    source = file_source(experiment["spec"].get("metricsCollectorSpec"))
    fmt = source[1] if source else "TEXT"
    namespace = experiment["metadata"]["namespace"]
    max_trials = int(experiment["spec"].get("maxTrialCount") or 0)

    def trainable(config: dict[str, Any]) -> None:
        from ray import tune

        custom, core = _apis(kubeconfig)
        name = katib_trial_name(experiment["metadata"]["name"], tune.get_context().get_trial_id())
        existing = custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "trials",
            label_selector=f"{EXPERIMENT_LABEL}={experiment['metadata']['name']}",
        )["items"]
        if name not in {t["metadata"]["name"] for t in existing}:
            if max_trials and len(existing) >= max_trials:
                return  # maxTrialCount trials exist (grid larger than maxTrialCount)
            if experiment_would_end(experiment, existing):
                return  # the finished trials already end the experiment (maxFailed or goal)
        assignments = {
            key: format_value(params[key], value) for key, value in config.items() if key in params
        }
        body = build_trial(experiment, name, assignments)
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "trials", body)
        except Exception as exc:
            if getattr(exc, "status", None) != 409:  # 409: a restarted trainable finds its trial
                raise
        reported = 0
        while True:
            try:
                trial = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "trials", name)
            except Exception as exc:
                if _not_found(exc):
                    return
                raise
            done = trial_is_completed(trial)
            text = _primary_log(core, trial, metrics_dir)
            parsed = (
                parse_json_lines(text, names) if fmt == "JSON" else parse_metric_lines(text, names, filters)
            )
            values = [m.value for m in parsed if m.name == names[0]]
            for value in values[reported:]:
                try:
                    tune.report({OBJECTIVE_KEY: float(value)})
                except ValueError:
                    continue
            reported = max(reported, len(values))
            if done:
                return
            time.sleep(POLL_SECONDS)

    return trainable


def _early_stop_callback(experiment: dict[str, Any], kubeconfig: str) -> Any:
    from ray.tune import Callback

    namespace = experiment["metadata"]["namespace"]

    class EarlyStopCallback(Callback):  # type: ignore[misc]
        """Marks a Katib Trial for early stopping when Ray ends its trial before the Trial finished."""

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            custom, _ = _apis(kubeconfig)
            name = katib_trial_name(experiment["metadata"]["name"], trial.trial_id)
            try:
                obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "trials", name)
            except Exception as exc:
                if not _not_found(exc):
                    log.warning("cannot read trial %s: %s", name, exc)
                return
            if trial_is_completed(obj):
                return
            patch = {"metadata": {"annotations": {EARLY_STOP_ANNOTATION: "true"}}}
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "trials", name, patch)
            log.info("trial %s early stopped by Ray's MedianStoppingRule", name)

    return EarlyStopCallback()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run(experiment_ref: str, kubeconfig: str, workdir: str | None = None, metrics_dir: str = "") -> int:
    """Run Ray Tune for one experiment until its search is exhausted. Returns the exit code.

    Args:
        experiment_ref: ``NAMESPACE/NAME``.
        kubeconfig: The runtime's kubeconfig.
        workdir: Folder for Ray's session files and Tune's results (a new temp folder if None); removed
            at exit. Kept short: Ray puts unix sockets under it.
    """
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_RESULT_BUFFER_LENGTH", "1")
    import ray
    from ray import tune

    namespace, _, name = experiment_ref.partition("/")
    custom, _ = _apis(kubeconfig)
    experiment = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
    setup = build_tune_setup(experiment)
    workdir = workdir or tempfile.mkdtemp(prefix="kbsugg-")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # run the cleanup below when the controller stops us
    ray.init(
        num_cpus=setup.max_concurrent,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=80 * 1024 * 1024,
        _temp_dir=os.path.join(workdir, "ray"),
    )
    try:
        tuner = tune.Tuner(
            tune.with_resources(make_trainable(experiment, kubeconfig, metrics_dir), {"cpu": 1}),
            param_space=setup.param_space,
            tune_config=tune.TuneConfig(
                metric=OBJECTIVE_KEY,
                mode=setup.mode,
                search_alg=setup.search_alg,
                scheduler=setup.scheduler,
                num_samples=setup.num_samples,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=os.path.join(workdir, "results"),
                verbose=0,
                callbacks=[_early_stop_callback(experiment, kubeconfig)],
                log_to_file=False,
            ),
        )
        tuner.fit()
    finally:
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--experiment", required=True, help="NAMESPACE/NAME of the Experiment")
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the local runtime")
    parser.add_argument("--workdir", default=None, help="folder for Ray's files (removed at exit)")
    parser.add_argument("--metrics-dir", default="", help="where File-collector metrics of trials land")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args.experiment, args.kubeconfig, args.workdir, args.metrics_dir)


if __name__ == "__main__":
    sys.exit(main())
