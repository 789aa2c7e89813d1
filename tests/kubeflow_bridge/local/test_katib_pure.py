"""Unit tests of the pure Katib pieces: template rendering, StdOut metrics, status computation.

Expected shapes are written from real Katib objects (a 2021 DARTS experiment running/succeeded, the
Katib UI fixture of 2022) and Katib v0.19's controller source.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeflow_bridge.local.katib import metrics, status, template


def _experiment(kind: str = "Job") -> dict[str, Any]:
    if kind == "Job":
        trial_spec: dict[str, Any] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "training-container",
                                "image": "python:3.11",
                                "command": [
                                    "python3",
                                    "train.py",
                                    "--lr=${trialParameters.learningRate}",
                                    "--out=/tmp/${trialSpec.Namespace}/${trialSpec.Name}",
                                ],
                            }
                        ],
                        "restartPolicy": "Never",
                    }
                }
            },
        }
    else:
        container = {
            "name": "pytorch",
            "image": "kubeflow-bridge/trainer:latest",
            "args": ["--lr=${trialParameters.learningRate}"],
        }
        trial_spec = {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "spec": {
                "pytorchReplicaSpecs": {
                    "Master": {
                        "replicas": 1,
                        "template": {"spec": {"containers": [copy.deepcopy(container)]}},
                    },
                    "Worker": {
                        "replicas": 1,
                        "template": {"spec": {"containers": [copy.deepcopy(container)]}},
                    },
                }
            },
        }
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "exp", "namespace": "team", "uid": "u-1"},
        "spec": {
            "objective": {
                "type": "minimize",
                "goal": 0.1,
                "objectiveMetricName": "loss",
                "additionalMetricNames": ["acc"],
            },
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2,
            "maxTrialCount": 4,
            "maxFailedTrialCount": 2,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "training-container" if kind == "Job" else "pytorch",
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": trial_spec,
            },
        },
    }


# ------------------------------------------------------------------ template


def test_render_substitutes_parameters_and_trial_spec_fields() -> None:
    exp = _experiment()
    job = template.render_run_spec(exp, "exp-abcdefgh", "team", {"lr": "0.02", "layers": "2"})
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[2] == "--lr=0.02"
    assert command[3] == "--out=/tmp/team/exp-abcdefgh"
    assert job["metadata"]["name"] == "exp-abcdefgh"
    assert job["metadata"]["namespace"] == "team"
    labels = {"katib.kubeflow.org/experiment": "exp", "katib.kubeflow.org/trial": "exp-abcdefgh"}
    assert job["metadata"]["labels"] == labels
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    # the experiment itself is untouched
    assert (
        "${trialParameters.learningRate}"
        in exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][
            2
        ]
    )


def test_render_pytorchjob_labels_every_replica_and_defaults_primary_pod_labels() -> None:
    exp = _experiment("PyTorchJob")
    job = template.render_run_spec(exp, "exp-1", "team", {"lr": "0.03"})
    for replica in ("Master", "Worker"):
        tmpl = job["spec"]["pytorchReplicaSpecs"][replica]["template"]
        assert tmpl["metadata"]["labels"]["katib.kubeflow.org/trial"] == "exp-1"
        assert tmpl["spec"]["containers"][0]["args"] == ["--lr=0.03"]
    assert template.primary_pod_labels(exp) == {"training.kubeflow.org/job-role": "master"}
    assert template.primary_pod_labels(_experiment()) == {}


def test_render_unknown_placeholder_is_a_clear_error() -> None:
    exp = _experiment()
    exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].append(
        "--x=${trialParameters.missing}"
    )
    with pytest.raises(template.TemplateError, match=r"trialParameters\.missing.*trialParameters"):
        template.render_run_spec(exp, "exp-1", "team", {"lr": "0.02"})


def test_build_trial_owner_reference_order_and_defaults() -> None:
    exp = _experiment()
    trial = template.build_trial(exp, "exp-x", {"layers": "2", "lr": "0.02"})
    assert trial["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "name": "exp",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert trial["metadata"]["labels"] == {"katib.kubeflow.org/experiment": "exp"}
    assert trial["spec"]["parameterAssignments"] == [
        {"name": "lr", "value": "0.02"},
        {"name": "layers", "value": "2"},
    ]
    assert trial["spec"]["successCondition"] == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    assert trial["spec"]["objective"]["metricStrategies"] == [
        {"name": "loss", "value": "min"},
        {"name": "acc", "value": "min"},
    ]
    name = template.trial_name("exp")
    assert name.startswith("exp-") and len(name) == len("exp-") + 8 and name[4:].isalnum()


# ------------------------------------------------------------------ metrics


def test_stdout_collector_parses_katib_format_with_timestamps() -> None:
    log = "\n".join(
        [
            "starting training",
            "epoch=1 train_loss=0.9 loss=0.80 acc=0.5",
            "2026-11-22T10:00:00Z epoch=2 loss=6.5e-1 acc=0.61",
            "2026-11-22T10:00:01.123+01:00 loss = 0.70",
            "not-a-time loss=0.55",
            "lossy=3.0",  # mentions 'loss' but is another metric
        ]
    )
    logs = metrics.collect(log, ["loss", "acc"])
    assert [(m.name, m.value) for m in logs] == [
        ("loss", "0.80"),
        ("acc", "0.5"),
        ("loss", "6.5e-1"),
        ("acc", "0.61"),
        ("loss", "0.70"),
        ("loss", "0.55"),
    ]
    assert logs[0].timestamp == metrics.ZERO_TIMESTAMP
    assert logs[2].timestamp == "2026-11-22T10:00:00Z"
    assert logs[4].timestamp == "2026-11-22T10:00:01.123+01:00"
    obs = metrics.observation(logs, ["loss", "acc"])
    assert obs == {
        "metrics": [
            {"name": "loss", "min": "0.55", "max": "0.80", "latest": "0.55"},
            {"name": "acc", "min": "0.5", "max": "0.61", "latest": "0.61"},
        ]
    }
    assert metrics.metric_value(obs, "loss", "min") == "0.55"
    assert metrics.metric_value(obs, "acc", "latest") == "0.61"


def test_file_collector_text_and_json_formats() -> None:
    spec = {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": "/var/log/katib/m.log", "format": "JSON"}},
    }
    assert metrics.file_source(spec) == ("/var/log/katib/m.log", "JSON")
    assert metrics.file_source({"collector": {"kind": "StdOut"}}) is None
    json_lines = '{"epoch": 0, "loss": 0.5, "timestamp": "2026-01-01T00:00:00Z"}\nnot json\n{"loss": 0.25, "acc": 0.9}\n'
    logs = metrics.collect(json_lines, ["loss", "acc"], fmt="JSON")
    assert [(m.name, m.value) for m in logs] == [("loss", "0.5"), ("loss", "0.25"), ("acc", "0.9")]
    assert logs[0].timestamp == "2026-01-01T00:00:00Z"
    text = metrics.collect("epoch 0: loss=0.5 acc=0.8\n", ["loss", "acc"], fmt="TEXT")  # as StdOut parses
    assert [(m.name, m.value) for m in text] == [("loss", "0.5"), ("acc", "0.8")]
    assert metrics.collect("{}\n", ["loss"], fmt="JSON")[0].value == "unavailable"


def test_collector_reports_unavailable_without_objective() -> None:
    logs = metrics.collect("acc=0.9\n", ["loss", "acc"])
    assert logs == [metrics.MetricLog("loss", "unavailable")]
    obs = metrics.observation(logs, ["loss", "acc"])
    assert obs == {
        "metrics": [{"name": "loss", "min": "unavailable", "max": "unavailable", "latest": "unavailable"}]
    }
    assert not metrics.objective_available(obs, "loss")
    # non-numeric metric (the DARTS Genotype shape): min/max unavailable, latest kept; strategy falls back
    custom = metrics.collect("Best-Genotype=Genotype(x)", ["Best-Genotype"], [r"([\w-]+)=(Genotype.*)"])
    obs2 = metrics.observation(custom, ["Best-Genotype"])
    assert obs2["metrics"][0] == {
        "name": "Best-Genotype",
        "min": "unavailable",
        "max": "unavailable",
        "latest": "Genotype(x)",
    }
    assert metrics.metric_value(obs2, "Best-Genotype", "max") == "Genotype(x)"


# ------------------------------------------------------------------ status


def _trial(name: str, state: str, loss: str | None = None, lr: str = "0.01") -> dict[str, Any]:
    st: dict[str, Any] = {}
    status.mark_trial_created(st, "2026-01-01T00:00:00Z")
    if state != "pending":
        status.mark_trial_running(st, "2026-01-01T00:00:01Z")
    if loss is not None:
        st["observation"] = {"metrics": [{"name": "loss", "min": loss, "max": loss, "latest": loss}]}
    finish = {
        "succeeded": status.mark_trial_succeeded,
        "failed": status.mark_trial_failed,
        "metricsUnavailable": status.mark_trial_metrics_unavailable,
        "earlyStopped": status.mark_trial_early_stopped,
        "killed": status.mark_trial_killed,
    }
    if state in finish:
        finish[state](st, now="2026-01-01T00:00:05Z")  # type: ignore[operator]
    return {
        "metadata": {"name": name},
        "spec": {"parameterAssignments": [{"name": "lr", "value": lr}]},
        "status": st,
    }


def test_trial_conditions_sequence_like_katib() -> None:
    t = _trial("t", "succeeded", "0.5")
    assert [(c["type"], c["status"], c["reason"]) for c in t["status"]["conditions"]] == [
        ("Created", "True", "TrialCreated"),
        ("Running", "False", "TrialRunning"),
        ("Succeeded", "True", "TrialSucceeded"),
    ]
    assert t["status"]["completionTime"] == "2026-01-01T00:00:05Z"
    assert t["status"]["conditions"][1]["lastTransitionTime"] == "2026-01-01T00:00:05Z"
    st: dict[str, Any] = {}
    status.mark_trial_created(st)
    status.mark_trial_running(st)
    status.mark_trial_failed(
        st, job_reason="BackoffLimitExceeded", job_message="Job has reached the specified backoff limit"
    )
    failed = status.get_condition(st, "Failed")
    assert failed is not None
    assert failed["reason"] == "TrialFailed. Job reason: BackoffLimitExceeded"
    assert failed["message"] == "Trial has failed. Job message: Job has reached the specified backoff limit"
    assert status.trial_state({"status": st}) == "failed"
    for state in ("pending", "running", "metricsUnavailable", "earlyStopped", "killed"):
        assert status.trial_state(_trial("t", state)) == state


def test_set_condition_no_op_and_move_to_end() -> None:
    st: dict[str, Any] = {}
    status.set_condition(st, "Created", "True", "R", "m", "t0")
    status.set_condition(st, "Running", "True", "R2", "m", "t1")
    status.set_condition(st, "Created", "True", "R", "m", "t2")  # no-op
    assert [c["type"] for c in st["conditions"]] == ["Created", "Running"]
    assert st["conditions"][0]["lastUpdateTime"] == "t0"
    status.set_condition(
        st, "Created", "True", "Other", "m", "t3"
    )  # same status, new reason: moved, transition kept
    assert [c["type"] for c in st["conditions"]] == ["Running", "Created"]
    assert st["conditions"][1]["lastTransitionTime"] == "t0"
    assert st["conditions"][1]["lastUpdateTime"] == "t3"


def test_experiment_created_then_running_with_empty_optimal_trial() -> None:
    exp = _experiment()
    exp["status"] = {}
    status.mark_experiment_created(exp["status"], "2026-01-01T00:00:00Z")
    assert exp["status"] == {
        "startTime": "2026-01-01T00:00:00Z",
        "conditions": [
            {
                "type": "Created",
                "status": "True",
                "reason": "ExperimentCreated",
                "message": "Experiment is created",
                "lastUpdateTime": "2026-01-01T00:00:00Z",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    status.update_experiment_status(exp, [_trial("exp-a", "running")], now="2026-01-01T00:00:10Z")
    st = exp["status"]
    # the shape of the real running DARTS experiment
    assert st["currentOptimalTrial"] == {
        "bestTrialName": "",
        "observation": {"metrics": None},
        "parameterAssignments": None,
    }
    assert st["runningTrialList"] == ["exp-a"]
    assert st["trials"] == 1 and st["trialsRunning"] == 1
    for absent in (
        "trialsSucceeded",
        "trialsFailed",
        "succeededTrialList",
        "completionTime",
        "trialsPending",
    ):
        assert absent not in st
    assert [(c["type"], c["status"], c["message"]) for c in st["conditions"]] == [
        ("Created", "True", "Experiment is created"),
        ("Running", "True", "Experiment is running"),
    ]


def test_experiment_max_trials_reached_shape_and_best_trial() -> None:
    exp = _experiment()
    exp["spec"]["objective"].pop("goal")
    exp["status"] = {}
    status.mark_experiment_created(exp["status"])
    trials = [
        _trial("exp-a", "succeeded", "0.5", lr="0.01"),
        _trial("exp-b", "succeeded", "0.3", lr="0.02"),
        _trial("exp-c", "metricsUnavailable"),
        _trial("exp-d", "earlyStopped", "0.9"),
    ]
    status.update_experiment_status(exp, trials[:1])
    status.update_experiment_status(exp, trials, now="2026-01-01T01:00:00Z")
    st = exp["status"]
    assert [(c["type"], c["status"], c["reason"]) for c in st["conditions"]] == [
        ("Created", "True", "ExperimentCreated"),
        ("Running", "False", "ExperimentRunning"),
        ("Succeeded", "True", "ExperimentMaxTrialsReached"),
    ]
    assert st["conditions"][2]["message"] == "Experiment has succeeded because max trial count has reached"
    assert st["completionTime"] == "2026-01-01T01:00:00Z"
    assert st["currentOptimalTrial"] == {
        "bestTrialName": "exp-b",
        "parameterAssignments": [{"name": "lr", "value": "0.02"}],
        "observation": {"metrics": [{"name": "loss", "min": "0.3", "max": "0.3", "latest": "0.3"}]},
    }
    assert st["trials"] == 4 and st["trialsSucceeded"] == 2
    assert st["trialMetricsUnavailable"] == 1 and st["trialsEarlyStopped"] == 1
    assert st["succeededTrialList"] == ["exp-a", "exp-b"]
    assert st["metricsUnavailableTrialList"] == ["exp-c"]
    assert st["earlyStoppedTrialList"] == ["exp-d"]
    # a completed experiment keeps its conditions on later reconciles
    status.update_experiment_status(exp, trials)
    assert st["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"


def test_experiment_goal_then_failed_precedence() -> None:
    exp = _experiment()  # goal 0.1, minimize
    exp["status"] = {}
    status.mark_experiment_created(exp["status"])
    status.update_experiment_status(
        exp, [_trial("exp-a", "succeeded", "0.05"), _trial("exp-b", "failed"), _trial("exp-c", "failed")]
    )
    assert exp["status"]["conditions"][-1]["reason"] == "ExperimentGoalReached"
    assert (
        exp["status"]["conditions"][-1]["message"]
        == "Experiment has succeeded because Objective goal has reached"
    )

    exp2 = _experiment()
    exp2["status"] = {}
    status.mark_experiment_created(exp2["status"])
    status.update_experiment_status(exp2, [_trial("exp-a", "failed"), _trial("exp-b", "running")])
    assert exp2["status"]["conditions"][-1]["type"] == "Running"
    status.update_experiment_status(exp2, [_trial("exp-a", "failed"), _trial("exp-b", "metricsUnavailable")])
    assert [(c["type"], c["status"], c["reason"]) for c in exp2["status"]["conditions"]] == [
        ("Created", "True", "ExperimentCreated"),
        ("Running", "False", "ExperimentRunning"),
        ("Failed", "True", "ExperimentFailed"),
    ]
    assert exp2["status"]["failedTrialList"] == ["exp-a"]


def test_experiment_suggestion_end_waits_for_active_trials() -> None:
    exp = _experiment()
    exp["spec"]["maxTrialCount"] = 10
    exp["spec"]["objective"].pop("goal")
    exp["status"] = {}
    status.mark_experiment_created(exp["status"])
    status.update_experiment_status(
        exp, [_trial("exp-a", "succeeded", "0.4"), _trial("exp-b", "running")], suggestion_done=True
    )
    assert exp["status"]["conditions"][-1]["type"] == "Running"
    status.update_experiment_status(
        exp, [_trial("exp-a", "succeeded", "0.4"), _trial("exp-b", "succeeded", "0.2")], suggestion_done=True
    )
    assert exp["status"]["conditions"][-1]["reason"] == "ExperimentSuggestionEndReached"


def test_experiment_would_end_answers_before_a_new_trial_starts() -> None:
    exp = _experiment()
    exp["spec"].update(maxTrialCount=10, maxFailedTrialCount=1)
    exp["spec"]["objective"].pop("goal")
    running = [_trial("exp-a", "succeeded", "0.4"), _trial("exp-b", "running")]
    assert not status.experiment_would_end(exp, running)
    # One MetricsUnavailable trial reaches maxFailedTrialCount=1 before the controller writes Failed.
    assert status.experiment_would_end(exp, [*running, _trial("exp-c", "metricsUnavailable")])
    exp["spec"]["objective"]["goal"] = 0.5
    assert status.experiment_would_end(exp, running)  # exp-a's 0.4 meets the minimize goal
    assert "status" not in exp or not status.experiment_is_completed(exp)  # only a probe was updated
    exp["status"] = {}
    status.mark_experiment_created(exp["status"])
    status.update_experiment_condition(exp, goal_reached=True, suggestion_done=False)
    assert status.experiment_would_end(exp, [])
