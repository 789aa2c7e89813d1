"""Fill in compute seconds the Airflow operators do not return, from the Kubeflow objects themselves.

The KFP components output ``compute_seconds`` for every step; on the Airflow side the Katib and
training-job operators return the object's name and outcome only. This reads the same numbers the
components report: the tuning step's compute is the span of its trials (first start to last
completion), the training step's is the master replica's TRAINER_SUMMARY ``compute_seconds``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from kubeflow_bridge.compare.model import OrchestratorRun, StepRecord
from kubeflow_bridge.compare.outputs import as_mapping
from kubeflow_bridge.workflow import parse_trainer_summary, trial_span_seconds

log = logging.getLogger(__name__)

_TRIAL_LISTS = (
    "succeededTrialList",
    "failedTrialList",
    "earlyStoppedTrialList",
    "metricsUnavailableTrialList",
)


def tune_compute_seconds(client: Any, name: str, namespace: str, kind: str = "") -> float | None:
    """Span of the Experiment's trials (None when the Experiment or its trials are gone)."""
    from kubeflow_bridge.clients.kube import EXPERIMENT, TRIAL

    experiment = client.get(EXPERIMENT, name, namespace=namespace)
    if experiment is None:
        return None
    status = experiment.get("status") or {}
    names = [n for key in _TRIAL_LISTS for n in status.get(key) or []]
    trials = [t for t in (client.get(TRIAL, n, namespace=namespace) for n in names) if t]
    return trial_span_seconds(trials)


def train_compute_seconds(client: Any, name: str, namespace: str, kind: str = "") -> float | None:
    """The training job's node 0 (a TrainJob's first node, a PyTorchJob's master): its own compute
    seconds, from its TRAINER_SUMMARY log line. ``kind``: the job's (an output without one: PyTorchJob)."""
    from kubeflow_bridge.clients.kube import kind_named

    job_kind = kind_named(kind or "PyTorchJob")
    for text in client.job_logs(job_kind, name, namespace=namespace, role="master").values():
        try:
            return float(parse_trainer_summary(text)["compute_seconds"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


_READERS = {"tune": tune_compute_seconds, "train": train_compute_seconds}


def fill_compute_from_cluster(
    run: OrchestratorRun, outputs: Mapping[str, Any], client: Any
) -> OrchestratorRun:
    """Return ``run`` with unknown tune/train compute read from the cluster (others unchanged).

    Args:
        run: The collected run.
        outputs: ``{step: task output}``; the tune/train outputs carry the object's ``name``/``namespace``
            (and the train output its ``kind``).
        client: A :class:`~kubeflow_bridge.clients.kube.KubeflowObjectClient`.
    """
    steps: list[StepRecord] = []
    for step in run.steps:
        reader = _READERS.get(step.step)
        output = as_mapping(outputs.get(step.step))
        if step.compute_seconds is None and reader is not None and output.get("name"):
            try:
                seconds = reader(
                    client,
                    str(output["name"]),
                    str(output.get("namespace") or "default"),
                    str(output.get("kind") or ""),
                )
            except Exception as exc:  # the report still stands without this number
                log.warning("could not read %s compute from the cluster: %s", step.step, exc)
                seconds = None
            if seconds is not None:
                step = dataclasses.replace(step, compute_seconds=seconds)
        steps.append(step)
    return dataclasses.replace(run, steps=steps)
