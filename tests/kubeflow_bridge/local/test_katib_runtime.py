"""Katib Experiments against the real local runtime: suggestion processes, trial Jobs as pods.

Most behaviour uses a tiny trial script (image ``python:3.11``, the runtime's own interpreter) that
prints Katib StdOut metrics; one test tunes the real trainer (``python -m trainer train``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

GROUP, VERSION = "kubeflow.org", "v1beta1"

# loss = (x - 0.3)^2 + 0.1/(epoch+1): best at x = 0.3; MODE=fail exits 1, MODE=silent prints no metric;
# MODE=mixed fails for x > 0.6 and prints no metric for x < 0.1.
TRIAL_SCRIPT = """
import sys, time
x, epochs, mode = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if mode == "mixed":
    mode = "fail" if x > 0.6 else "silent" if x < 0.1 else "ok"
if mode == "fail":
    print("crashing on purpose", flush=True); sys.exit(1)
for e in range(epochs):
    if mode != "silent":
        print(f"epoch={e} loss={(x - 0.3) ** 2 + 0.1 / (e + 1):.6f} acc={1 - abs(x - 0.3):.4f}", flush=True)
    else:
        print(f"epoch={e} nothing to see", flush=True)
    time.sleep(float(sys.argv[4]))
"""


def _experiment(
    name: str,
    *,
    algorithm: str = "random",
    parameters: list[dict[str, Any]] | None = None,
    parallel: int = 2,
    max_trials: int = 3,
    max_failed: int = 2,
    mode: str = "ok",
    epochs: int = 3,
    sleep: float = 0.1,
    goal: float | None = None,
    early_stopping: dict[str, Any] | None = None,
) -> dict[str, Any]:
    objective: dict[str, Any] = {
        "type": "minimize",
        "objectiveMetricName": "loss",
        "additionalMetricNames": ["acc"],
    }
    if goal is not None:
        objective["goal"] = goal
    spec: dict[str, Any] = {
        "objective": objective,
        "algorithm": {
            "algorithmName": algorithm,
            "algorithmSettings": [{"name": "random_state", "value": "7"}],
        }
        if algorithm != "grid"
        else {"algorithmName": "grid"},
        "parallelTrialCount": parallel,
        "maxTrialCount": max_trials,
        "maxFailedTrialCount": max_failed,
        "parameters": parameters
        or [
            {
                "name": "x",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.0", "max": "1.0", "step": "0.25"},
            }
        ],
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": "x", "reference": "x"}],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "python:3.11",
                                    "command": [
                                        "python",
                                        "-c",
                                        TRIAL_SCRIPT,
                                        "${trialParameters.x}",
                                        str(epochs),
                                        mode,
                                        str(sleep),
                                    ],
                                }
                            ],
                        }
                    },
                },
            },
        },
    }
    if early_stopping is not None:
        spec["earlyStopping"] = early_stopping
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }


def _custom(kube: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(kube)


def _wait_done(custom: Any, ns: str, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    exp: dict[str, Any] = {}
    while time.monotonic() < deadline:
        exp = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "experiments", name)
        conditions = (exp.get("status") or {}).get("conditions") or []
        if (
            conditions
            and conditions[-1]["type"] in ("Succeeded", "Failed")
            and conditions[-1]["status"] == "True"
        ):
            return exp
        time.sleep(0.5)
    raise AssertionError(f"experiment {name} did not finish in {timeout}s: {exp.get('status')}")


def _trials(custom: Any, ns: str, name: str) -> list[dict[str, Any]]:
    items = custom.list_namespaced_custom_object(
        GROUP, VERSION, ns, "trials", label_selector=f"katib.kubeflow.org/experiment={name}"
    )["items"]
    return list(items)


def _condition_types(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c["reason"]) for c in obj["status"]["conditions"]]


def test_random_search_status_trials_and_jobs(kube: Any, namespace: str) -> None:
    custom = _custom(kube)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", _experiment("rand"))
    exp = _wait_done(custom, namespace, "rand")
    st = exp["status"]
    assert _condition_types(exp) == [
        ("Created", "True", "ExperimentCreated"),
        ("Running", "False", "ExperimentRunning"),
        ("Succeeded", "True", "ExperimentMaxTrialsReached"),
    ]
    assert st["trials"] == 3 and st["trialsSucceeded"] == 3
    for absent in ("trialsFailed", "trialsRunning", "trialsPending", "failedTrialList", "runningTrialList"):
        assert absent not in st
    assert st["startTime"] <= st["completionTime"]
    trials = _trials(custom, namespace, "rand")
    assert sorted(st["succeededTrialList"]) == sorted(t["metadata"]["name"] for t in trials)
    # the best trial is the one with the lowest objective min, values as strings
    best_value = min(float(t["status"]["observation"]["metrics"][0]["min"]) for t in trials)
    best = [
        t for t in trials if float(t["status"]["observation"]["metrics"][0]["min"]) == best_value
    ]  # ties possible
    optimal = st["currentOptimalTrial"]
    assert optimal["bestTrialName"] in [t["metadata"]["name"] for t in best]
    assert optimal["parameterAssignments"] == best[0]["spec"]["parameterAssignments"]
    loss = optimal["observation"]["metrics"][0]
    x = float(optimal["parameterAssignments"][0]["value"])
    assert loss["name"] == "loss" and all(isinstance(loss[k], str) for k in ("min", "max", "latest"))
    assert float(loss["min"]) == pytest.approx((x - 0.3) ** 2 + 0.1 / 3, abs=1e-5)
    assert float(loss["max"]) == pytest.approx((x - 0.3) ** 2 + 0.1, abs=1e-5)
    assert optimal["observation"]["metrics"][1]["name"] == "acc"
    for trial in trials:
        assert (
            trial["metadata"]["name"].startswith("rand-")
            and len(trial["metadata"]["name"]) == len("rand-") + 8
        )
        assert trial["metadata"]["ownerReferences"][0]["kind"] == "Experiment"
        assert [c[0] for c in _condition_types(trial)] == ["Created", "Running", "Succeeded"]
        assert (
            trial["spec"]["runSpec"]["metadata"]["labels"]["katib.kubeflow.org/trial"]
            == trial["metadata"]["name"]
        )
        value = trial["spec"]["parameterAssignments"][0]["value"]
        assert trial["spec"]["runSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][3] == value
    # jobs of finished trials are deleted (retain is false)
    from kubernetes import client

    jobs = client.BatchV1Api(kube).list_namespaced_job(namespace).items
    assert jobs == []


def test_grid_covers_the_grid_and_tpe_runs(kube: Any, namespace: str, runtime: Any) -> None:
    # The suggestion processes' reads of trials and pod logs meet 500/503/429 answers; the experiments
    # still complete with every grid point and the right best trial.
    runtime.faults(error_rate=0.15, throttle_rate=0.1, retry_after=0, path_pattern="/pods|/trials/", seed=3)
    custom = _custom(kube)
    grid = _experiment(
        "grid",
        algorithm="grid",
        max_trials=10,
        parameters=[
            {
                "name": "x",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.1", "max": "0.5", "step": "0.2"},
            }
        ],
    )
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", grid)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "experiments", _experiment("tpe", algorithm="tpe")
    )
    exp = _wait_done(custom, namespace, "grid")
    # 3 grid points < maxTrialCount: the search ends when the grid has no more points
    assert exp["status"]["conditions"][-1]["reason"] == "ExperimentSuggestionEndReached"
    values = sorted(
        float(t["spec"]["parameterAssignments"][0]["value"]) for t in _trials(custom, namespace, "grid")
    )
    assert values == pytest.approx([0.1, 0.3, 0.5])
    assert exp["status"]["currentOptimalTrial"]["parameterAssignments"] == [{"name": "x", "value": "0.3"}]
    tpe = _wait_done(custom, namespace, "tpe")
    assert tpe["status"]["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
    assert tpe["status"]["trialsSucceeded"] == 3


def test_goal_reached_with_pytorchjob_trials_reads_the_master_only(kube: Any, namespace: str) -> None:
    custom = _custom(kube)
    exp = _experiment(
        "goal",
        algorithm="grid",
        parallel=1,
        max_trials=5,
        goal=0.05,
        parameters=[
            {"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.3", "0.9", "0.8"]}}
        ],
    )
    template = exp["spec"]["trialTemplate"]
    container = template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["name"] = template["primaryContainerName"] = "pytorch"
    # the Worker prints a much better loss: Katib reads the Master (primaryPodLabels job-role=master) only
    worker = {**container, "command": ["python", "-c", "print('loss=0.00001')"]}
    template["trialSpec"] = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {"spec": {"containers": [container]}},
                },
                "Worker": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": {"spec": {"containers": [worker]}},
                },
            }
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", exp)
    done = _wait_done(custom, namespace, "goal")
    assert done["status"]["conditions"][-1]["reason"] == "ExperimentGoalReached"
    assert (
        done["status"]["conditions"][-1]["message"]
        == "Experiment has succeeded because Objective goal has reached"
    )
    optimal = done["status"]["currentOptimalTrial"]
    assert optimal["parameterAssignments"] == [{"name": "x", "value": "0.3"}]
    assert float(optimal["observation"]["metrics"][0]["min"]) == pytest.approx(0.1 / 3, abs=1e-5)
    assert done["status"]["trials"] < 3
    trial = _trials(custom, namespace, "goal")[0]
    assert trial["spec"]["primaryPodLabels"] == {"training.kubeflow.org/job-role": "master"}
    assert trial["spec"]["successCondition"] == 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'


# Each TrainJob trial runs torchrun on 2 nodes; node 1 prints a much better loss, which Katib must not
# read: the template's primaryPodLabels name node 0 (Katib has no TrainJob defaults, so the template
# says them, as katib.trainer_trial_template(kind="TrainJob") writes them).
TRAINJOB_TRIAL = """
import os, sys
x, rank = float(sys.argv[1]), int(os.environ["RANK"])
print(f"epoch=0 loss={(x - 0.3) ** 2 + 0.05 if rank == 0 else 0.00001:.6f} acc=0.5", flush=True)
"""


def test_trials_as_trainjobs_read_node_0(kube: Any, namespace: str) -> None:
    custom = _custom(kube)
    exp = _experiment(
        "tj",
        algorithm="grid",
        parallel=2,
        max_trials=2,
        parameters=[{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.3", "0.9"]}}],
    )
    command = ["torchrun", "--no-python", "python3", "-c", TRAINJOB_TRIAL, "${trialParameters.x}"]
    exp["spec"]["trialTemplate"] = {
        "trialParameters": exp["spec"]["trialTemplate"]["trialParameters"],
        "primaryContainerName": "node",
        "successCondition": 'status.conditions.#(type=="Complete")#|#(status=="True")#',
        "failureCondition": 'status.conditions.#(type=="Failed")#|#(status=="True")#',
        "primaryPodLabels": {
            "jobset.sigs.k8s.io/replicatedjob-name": "node",
            "batch.kubernetes.io/job-completion-index": "0",
        },
        "retain": True,
        "trialSpec": {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"numNodes": 2, "command": command},
            },
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", exp)
    done = _wait_done(custom, namespace, "tj", timeout=180)
    assert _condition_types(done)[-1] == ("Succeeded", "True", "ExperimentMaxTrialsReached"), done["status"]
    optimal = done["status"]["currentOptimalTrial"]
    assert optimal["parameterAssignments"] == [{"name": "x", "value": "0.3"}]
    assert float(optimal["observation"]["metrics"][0]["latest"]) == pytest.approx(0.05)
    trials = _trials(custom, namespace, "tj")
    assert sorted(t["status"]["conditions"][-1]["type"] for t in trials) == ["Succeeded", "Succeeded"]
    for trial in trials:  # each trial's job is a TrainJob it owns; its pods carry the trial's label
        job = custom.get_namespaced_custom_object(
            "trainer.kubeflow.org", "v1alpha1", namespace, "trainjobs", trial["metadata"]["name"]
        )
        assert job["metadata"]["ownerReferences"][0]["kind"] == "Trial"
        assert job["spec"]["trainer"]["numNodes"] == 2
    from kubernetes import client

    pods = (
        client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="katib.kubeflow.org/trial").items
    )
    assert len(pods) == 4 and {p.metadata.labels["katib.kubeflow.org/experiment"] for p in pods} == {"tj"}


def test_medianstop_early_stops_a_bad_trial(kube: Any, namespace: str) -> None:
    custom = _custom(kube)
    exp = _experiment(
        "median",
        algorithm="grid",
        parallel=1,
        max_trials=3,
        epochs=20,  # 8 s per trial: room for the stop to land before a loaded machine's bad trial ends
        sleep=0.4,
        parameters=[
            {"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": ["0.3", "0.35", "5.0"]}}
        ],
        early_stopping={
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"},
                {"name": "start_step", "value": "2"},
            ],
        },
    )
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", exp)
    done = _wait_done(custom, namespace, "median", timeout=180)
    st = done["status"]
    assert st.get("trialsEarlyStopped") == 1, st
    stopped = [
        t
        for t in _trials(custom, namespace, "median")
        if t["metadata"]["name"] in st["earlyStoppedTrialList"]
    ]
    assert stopped[0]["spec"]["parameterAssignments"] == [{"name": "x", "value": "5.0"}]
    assert _condition_types(stopped[0])[-2:] == [
        ("Running", "False", "TrialRunning"),
        ("EarlyStopped", "True", "TrialEarlyStopped"),
    ]
    # stopped before its 20th epoch, whose loss would be (5.0 - 0.3)^2 + 0.1/20
    metrics = {m["name"]: m for m in stopped[0]["status"]["observation"]["metrics"]}
    assert float(metrics["loss"]["latest"]) > 4.7**2 + 0.1 / 20 + 1e-5
    assert st["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"


def test_failed_and_metrics_unavailable_trials(kube: Any, namespace: str) -> None:
    custom = _custom(kube)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "experiments",
        _experiment("fails", mode="fail", max_trials=5, max_failed=2),
    )
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "experiments",
        _experiment("silent", mode="silent", parallel=1, max_trials=3, max_failed=1),
    )
    failed = _wait_done(custom, namespace, "fails")
    assert _condition_types(failed)[-2:] == [
        ("Running", "False", "ExperimentRunning"),
        ("Failed", "True", "ExperimentFailed"),
    ]
    assert (
        failed["status"]["conditions"][-1]["message"]
        == "Experiment has failed because max failed count has reached"
    )
    assert failed["status"]["trialsFailed"] >= 2
    trial = _trials(custom, namespace, "fails")[0]
    assert trial["status"]["conditions"][-1]["reason"].startswith("TrialFailed")
    silent = _wait_done(custom, namespace, "silent")
    assert silent["status"]["conditions"][-1]["reason"] == "ExperimentFailed"
    assert silent["status"]["trialMetricsUnavailable"] == 1
    assert silent["status"]["metricsUnavailableTrialList"] == [
        t["metadata"]["name"] for t in _trials(custom, namespace, "silent")
    ]
    unavailable = _trials(custom, namespace, "silent")[0]
    assert _condition_types(unavailable)[-1][:2] == ("MetricsUnavailable", "True")
    assert unavailable["status"]["observation"]["metrics"][0]["latest"] == "unavailable"
    assert silent["status"]["currentOptimalTrial"]["bestTrialName"] == ""


def test_failed_trials_below_max_failed_count_do_not_end_the_experiment(kube: Any, namespace: str) -> None:
    """Katib keeps going after a Failed or MetricsUnavailable trial until maxFailedTrialCount is reached."""
    custom = _custom(kube)
    body = _experiment("mixed", algorithm="grid", mode="mixed", parallel=2, max_trials=5, max_failed=4)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", body)
    done = _wait_done(custom, namespace, "mixed")
    status = done["status"]
    assert _condition_types(done)[-1] == ("Succeeded", "True", "ExperimentMaxTrialsReached"), status
    assert status["trialsSucceeded"] == 2 and status["trialsFailed"] == 2  # x = 0.75 and 1.0
    assert status["trialMetricsUnavailable"] == 1  # x = 0.0
    best = status["currentOptimalTrial"]
    assert [a["value"] for a in best["parameterAssignments"]] == ["0.25"]


@pytest.mark.parametrize(("algorithm", "early"), [("tpe", None), ("random", "medianstop")])
def test_searchers_survive_failed_and_silent_trials(
    kube: Any, namespace: str, algorithm: str, early: str | None
) -> None:
    custom = _custom(kube)
    early_stopping = (
        {
            "algorithmName": early,
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "1"},
                {"name": "start_step", "value": "1"},
            ],
        }
        if early
        else None
    )
    body = _experiment(
        f"mixed-{algorithm}",
        algorithm=algorithm,
        mode="mixed",
        parallel=1,
        max_trials=6,
        max_failed=6,
        early_stopping=early_stopping,
    )
    body["spec"]["parameters"][0]["feasibleSpace"].pop("step")
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", body)
    done = _wait_done(custom, namespace, f"mixed-{algorithm}")
    status = done["status"]
    unhealthy = status.get("trialsFailed", 0) + status.get("trialMetricsUnavailable", 0)
    expected = (
        ("Failed", "True", "ExperimentFailed")
        if unhealthy == 6
        else ("Succeeded", "True", "ExperimentMaxTrialsReached")
    )
    assert _condition_types(done)[-1] == expected, status  # never "suggestion service failed"
    assert status["trials"] == 6


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda s: s["parameters"][0]["feasibleSpace"].update({"min": "2.0"}), "spec.parameters[0]", "min"),
        (
            lambda s: s["algorithm"].update({"algorithmName": "no-such-algo"}),
            "spec.algorithm.algorithmName",
            "",
        ),
        (
            lambda s: s["algorithm"].update({"algorithmName": "hyperband"}),
            "spec.algorithm.algorithmName",
            "local runtime",
        ),
        (lambda s: s["objective"].pop("objectiveMetricName"), "spec.objective.objectiveMetricName", ""),
        (  # a kind Katib runs on a cluster configured for it, but not this runtime
            lambda s: s["trialTemplate"]["trialSpec"].update(
                {"apiVersion": "kubeflow.org/v1", "kind": "TFJob"}
            ),
            "spec.trialTemplate.trialSpec.kind",
            "not run by the local runtime",
        ),
        (  # Katib has no default conditions for a TrainJob: it would never finish
            lambda s: s["trialTemplate"]["trialSpec"].update(
                {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {}}
            ),
            "spec.trialTemplate",
            "set successCondition and failureCondition",
        ),
    ],
)
def test_invalid_experiments_are_rejected_and_not_stored(
    kube: Any, namespace: str, change: Any, field: str, message: str
) -> None:
    from kubernetes.client.exceptions import ApiException

    custom = _custom(kube)
    exp = _experiment("bad")
    change(exp["spec"])
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", exp)
    # Katib's validating webhook denies: the API server relays it as 403 naming the webhook
    assert info.value.status == 403
    body = info.value.body if isinstance(info.value.body, str) else info.value.body.decode()
    assert '"reason":"Forbidden"' in body.replace(" ", "")
    assert 'admission webhook \\"validator.experiment.katib.kubeflow.org\\" denied the request' in body
    assert field in body and message in body
    assert custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "experiments")["items"] == []


FILE_TRIAL = """
import json, sys
x, path, fmt = float(sys.argv[1]), sys.argv[2].split("=", 1)[1], sys.argv[3]
with open(path, "w") as fh:
    for epoch in range(2):
        loss = (x - 0.3) ** 2 + 0.1 / (epoch + 1)
        if fmt == "JSON":
            fh.write(json.dumps({"epoch": epoch, "loss": loss, "acc": 1 - abs(x - 0.3)}) + "\\n")
        else:
            fh.write(f"epoch {epoch}: loss={loss:.6f} acc={1 - abs(x - 0.3):.4f}\\n")
print("metrics written to the file only")
"""


@pytest.mark.parametrize("fmt", ["JSON"])  # TEXT parses as StdOut does (test_katib_pure)
def test_file_metrics_collector(kube: Any, namespace: str, fmt: str) -> None:
    """Katib's File collector example: the trial writes metrics to /var/log/katib/...; the local runtime
    points that path into the trial's folder and collects from there."""
    custom = _custom(kube)
    body = _experiment(f"file-{fmt.lower()}", algorithm="grid", parallel=2, max_trials=3)
    body["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.25", "max": "0.75", "step": "0.25"}
    body["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File", "format": fmt}},
    }
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "python",
        "-c",
        FILE_TRIAL,
        "${trialParameters.x}",
        "--log-path=/var/log/katib/metrics.log",
        fmt,
    ]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", body)
    done = _wait_done(custom, namespace, f"file-{fmt.lower()}")
    status = done["status"]
    assert _condition_types(done)[-1] == ("Succeeded", "True", "ExperimentMaxTrialsReached"), status
    assert status["trialsSucceeded"] == 3
    best = status["currentOptimalTrial"]
    assert [a["value"] for a in best["parameterAssignments"]] == ["0.25"]
    loss = next(m for m in best["observation"]["metrics"] if m["name"] == "loss")
    assert float(loss["latest"]) == pytest.approx((0.25 - 0.3) ** 2 + 0.05, abs=1e-6)


def test_only_the_trial_counts_of_an_experiment_are_editable(kube: Any, namespace: str) -> None:
    from kubernetes.client.exceptions import ApiException

    custom = _custom(kube)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "experiments", _experiment("edit", max_trials=3, sleep=0.5)
    )
    with pytest.raises(ApiException) as info:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "experiments", "edit", {"spec": {"objective": {"type": "maximize"}}}
        )
    assert info.value.status == 403 and "only spec.parallelTrialCount, spec.maxTrialCount" in str(
        info.value.body
    )
    raised = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "experiments",
        "edit",
        {"spec": {"maxTrialCount": 4, "parallelTrialCount": 1}},
    )
    assert raised["spec"]["maxTrialCount"] == 4 and raised["spec"]["objective"]["type"] == "minimize"
    done = _wait_done(custom, namespace, "edit")
    assert done["status"]["trials"] == 4
    with pytest.raises(ApiException) as info:  # completed, resumePolicy Never: not restartable
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "experiments", "edit", {"spec": {"maxTrialCount": 6}}
        )
    assert info.value.status == 403 and "can be restarted" in str(info.value.body)


def _val_losses(stdout: str) -> list[float]:
    from kubeflow_bridge.local.katib.metrics import parse_metric_lines

    return [float(m.value) for m in parse_metric_lines(stdout, ["val_loss"])]


def test_trainer_experiment_beats_the_default_parameters(kube: Any, namespace: str, tmp_path: Any) -> None:
    """Random search over the learning rate of the real trainer (tiny data, 3 epochs) finds a trial whose
    best val_loss beats the trainer's default learning rate (2e-3) trained the same way."""
    import subprocess
    import sys

    data = tmp_path / "data"
    trainer = [sys.executable, "-m", "trainer"]
    subprocess.run(
        [
            *trainer,
            "ingest",
            "--out",
            str(data / "raw"),
            "--rows",
            "3000",
            "--seed",
            "3",
            "--end",
            "2026-03-01T00:00:00Z",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *trainer,
            "preprocess",
            "--data",
            str(data / "raw"),
            "--out",
            str(data / "prep"),
            "--scheduler",
            "threads",
        ],
        check=True,
        capture_output=True,
    )
    fixed = ["--data", str(data / "prep"), "--epochs", "3", "--batch-size", "256"]
    default = subprocess.run(
        [*trainer, "train", *fixed, "--model-out", str(tmp_path / "default.pt")],
        check=True,
        capture_output=True,
        text=True,
    )
    default_best = min(_val_losses(default.stdout))

    spec = _experiment("vae", max_trials=4, parallel=2)["spec"]
    spec["objective"] = {
        "type": "minimize",
        "objectiveMetricName": "val_loss",
        "additionalMetricNames": ["train_loss"],
    }
    spec["parameters"] = [
        {
            "name": "lr",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.0005", "max": "0.05", "distribution": "logUniform"},
        }
    ]
    spec["trialTemplate"] = {
        "primaryContainerName": "training-container",
        "trialParameters": [{"name": "learningRate", "reference": "lr"}],
        "trialSpec": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "training-container",
                                "image": "kubeflow-bridge/trainer:latest",
                                "command": ["python", "-m", "trainer", "train", *fixed],
                                "args": [
                                    "--lr=${trialParameters.learningRate}",
                                    f"--model-out={tmp_path}/${{trialSpec.Name}}.pt",
                                ],
                            }
                        ],
                    }
                },
            },
        },
    }
    custom = _custom(kube)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "experiments",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Experiment", "metadata": {"name": "vae"}, "spec": spec},
    )
    done = _wait_done(custom, namespace, "vae", timeout=240)
    st = done["status"]
    assert st["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached", st
    assert st["trialsSucceeded"] == 4
    optimal = st["currentOptimalTrial"]
    best = float(optimal["observation"]["metrics"][0]["min"])
    assert optimal["observation"]["metrics"][0]["name"] == "val_loss"
    assert best < default_best, f"best trial {optimal} did not beat the default lr's val_loss {default_best}"
    # each trial wrote its own model, named by ${trialSpec.Name}
    assert sorted(p.stem for p in tmp_path.glob("vae-*.pt")) == sorted(st["succeededTrialList"])


def test_deleting_a_running_experiment_stops_its_suggestion_and_trials(
    kube: Any, namespace: str, runtime: Any
) -> None:
    from pathlib import Path

    from kubernetes import client

    custom = _custom(kube)
    core = client.CoreV1Api(kube)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "experiments", _experiment("gone", max_trials=4, epochs=60, sleep=0.5)
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector="katib.kubeflow.org/experiment=gone").items
        if any(p.status.phase == "Running" for p in pods):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("no trial pod started")

    def suggestion_processes() -> list[str]:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if f"--experiment {namespace}/gone" in cmd:
                    found.append(cmd)
        return found

    assert suggestion_processes()
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", "gone")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = (
            _trials(custom, namespace, "gone"),
            core.list_namespaced_pod(namespace, label_selector="katib.kubeflow.org/experiment=gone").items,
            suggestion_processes(),
        )
        if not any(left):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"left behind after delete: {left}")


def test_nothing_listens_off_loopback_while_an_experiment_runs(
    kube: Any, namespace: str, runtime: Any
) -> None:
    """The suggestion (once Ray Tune, whose servers bound every interface) opens no port; every
    listener of the runtime's process tree is on loopback, and a lost create answer makes no extra trial."""
    import psutil

    runtime.faults(lose_rate=0.3, path_pattern="/trials$", seed=11)
    custom = _custom(kube)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "experiments", _experiment("quiet", max_trials=3, epochs=8, sleep=0.3)
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _trials(custom, namespace, "quiet"):
        time.sleep(0.2)
    tree = psutil.Process(runtime.proc.pid)
    procs = [tree, *tree.children(recursive=True)]
    assert any("kubeflow_bridge.local.katib.suggestion" in " ".join(p.cmdline()) for p in procs)
    listeners = set()
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            listeners |= {(proc.name(), c.laddr) for c in proc.connections("inet") if c.status == "LISTEN"}
    assert listeners and all(addr.ip in ("127.0.0.1", "::1") for _, addr in listeners), listeners
    done = _wait_done(custom, namespace, "quiet")
    assert done["status"]["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
    assert len(_trials(custom, namespace, "quiet")) == 3


def test_a_killed_suggestion_restarts_and_finds_its_trials(kube: Any, namespace: str) -> None:
    """SIGKILL of the suggestion process (as a deleted suggestion pod): the controller restarts it, the new
    one counts the trials that exist and learns from the finished ones: no extra or duplicate trial."""
    import signal

    import psutil

    custom = _custom(kube)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "experiments",
        _experiment("phoenix", algorithm="tpe", max_trials=4, parallel=2, epochs=6, sleep=0.3),
    )

    def suggestion() -> psutil.Process | None:
        for proc in psutil.process_iter(["cmdline"]):
            if f"--experiment {namespace}/phoenix" in " ".join(proc.info["cmdline"] or []):
                return proc
        return None

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_trials(custom, namespace, "phoenix")) < 2:
        time.sleep(0.2)
    first = suggestion()
    assert first is not None
    first.send_signal(signal.SIGKILL)
    done = _wait_done(custom, namespace, "phoenix")
    assert done["status"]["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached", done["status"]
    trials = _trials(custom, namespace, "phoenix")
    assert len(trials) == 4 and done["status"]["trialsSucceeded"] == 4
    from kubernetes import client

    events = client.CoreV1Api(kube).list_namespaced_event(namespace).items
    assert any(e.reason == "SuggestionRestarted" and e.involved_object.name == "phoenix" for e in events)


def test_experiment_fails_clearly_when_the_suggestion_cannot_start(tmp_path: Any) -> None:
    """The trainer environment (where Optuna lives) missing: ExperimentFailed saying why, no retry loop."""
    from kubernetes import client, config

    from .conftest import start_runtime, stop_runtime

    state = tmp_path / "state"
    state.mkdir()
    (state / "images.yaml").write_text(f'"kubeflow-bridge/trainer:*": "{tmp_path / "no-such-venv"}"\n')
    rt = start_runtime(state, "--no-s3")
    try:
        custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(rt.kubeconfig)))
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "default", "experiments", _experiment("nosugg")
        )
        done = _wait_done(custom, "default", "nosugg", timeout=30)
        failed = done["status"]["conditions"][-1]
        assert (failed["type"], failed["reason"]) == ("Failed", "ExperimentFailed")
        assert (
            "suggestion service could not start" in failed["message"] and "no-such-venv" in failed["message"]
        )
        assert _trials(custom, "default", "nosugg") == []
    finally:
        stop_runtime(rt)
