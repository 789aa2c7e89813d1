"""What the KFP components do, as plain functions (they run inside the trainer image).

The components in :mod:`kubeflow_bridge.pipelines.pipeline` are thin: KFP serializes a lightweight
component's source, so each one imports this module and calls one function. Here the trainer steps run
in the component's own process (the work an Airflow pod's ``python -m trainer ...`` does) and the Kubeflow objects
(Katib Experiment, TrainJob or PyTorchJob, InferenceService) are created through the bridge core
(:mod:`kubeflow_bridge.resources` builders, :class:`~kubeflow_bridge.clients.kube.KubeflowObjectClient`
with ``$KUBECONFIG``) with the same builders the Airflow operators use.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from kubeflow_bridge import workflow

if TYPE_CHECKING:
    from kubeflow_bridge.clients.kube._sync import KubeflowObjectClient
    from kubeflow_bridge.resources.names import Identity
    from kubeflow_bridge.workflow.gate import GateDecision

log = logging.getLogger(__name__)

#: The pipeline's name (also the KFP identity's pipeline part on every object it creates).
PIPELINE_NAME = "anomaly-pipeline"
#: How long a component waits for a Kubeflow object before failing.
WAIT_TIMEOUT_SECONDS = 3600.0


class StepFailed(RuntimeError):
    """A step of the workflow failed; the message says which and why."""


def run_trainer(argv: list[str], *, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the trainer step ``argv`` (``python -m trainer <argv>``'s work) in this component's process.

    One process per component: the step's output goes to the component's log as it is written, and its
    libraries' import time is the component's start-up (``import_seconds``), not compute.
    ``env``: more env entries (``{name, value}``; ``valueFrom`` entries are what this component's own
    env already holds, from its Secret, and are left to it), set for the step and restored after.

    Raises:
        StepFailed: Bad arguments, or a step that failed (with its error).
    """
    import os

    from trainer.__main__ import run as run_step

    started = time.perf_counter()
    extra = {e["name"]: str(e["value"]) for e in env or [] if "value" in e}
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        code, summary = run_step(argv, whole_process=True)
    except SystemExit as exc:  # argparse has printed the usage and what is wrong
        raise StepFailed(f"trainer {argv[0]}: bad arguments (exit {exc.code}); see the usage above") from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if code != 0:
        raise StepFailed(f"trainer {argv[0]} exited {code}: {summary.get('error', 'no error recorded')}")
    log.info("trainer %s finished in %.1fs", argv[0], time.perf_counter() - started)
    return summary


def tracking_uri(params: dict[str, Any]) -> str:
    """The pipeline's ``tracking_uri`` input, else the component's ``MLFLOW_TRACKING_URI`` ("": no tracking)."""
    import os

    return str(params.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI", ""))


def tracking_env(params: dict[str, Any], run_id: str, *, trial: bool = False) -> list[dict[str, Any]]:
    """The MLflow env for this run's trainer steps (see :func:`kubeflow_bridge.workflow.tracking.workflow_env`).

    Raises:
        StepFailed: ``registered_model`` is not allowed, or the URI carries credentials.
    """
    from kubeflow_bridge.workflow.tracking import workflow_env

    try:
        return workflow_env(
            params,
            tracking_uri(params),
            orchestrator="kfp",
            workflow=PIPELINE_NAME,
            run_id=run_id,
            window_end=str(params.get("window_end") or ""),
            trial=trial,
        )
    except ValueError as exc:
        raise StepFailed(str(exc)) from exc


def promote_champion(params: dict[str, Any], version: str, service: str, namespace: str, url: str) -> None:
    """After a deploy: the registry's ``champion`` alias to ``version`` (a warning when optional and it fails)."""
    from kubeflow_bridge.workflow import tracking

    try:
        client = tracking.MlflowRest(tracking_uri(params), tracking.auth_headers())
        moved = tracking.promote_champion(
            client,
            model=str(params["registered_model"]),
            version=version,
            service=service,
            namespace=namespace,
            url=url,
        )
    except (tracking.TrackingError, ValueError) as exc:
        if params.get("tracking_required"):
            raise StepFailed(f"deploy: the registry's champion was not moved: {exc}") from exc
        log.warning("deploy: the registry's champion was not moved (tracking is optional): %s", exc)
        return
    log.info("deploy: %s v%s is the champion (was v%s)", moved["model"], moved["version"], moved["previous"])


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
    prefix: str,
    params: dict[str, Any],
    *,
    name: str,
    namespace: str,
    image: str = workflow.TRAINER_IMAGE,
    env: list[dict[str, Any]] | None = None,
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
        env=env or None,
        env_from=workflow.storage_env_from(),
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


def build_inference_service(
    prefix: str, *, name: str, namespace: str, image: str = workflow.TRAINER_IMAGE
) -> dict[str, Any]:
    """The InferenceService serving the evaluated model (the trainer's ``serve`` on the trainer image)."""
    from kubeflow_bridge.resources.kserve import build_inference_service as build

    return build(
        name=name,
        namespace=namespace,
        image=image,
        model_uri=workflow.evaluated_model_uri(prefix),
        env_from=workflow.storage_env_from(),
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
    from kubeflow_bridge.clients.kube.results import best_trial, trial_states, trial_table
    from kubeflow_bridge.resources.katib import parameter_types

    who = identity(run_id, "tune")
    manifest = build_experiment(
        prefix,
        params,
        name=who.resource_name(max_length=40),
        namespace=namespace,
        env=tracking_env(params, run_id, trial=True),
    )
    with object_client() as client:
        experiment = _create_and_wait(client, EXPERIMENT, manifest, who, namespace)
        best = best_trial(experiment, parameter_types(experiment))
        trials = [
            t for t in (client.get(TRIAL, n, namespace=namespace) for n in trial_states(experiment)) if t
        ]
        for row in trial_table(experiment, trials):
            log.info("%s", row)
    return {
        "best_params": dict(best.parameters),
        "objective_value": best.objective_value,
        "compute_seconds": workflow.trial_span_seconds(trials),
        "experiment": experiment["metadata"]["name"],
    }


def train(
    prefix: str, params: dict[str, Any], best_params: dict[str, Any], *, run_id: str, namespace: str
) -> dict[str, Any]:
    """Run the training job (a TrainJob or a PyTorchJob, by ``training_api``); return the model URI, the
    job, its kind and node 0's (the master's) compute seconds."""
    from kubeflow_bridge.clients.kube import kind_named
    from kubeflow_bridge.workflow.training import training_job

    who = identity(run_id, "train")
    manifest = training_job(
        prefix,
        params,
        best_params,
        name=who.resource_name(max_length=50),
        namespace=namespace,
        env=tracking_env(params, run_id),
    )
    kind = kind_named(manifest["kind"])
    with object_client() as client:
        job = _create_and_wait(client, kind, manifest, who, namespace)
        name = job["metadata"]["name"]
        logs = client.job_logs(kind, name, namespace=namespace, role="master")
    compute = None
    for text in logs.values():
        try:
            compute = float(workflow.parse_trainer_summary(text)["compute_seconds"])
        except (ValueError, KeyError, TypeError):
            continue
    return {
        "model": workflow.uri(prefix, "model"),
        "compute_seconds": compute,
        "job": name,
        "kind": kind.kind,
    }


def serving_model_uri(service_name: str, namespace: str) -> str:
    """The model the live InferenceService serves ("" when nothing serves, or no service is named).

    evaluate re-scores it on the new model's splits.
    """
    from kubeflow_bridge.clients.kube import INFERENCESERVICE
    from kubeflow_bridge.workflow import gate as workflow_gate

    if not service_name:
        return ""
    with object_client() as client:
        live = client.get(INFERENCESERVICE, service_name, namespace=namespace)
    return workflow_gate.serving_model_uri(live) or ""


def gate(
    f_score: float | str | None,
    threshold: float,
    *,
    service_name: str,
    namespace: str,
    baseline: float | str | None = None,
    baseline_margin: float = 0.0,
    serving_rescored: float | str | None = None,
    evaluable: bool = True,
    no_labels_policy: str = "if_nothing_serves",
) -> GateDecision:
    """The workflow's gate against the best baseline and the live model's recorded score.

    Scores come as the evaluate component's text outputs ("" for none) or numbers. See
    :mod:`kubeflow_bridge.workflow.gate` for the rules.
    """
    from kubeflow_bridge.clients.kube import INFERENCESERVICE
    from kubeflow_bridge.workflow import gate as workflow_gate

    with object_client() as client:
        live = client.get(INFERENCESERVICE, service_name, namespace=namespace)
    try:
        decision = workflow_gate.decide(
            workflow_gate.as_score("f_score", f_score),
            workflow_gate.as_threshold(threshold),
            workflow_gate.serving_to_beat(
                live, workflow.F_SCORE_METRIC, workflow_gate.as_score("serving_f_score", serving_rescored)
            ),
            baseline=workflow_gate.as_score("baseline_f_score", baseline),
            baseline_margin=float(baseline_margin),
            evaluable=bool(evaluable),
            no_labels_policy=no_labels_policy,
            serving_exists=live is not None,
            metric=workflow.F_SCORE_METRIC,
        )
    except ValueError as exc:
        raise StepFailed(f"gate: {exc}") from exc
    log.info("gate: %s", decision.reason)
    return decision


def deploy(
    prefix: str,
    *,
    f_score: float | str | None,
    canary_percent: int,
    service_name: str,
    namespace: str,
    run_id: str,
    source: str = "synthetic",
    channels: int | None = None,
) -> dict[str, Any]:
    """Roll the evaluated model out with the workflow's rollout (canary, smoke test, promote or roll back).

    A canary that does not become Ready or fails the smoke test is rolled back (the previous model
    serves all traffic) and the step fails.
    """
    from kubeflow_bridge.resources.names import with_identity
    from kubeflow_bridge.workflow import gate as workflow_gate
    from kubeflow_bridge.workflow import rollout

    plan = rollout.Rollout(
        name=service_name,
        namespace=namespace,
        canary_percent=int(canary_percent),
        record={
            workflow_gate.metric_annotation(workflow.F_SCORE_METRIC): workflow_gate.metric_record(f_score)
        },
        smoke_payload=workflow.smoke_payload(source, channels=channels),
    )
    manifest = with_identity(
        build_inference_service(prefix, name=service_name, namespace=namespace), identity(run_id, "deploy")
    )
    with object_client() as client:
        try:
            result = rollout.run_rollout(client, plan, manifest, timeout=WAIT_TIMEOUT_SECONDS)
        except rollout.RolloutFailed as exc:
            raise StepFailed(str(exc)) from exc
    log.info("deploy: %s smoke %s, promoted %s", service_name, result["smoke_status"], result["promoted"])
    return {"deployed": True, **result}


def as_json(value: dict[str, Any]) -> str:
    """Compact JSON for a string output parameter."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
