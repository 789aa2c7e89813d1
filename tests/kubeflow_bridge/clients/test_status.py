from __future__ import annotations

import pytest

from kubeflow_bridge.clients.kube import (
    EXPERIMENT,
    INFERENCESERVICE,
    JOB,
    POD,
    PYTORCHJOB,
    TRIAL,
    ResourceKind,
)
from kubeflow_bridge.clients.kube.status import classify


def cond(ctype: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    return {"type": ctype, "status": status, "reason": reason, "message": message}


def obj(*conds: dict, **status: object) -> dict:
    return {"metadata": {"name": "x", "generation": 1}, "status": {"conditions": list(conds), **status}}


def test_kinds_build_paths() -> None:
    assert PYTORCHJOB.collection_path("ns") == "/apis/kubeflow.org/v1/namespaces/ns/pytorchjobs"
    assert POD.collection_path("ns") == "/api/v1/namespaces/ns/pods"
    assert INFERENCESERVICE.api_version == "serving.kserve.io/v1beta1"
    assert EXPERIMENT.version == "v1beta1" and TRIAL.plural == "trials" and JOB.group == "batch"
    assert ResourceKind("g", "v1", "things", "Thing").namespaced


def test_pytorchjob_final_list_is_succeeded() -> None:
    job = obj(
        cond("Created", reason="PyTorchJobCreated"),
        cond("Running", "False", "PyTorchJobRunning"),
        cond("Succeeded", reason="PyTorchJobSucceeded", message="PyTorchJob x is successfully completed."),
    )
    got = classify(PYTORCHJOB, job)
    assert got is not None and got.state == "succeeded" and got.reason == "PyTorchJobSucceeded"
    assert "successfully" in got.message


def test_pytorchjob_restarting_is_not_terminal() -> None:
    job = obj(
        cond("Created"),
        cond("Restarting", reason="PyTorchJobRestarting", message="1 Master replica(s) failed."),
    )
    assert classify(PYTORCHJOB, job) is None
    assert classify("PyTorchJob", obj(cond("Created"), cond("Running"))) is None


def test_pytorchjob_failed_wins_and_suspended_is_not_terminal() -> None:
    job = obj(cond("Running", "False"), cond("Failed", reason="PyTorchJobFailed", message="boom"))
    assert classify(PYTORCHJOB, job).state == "failed"  # type: ignore[union-attr]
    # Kueue creates jobs suspended and admits them later: a wait must keep waiting
    assert classify(PYTORCHJOB, obj(cond("Created"), cond("Suspended", reason="PyTorchJobSuspended"))) is None
    assert classify(JOB, obj(cond("Suspended", reason="JobSuspended"))) is None


def test_experiment_states() -> None:
    running = obj(cond("Created"), cond("Running", reason="ExperimentRunning"))
    assert classify(EXPERIMENT, running) is None
    done = obj(
        cond("Created"), cond("Running", "False"), cond("Succeeded", reason="ExperimentMaxTrialsReached")
    )
    assert classify(EXPERIMENT, done).reason == "ExperimentMaxTrialsReached"  # type: ignore[union-attr]
    failed = obj(cond("Created"), cond("Running", "False"), cond("Failed", reason="ExperimentFailed"))
    assert classify(EXPERIMENT, failed).state == "failed"  # type: ignore[union-attr]
    restarted = obj(
        cond("Created"), cond("Running", "False"), cond("Restarting", reason="ExperimentRestarting")
    )
    assert classify(EXPERIMENT, restarted) is None


def test_trial_metrics_unavailable_is_failed_and_killed_cancelled() -> None:
    mu = classify(
        TRIAL,
        obj(
            cond("Created"), cond("Running", "False"), cond("MetricsUnavailable", reason="MetricsUnavailable")
        ),
    )
    assert mu is not None and mu.state == "failed" and mu.reason == "MetricsUnavailable"
    killed = classify(TRIAL, obj(cond("Killed", reason="TrialKilled")))
    assert killed is not None and killed.state == "cancelled"
    ok = classify(TRIAL, obj(cond("Succeeded", reason="TrialSucceeded")))
    assert ok is not None and ok.state == "succeeded"
    assert classify(TRIAL, obj(cond("Created"), cond("Running"))) is None


def test_batch_job_and_pod() -> None:
    assert classify(JOB, obj(cond("Complete"))).state == "succeeded"  # type: ignore[union-attr]
    assert classify(JOB, obj(cond("Failed", reason="BackoffLimitExceeded"))).reason == "BackoffLimitExceeded"  # type: ignore[union-attr]
    assert classify(POD, {"status": {"phase": "Running"}}) is None
    assert classify(POD, {"status": {"phase": "Failed", "reason": "Error"}}).state == "failed"  # type: ignore[union-attr]


def isvc(ready: str, observed: int, generation: int, reason: str = "", **extra: object) -> dict:
    return {
        "metadata": {"name": "m", "generation": generation},
        "status": {"observedGeneration": observed, "conditions": [cond("Ready", ready, reason)], **extra},
    }


def test_isvc_old_generation_ready_does_not_count() -> None:
    stale = isvc("True", observed=1, generation=2)
    assert classify(INFERENCESERVICE, stale, min_generation=2) is None
    assert classify(INFERENCESERVICE, stale) is None  # defaults to metadata.generation
    fresh = isvc("True", observed=2, generation=2)
    assert classify(INFERENCESERVICE, fresh, min_generation=2).state == "succeeded"  # type: ignore[union-attr]


def test_isvc_failure_reasons() -> None:
    assert classify(INFERENCESERVICE, isvc("Unknown", 1, 1, "RevisionMissing")) is None
    assert classify(INFERENCESERVICE, isvc("False", 1, 1, "RevisionMissing")) is None
    failed = classify(INFERENCESERVICE, isvc("False", 1, 1, "RevisionFailed"))
    assert failed is not None and failed.state == "failed" and failed.reason == "RevisionFailed"
    blocked = isvc(
        "Unknown",
        1,
        1,
        modelStatus={
            "transitionStatus": "BlockedByFailedLoad",
            "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "bad"},
        },
    )
    got = classify(INFERENCESERVICE, blocked)
    assert got is not None and got.reason == "ModelLoadFailed"


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown resource kind"):
        classify("Deployment", {})


def test_trainjob_conditions_as_trainer_v2_3_copies_them_from_its_jobset() -> None:
    assert classify("TrainJob", obj()) is None
    suspended = cond("Suspended", reason="Suspended", message="TrainJob is suspended")
    assert classify("TrainJob", obj(suspended)) is None
    done = classify(
        "trainjobs",
        obj(
            cond("Suspended", "False", "Resumed", "TrainJob is resumed"),
            cond("Complete", reason="AllJobsCompleted", message="jobset completed successfully"),
        ),
    )
    assert done is not None and (done.state, done.reason) == ("succeeded", "AllJobsCompleted")
    failed = classify(
        "TrainJob",
        obj(cond("Failed", reason="FailedJobs", message="jobset failed due to one or more job failures")),
    )
    assert failed is not None and (failed.state, failed.reason) == ("failed", "FailedJobs")
    deadline = classify("TrainJob", obj(cond("Failed", reason="DeadlineExceeded")))
    assert deadline is not None and deadline.state == "failed"


def test_tfjob_is_classified_as_the_training_operator_writes_it() -> None:
    from kubeflow_bridge.clients.kube import TFJOB

    done = {
        **obj(cond("Created"), cond("Succeeded", message="TFJob x is successfully completed.")),
        "kind": "TFJob",
    }
    got = classify(TFJOB, done)
    assert got is not None and (got.state, got.reason) == ("succeeded", "TFJobSucceeded")  # reason defaulted
    failed = {
        **obj(cond("Running", "False"), cond("Failed", reason="TFJobFailed", message="boom")),
        "kind": "TFJob",
    }
    assert classify("TFJob", failed).state == "failed"  # type: ignore[union-attr]
    assert classify(TFJOB, obj(cond("Created"), cond("Restarting", reason="TFJobRestarting"))) is None
