"""What the KFP components do, as plain functions (they run inside the trainer image).

The components in :mod:`kubeflow_bridge.pipelines.pipeline` are thin: KFP serializes a lightweight
component's source, so each one imports this module and calls one function. Here the trainer steps run
as ``python -m trainer ...`` subprocesses (exactly what an Airflow pod runs) and the Kubeflow objects
(Katib Experiment, PyTorchJob, InferenceService) are created through the bridge core
(:mod:`kubeflow_bridge.resources` builders, :class:`~kubeflow_bridge.clients.kube.KubeflowObjectClient`
with ``$KUBECONFIG``) with the same builders the Airflow operators use.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from kubeflow_bridge.pipelines import workflow

if TYPE_CHECKING:
    from kubeflow_bridge.clients._sync import KubeflowObjectClient
    from kubeflow_bridge.resources.names import Identity

log = logging.getLogger(__name__)

#: The pipeline's name (also the KFP identity's pipeline part on every object it creates).
PIPELINE_NAME = "anomaly-pipeline"
#: Annotation recording a served model's metric (the same key the Airflow KServeDeployOperator writes).
METRIC_ANNOTATION_PREFIX = "kubeflow-bridge.io/metric."
#: How long a component waits for a Kubeflow object before failing.
WAIT_TIMEOUT_SECONDS = 3600.0


class StepFailed(RuntimeError):
    """A step of the workflow failed; the message says which and why."""


def run_trainer(argv: list[str], *, timeout: float | None = None) -> dict[str, Any]:
    """Run ``python -m trainer <argv>``, echo its output, and return its TRAINER_SUMMARY.

    Raises:
        StepFailed: Non-zero exit (with the last lines of stderr) or no summary.
    """
    cmd = [sys.executable, "-m", "trainer", *argv]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr[-20000:])
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise StepFailed(f"trainer {argv[0]} exited {proc.returncode}:\n{tail}")
    try:
        summary = workflow.parse_trainer_summary(proc.stdout)
    except ValueError as exc:
        raise StepFailed(f"trainer {argv[0]}: {exc}") from exc
    log.info("trainer %s finished in %.1fs", argv[0], time.perf_counter() - started)
    return summary


def object_client() -> KubeflowObjectClient:
    """The Kubernetes client components use: ``$KUBECONFIG`` (the local runtime points it at itself)."""
    import os

    from kubeflow_bridge.clients.kube import KubeflowObjectClient

    config = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if not os.path.exists(config):
        raise StepFailed(
            f"no kubeconfig at {config}: the components reach Kubernetes through $KUBECONFIG. Locally, "
            "run the pipeline through the runtime started by `kubeflow-bridge local up` (it sets KUBECONFIG)."
        )
    return KubeflowObjectClient.from_kubeconfig(config)


def identity(run_id: str, task: str) -> Identity:
    """The KFP identity of an object created by ``task`` of pipeline run ``run_id``."""
    from kubeflow_bridge.resources.names import Identity

    return Identity.kfp(PIPELINE_NAME, run_id or "local", task)


def build_experiment(
    prefix: str, params: dict[str, Any], *, name: str, namespace: str, image: str = workflow.TRAINER_IMAGE
) -> dict[str, Any]:
    """The tuning Experiment, built as the Airflow DAG's KatibExperimentOperator builds it."""
    from kubeflow_bridge.resources import katib

    parameters = [
        katib.Parameter(
            name=entry["name"],
            type=entry["type"],
            min=entry["min"],
            max=entry["max"],
            distribution=entry.get("distribution"),
        )
        for entry in workflow.search_space(params)
    ]
    template = katib.trainer_trial_template(
        image,
        parameters,
        kind="Job",
        args=workflow.trial_args(prefix, epochs=int(params["tune_epochs"]), seed=int(params["seed"])),
    )
    return katib.build_experiment(
        name=name,
        namespace=namespace,
        objective=katib.Objective(objective_metric_name=workflow.OBJECTIVE_METRIC, type="minimize"),
        parameters=parameters,
        trial_template=template,
        # Seeded, so Airflow's and KFP's runs of the same inputs try the same trials.
        algorithm=katib.Algorithm(name="random", settings={"random_state": str(int(params["seed"]))}),
        parallel_trial_count=int(params["parallel_trials"]),
        max_trial_count=int(params["max_trials"]),
        max_failed_trial_count=1,
    )


def build_pytorchjob(
    prefix: str,
    params: dict[str, Any],
    best_params: dict[str, Any],
    *,
    name: str,
    namespace: str,
    image: str = workflow.TRAINER_IMAGE,
) -> dict[str, Any]:
    """The final training PyTorchJob (Master + ``worker_replicas`` Workers) with the best parameters."""
    from kubeflow_bridge.resources.training import (
        PyTorchJobSpec,
        RunPolicy,
        resource_requirements,
        validate_pytorchjob,
    )

    manifest = PyTorchJobSpec(
        name=name,
        namespace=namespace,
        image=image,
        command=["python", "-m", "trainer"],
        args=workflow.train_args(
            prefix, epochs=int(params["epochs"]), seed=int(params["seed"]), best_params=best_params
        ),
        resources=resource_requirements(gpu=int(params["gpus_per_replica"])) or None,
        workers=int(params["worker_replicas"]),
        run_policy=RunPolicy(backoff_limit=workflow.TRAIN_BACKOFF_LIMIT),
    ).to_dict()
    validate_pytorchjob(manifest)
    return manifest


def build_inference_service(
    prefix: str, *, name: str, namespace: str, f_score: float, image: str = workflow.TRAINER_IMAGE
) -> dict[str, Any]:
    """The InferenceService serving the evaluated model, with its F-score recorded for the next gate."""
    from kubeflow_bridge.resources.kserve import build_inference_service as build

    return build(
        name=name,
        namespace=namespace,
        image=image,
        model_uri=workflow.evaluated_model_uri(prefix),
        annotations={f"{METRIC_ANNOTATION_PREFIX}{workflow.F_SCORE_METRIC}": str(f_score)},
    )


def _create_and_wait(
    client: KubeflowObjectClient, kind: Any, manifest: dict[str, Any], who: Identity, namespace: str
) -> dict[str, Any]:
    from kubeflow_bridge.resources.names import with_identity

    created = client.create(kind, with_identity(manifest, who), namespace=namespace)
    name = created.obj["metadata"]["name"]
    log.info("%s %s/%s %s", kind.kind, namespace, name, "created" if created.created else "reattached")
    outcome = client.wait(kind, name, namespace=namespace, timeout=WAIT_TIMEOUT_SECONDS)
    if outcome.state != "succeeded":
        raise StepFailed(
            f"{kind.kind} {namespace}/{name} ended {outcome.state}: {outcome.reason} {outcome.message}"
        )
    return outcome.obj or client.get(kind, name, namespace=namespace) or {}


def tune(prefix: str, params: dict[str, Any], *, run_id: str, namespace: str) -> dict[str, Any]:
    """Run the Katib Experiment; return best params, objective value and the trials' compute span."""
    from kubeflow_bridge.clients.kube import EXPERIMENT, TRIAL
    from kubeflow_bridge.clients.results import best_trial
    from kubeflow_bridge.resources.katib import parameter_types

    who = identity(run_id, "tune")
    manifest = build_experiment(prefix, params, name=who.resource_name(max_length=40), namespace=namespace)
    with object_client() as client:
        experiment = _create_and_wait(client, EXPERIMENT, manifest, who, namespace)
        best = best_trial(experiment, parameter_types(experiment))
        status = experiment.get("status") or {}
        trial_names = [
            n
            for key in (
                "succeededTrialList",
                "failedTrialList",
                "earlyStoppedTrialList",
                "metricsUnavailableTrialList",
            )
            for n in status.get(key) or []
        ]
        trials = [t for t in (client.get(TRIAL, n, namespace=namespace) for n in trial_names) if t]
    return {
        "best_params": dict(best.parameters),
        "objective_value": best.objective_value,
        "compute_seconds": workflow.trial_span_seconds(trials),
        "experiment": experiment["metadata"]["name"],
    }


def train(
    prefix: str, params: dict[str, Any], best_params: dict[str, Any], *, run_id: str, namespace: str
) -> dict[str, Any]:
    """Run the training PyTorchJob; return the model URI and the master's compute seconds."""
    from kubeflow_bridge.clients.kube import PYTORCHJOB

    who = identity(run_id, "train")
    manifest = build_pytorchjob(
        prefix, params, best_params, name=who.resource_name(max_length=50), namespace=namespace
    )
    with object_client() as client:
        job = _create_and_wait(client, PYTORCHJOB, manifest, who, namespace)
        name = job["metadata"]["name"]
        logs = client.job_logs(PYTORCHJOB, name, namespace=namespace, role="master")
    compute = None
    for text in logs.values():
        try:
            compute = float(workflow.parse_trainer_summary(text)["compute_seconds"])
        except (ValueError, KeyError, TypeError):
            continue
    return {"model": workflow.uri(prefix, "model"), "compute_seconds": compute, "job": name}


def serving_f_score(client: KubeflowObjectClient, name: str, namespace: str) -> float | None:
    """The F-score recorded on the live InferenceService, or None when nothing serves yet."""
    from kubeflow_bridge.clients.kube import INFERENCESERVICE

    live = client.get(INFERENCESERVICE, name, namespace=namespace)
    if live is None:
        return None
    recorded = ((live.get("metadata") or {}).get("annotations") or {}).get(
        f"{METRIC_ANNOTATION_PREFIX}{workflow.F_SCORE_METRIC}"
    )
    try:
        return None if recorded in (None, "") else float(recorded)
    except ValueError:
        return None


def gate(f_score: float, threshold: float, *, service_name: str, namespace: str) -> workflow.GateDecision:
    """Deploy only when the score clears the threshold and beats the live model's recorded score."""
    with object_client() as client:
        serving = serving_f_score(client, service_name, namespace)
    decision = workflow.gate(f_score, threshold, serving)
    log.info("gate: %s", decision.reason)
    return decision


def _smoke(url: str, payload: dict[str, Any], model_name: str = "anomaly-vae") -> None:
    """POST a V1 predict request to the new model; a non-2xx answer or a wrong shape fails the step."""
    import httpx

    target = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
    try:
        response = httpx.post(target, json=payload, timeout=30)
    except httpx.HTTPError as exc:
        raise StepFailed(f"smoke test: POST {target} failed: {exc}") from exc
    if response.status_code >= 400:
        raise StepFailed(f"smoke test: POST {target} answered {response.status_code}: {response.text[:300]}")
    predictions = response.json().get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(payload["instances"]):
        raise StepFailed(
            f"smoke test: {target} answered {response.text[:300]} (expected one prediction a row)"
        )


def deploy(
    prefix: str,
    *,
    f_score: float,
    canary_percent: int,
    service_name: str,
    namespace: str,
    run_id: str,
    source: str = "synthetic",
) -> dict[str, Any]:
    """Create the InferenceService, or roll the new model out as a canary, smoke-test, then promote.

    A canary that fails readiness or the smoke test is rolled back (0% to the new revision) and the
    step fails; the previous model keeps serving.
    """
    from kubeflow_bridge.clients.kube import INFERENCESERVICE
    from kubeflow_bridge.clients.results import isvc_endpoint
    from kubeflow_bridge.resources.kserve import canary_patch
    from kubeflow_bridge.resources.names import with_identity

    who = identity(run_id, "deploy")
    manifest = with_identity(
        build_inference_service(prefix, name=service_name, namespace=namespace, f_score=f_score), who
    )
    with object_client() as client:
        live = client.get(INFERENCESERVICE, service_name, namespace=namespace)
        canary = None
        if live is None:
            obj = client.create(INFERENCESERVICE, manifest, namespace=namespace).obj
        else:
            canary = int(canary_percent)
            predictor = {**manifest["spec"]["predictor"], "canaryTrafficPercent": canary}
            patch = {
                "metadata": {"annotations": manifest["metadata"]["annotations"]},
                "spec": {"predictor": predictor},
            }
            obj = client.patch(INFERENCESERVICE, service_name, patch, namespace=namespace)
        generation = int(obj["metadata"].get("generation") or 1)
        outcome = client.wait(
            INFERENCESERVICE,
            service_name,
            namespace=namespace,
            timeout=WAIT_TIMEOUT_SECONDS,
            min_generation=generation,
        )
        try:
            if outcome.state != "succeeded":
                raise StepFailed(
                    f"InferenceService {namespace}/{service_name} ended {outcome.state}: {outcome.message}"
                )
            endpoint = isvc_endpoint(
                outcome.obj or client.get(INFERENCESERVICE, service_name, namespace=namespace) or {}
            )
            if not endpoint.url:
                raise StepFailed(
                    f"InferenceService {namespace}/{service_name} is Ready but has no status.url"
                )
            _smoke(endpoint.url, workflow.smoke_payload(source, rows=8))
        except StepFailed:
            if canary is not None:
                client.patch(INFERENCESERVICE, service_name, canary_patch(0), namespace=namespace)
            raise
        if canary is not None:
            promoted = client.patch(INFERENCESERVICE, service_name, canary_patch(None), namespace=namespace)
            outcome = client.wait(
                INFERENCESERVICE,
                service_name,
                namespace=namespace,
                timeout=WAIT_TIMEOUT_SECONDS,
                min_generation=int(promoted["metadata"].get("generation") or generation),
            )
            if outcome.state != "succeeded":
                raise StepFailed(f"promoting {namespace}/{service_name} failed: {outcome.message}")
            endpoint = isvc_endpoint(outcome.obj or {})
    return {"deployed": True, "url": endpoint.url, "canary_percent": canary, "service": service_name}


def as_json(value: dict[str, Any]) -> str:
    """Compact JSON for a string output parameter."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
