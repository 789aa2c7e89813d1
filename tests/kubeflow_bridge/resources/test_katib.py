from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from kubeflow_bridge.resources.errors import ValidationError
from kubeflow_bridge.resources.katib import (
    KUBEFLOW_JOB_FAILURE_CONDITION,
    KUBEFLOW_JOB_SUCCESS_CONDITION,
    Algorithm,
    EarlyStopping,
    ExperimentSpec,
    Objective,
    Parameter,
    TrialParameter,
    TrialTemplate,
    build_experiment,
    parameter_types,
    trainer_trial_template,
    trial_spec_containers,
    validate_experiment,
)
from kubeflow_bridge.resources.training import PyTorchJobSpec

MNIST_IMAGE = "ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest"
MNIST_COMMAND = [
    "python3",
    "/opt/pytorch-mnist/mnist.py",
    "--epochs=1",
    "--batch-size=16",
    "--lr=${trialParameters.learningRate}",
    "--momentum=${trialParameters.momentum}",
]


def _mnist_replica() -> dict[str, Any]:
    return {
        "replicas": 1,
        "restartPolicy": "OnFailure",
        "template": {
            "spec": {
                "containers": [{"name": "pytorch", "image": MNIST_IMAGE, "command": list(MNIST_COMMAND)}]
            }
        },
    }


def _mnist_example() -> dict[str, Any]:
    # Written from katib v0.19 examples/v1beta1/kubeflow-training-operator/pytorchjob-mnist.yaml.
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"namespace": "kubeflow", "name": "pytorchjob-mnist"},
        "spec": {
            "parallelTrialCount": 3,
            "maxTrialCount": 12,
            "maxFailedTrialCount": 3,
            "objective": {"type": "minimize", "goal": 0.001, "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
                {
                    "name": "momentum",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.5", "max": "0.9"},
                },
            ],
            "trialTemplate": {
                "primaryContainerName": "pytorch",
                "trialParameters": [
                    {
                        "name": "learningRate",
                        "description": "Learning rate for the training model",
                        "reference": "lr",
                    },
                    {
                        "name": "momentum",
                        "description": "Momentum for the training model",
                        "reference": "momentum",
                    },
                ],
                "trialSpec": {
                    "apiVersion": "kubeflow.org/v1",
                    "kind": "PyTorchJob",
                    "spec": {"pytorchReplicaSpecs": {"Master": _mnist_replica(), "Worker": _mnist_replica()}},
                },
            },
        },
    }


def _mnist_built() -> dict[str, Any]:
    job = PyTorchJobSpec(name="unused", image=MNIST_IMAGE, command=MNIST_COMMAND, workers=1)
    return ExperimentSpec(
        name="pytorchjob-mnist",
        namespace="kubeflow",
        parallel_trial_count=3,
        max_trial_count=12,
        max_failed_trial_count=3,
        objective=Objective(type="minimize", goal=0.001, objective_metric_name="loss"),
        algorithm=Algorithm(name="random"),
        parameters=[Parameter.double("lr", 0.01, 0.05), Parameter.double("momentum", 0.5, 0.9)],
        trial_template=TrialTemplate(
            primary_container_name="pytorch",
            trial_parameters=[
                TrialParameter(
                    name="learningRate", description="Learning rate for the training model", reference="lr"
                ),
                TrialParameter(
                    name="momentum", description="Momentum for the training model", reference="momentum"
                ),
            ],
            trial_spec={"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": job.spec_dict()},
        ),
        resume_policy=None,
    ).to_dict()


# Fields the builder writes that Katib's defaulting webhook would otherwise add.
KATIB_DEFAULTED_TEMPLATE_FIELDS = {
    "successCondition": KUBEFLOW_JOB_SUCCESS_CONDITION,
    "failureCondition": KUBEFLOW_JOB_FAILURE_CONDITION,
    "primaryPodLabels": {"training.kubeflow.org/job-role": "master"},
}


def test_builder_reproduces_the_upstream_pytorchjob_mnist_example_field_by_field() -> None:
    built, expected = _mnist_built(), _mnist_example()
    assert built["apiVersion"] == expected["apiVersion"] and built["kind"] == expected["kind"]
    assert built["metadata"] == expected["metadata"]
    bspec, espec = built["spec"], expected["spec"]
    for key in (
        "parallelTrialCount",
        "maxTrialCount",
        "maxFailedTrialCount",
        "objective",
        "algorithm",
        "parameters",
    ):
        assert bspec[key] == espec[key], key
    assert bspec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    btemplate = dict(bspec["trialTemplate"])
    assert btemplate["trialSpec"]["spec"].pop("runPolicy") == {}
    for key, default in KATIB_DEFAULTED_TEMPLATE_FIELDS.items():
        assert btemplate.pop(key) == default
    assert btemplate == espec["trialTemplate"]
    assert set(bspec) - set(espec) == {"metricsCollectorSpec"}
    validate_experiment(expected)
    validate_experiment(built)


def test_success_condition_default_strings_are_katibs() -> None:
    assert KUBEFLOW_JOB_SUCCESS_CONDITION == 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
    job_template = TrialTemplate(
        trial_spec={"apiVersion": "batch/v1", "kind": "Job", "spec": {}},
        trial_parameters=[],
        primary_container_name="c",
    ).to_dict()
    assert job_template["successCondition"] == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    assert job_template["failureCondition"] == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    assert "primaryPodLabels" not in job_template


SEARCH_SPACE = [
    Parameter.double("learning_rate", 0.0001, 0.01, distribution="logUniform"),
    Parameter.int_("latent_dim", 4, 32, step=4),
    Parameter.categorical("activation", ["relu", "tanh"]),
    Parameter.discrete("batch_size", [32, 64]),
]


def test_parameter_to_dict_all_types() -> None:
    assert [p.to_dict() for p in SEARCH_SPACE] == [
        {
            "name": "learning_rate",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.0001", "max": "0.01", "distribution": "logUniform"},
        },
        {
            "name": "latent_dim",
            "parameterType": "int",
            "feasibleSpace": {"min": "4", "max": "32", "step": "4"},
        },
        {"name": "activation", "parameterType": "categorical", "feasibleSpace": {"list": ["relu", "tanh"]}},
        {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": ["32", "64"]}},
    ]


def test_trainer_trial_template_job() -> None:
    template = trainer_trial_template(
        "kubeflow-bridge/trainer:latest",
        SEARCH_SPACE,
        args=["--data", "s3://bucket/features", "--epochs", "5"],
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:8333"},
    ).to_dict()
    assert template["primaryContainerName"] == "training-container"
    assert template["trialParameters"][0] == {
        "name": "learningRate",
        "reference": "learning_rate",
        "description": "hyperparameter learning_rate",
    }
    assert [tp["name"] for tp in template["trialParameters"]] == [
        "learningRate",
        "latentDim",
        "activation",
        "batchSize",
    ]
    spec = template["trialSpec"]
    assert spec["apiVersion"] == "batch/v1" and spec["kind"] == "Job"
    assert spec["spec"]["backoffLimit"] == 0
    pod = spec["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"] == [
        "python",
        "-m",
        "trainer",
        "train",
        "--data",
        "s3://bucket/features",
        "--epochs",
        "5",
        "--learning-rate=${trialParameters.learningRate}",
        "--latent-dim=${trialParameters.latentDim}",
        "--activation=${trialParameters.activation}",
        "--batch-size=${trialParameters.batchSize}",
    ]
    assert pod["containers"][0]["env"] == [{"name": "AWS_ENDPOINT_URL", "value": "http://127.0.0.1:8333"}]


def test_trainer_trial_template_pytorchjob_and_full_experiment() -> None:
    template = trainer_trial_template(
        "kubeflow-bridge/trainer:latest", SEARCH_SPACE, kind="PyTorchJob", workers=1
    )
    experiment = build_experiment(
        name="iss-tune-0123456789ab",
        namespace="kubeflow-user",
        objective=Objective(
            objective_metric_name="val_loss",
            additional_metric_names=["train_loss"],
            metric_strategies={"val_loss": "min", "train_loss": "latest"},
        ),
        algorithm=Algorithm(name="tpe", settings={"random_state": 10}),
        early_stopping=EarlyStopping(settings={"min_trials_required": 2, "start_step": 3}),
        parameters=SEARCH_SPACE,
        trial_template=template,
        parallel_trial_count=2,
        max_trial_count=4,
        max_failed_trial_count=1,
        metrics_format=[r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"],
        labels={"app.kubernetes.io/managed-by": "kubeflow-bridge"},
    )
    spec = experiment["spec"]
    assert spec["algorithm"] == {
        "algorithmName": "tpe",
        "algorithmSettings": [{"name": "random_state", "value": "10"}],
    }
    assert spec["earlyStopping"] == {
        "algorithmName": "medianstop",
        "algorithmSettings": [
            {"name": "min_trials_required", "value": "2"},
            {"name": "start_step", "value": "3"},
        ],
    }
    assert spec["objective"]["metricStrategies"] == [
        {"name": "val_loss", "value": "min"},
        {"name": "train_loss", "value": "latest"},
    ]
    assert spec["resumePolicy"] == "Never"
    assert spec["metricsCollectorSpec"]["source"]["filter"]["metricsFormat"][0].startswith(r"([\w|-]+)")
    trial = spec["trialTemplate"]
    assert trial["primaryContainerName"] == "pytorch"
    assert trial["primaryPodLabels"] == {"training.kubeflow.org/job-role": "master"}
    replicas = trial["trialSpec"]["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"}
    assert (
        "--latent-dim=${trialParameters.latentDim}"
        in replicas["Worker"]["template"]["spec"]["containers"][0]["command"]
    )
    assert [c["name"] for c in trial_spec_containers(trial["trialSpec"])] == ["pytorch", "pytorch"]
    assert parameter_types(experiment) == {
        "learning_rate": "double",
        "latent_dim": "int",
        "activation": "categorical",
        "batch_size": "discrete",
    }


def test_trainer_trial_template_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="'Job', 'PyTorchJob' or 'TrainJob'"):
        trainer_trial_template("img", ["a"], kind="TFJob")


def _job_experiment() -> dict[str, Any]:
    template = trainer_trial_template("kubeflow-bridge/trainer:latest", SEARCH_SPACE)
    return ExperimentSpec(
        name="tune",
        objective=Objective(objective_metric_name="val_loss", additional_metric_names=["train_loss"]),
        parameters=SEARCH_SPACE,
        trial_template=template,
        early_stopping=EarlyStopping(settings={"min_trials_required": 2}),
    ).to_dict()


def test_valid_job_experiment_passes() -> None:
    validate_experiment(_job_experiment())


def _spec(o: dict[str, Any]) -> dict[str, Any]:
    return o["spec"]


def _param(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda o: o["spec"]["parameters"][i]


def _space(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda o: o["spec"]["parameters"][i]["feasibleSpace"]


def _tt(o: dict[str, Any]) -> dict[str, Any]:
    return o["spec"]["trialTemplate"]


def _container(o: dict[str, Any]) -> dict[str, Any]:
    return o["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]


P0, P1, P2, P3 = (f"spec.parameters[{i}]" for i in range(4))
TT = "spec.trialTemplate"
MC = "spec.metricsCollectorSpec"

CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    ("name", lambda o: o["metadata"].update(name="Tune_1"), "metadata.name", "not a valid DNS-1035"),
    ("api version", lambda o: o.update(apiVersion="kubeflow.org/v1"), "apiVersion", "kubeflow.org/v1beta1"),
    ("kind", lambda o: o.update(kind="Trial"), "kind", "must be 'Experiment'"),
    ("parallel", lambda o: _spec(o).update(parallelTrialCount=0), "spec.parallelTrialCount", ">= 1"),
    ("max trials", lambda o: _spec(o).update(maxTrialCount=0), "spec.maxTrialCount", ">= 1"),
    (
        "max failed negative",
        lambda o: _spec(o).update(maxFailedTrialCount=-1),
        "spec.maxFailedTrialCount",
        ">= 0",
    ),
    (
        "max failed > max",
        lambda o: _spec(o).update(maxFailedTrialCount=7),
        "spec.maxFailedTrialCount",
        "<= spec.maxTrialCount",
    ),
    (
        "parallel > max",
        lambda o: _spec(o).update(parallelTrialCount=9),
        "spec.parallelTrialCount",
        "<= spec.maxTrialCount",
    ),
    ("count type", lambda o: _spec(o).update(maxTrialCount="6"), "spec.maxTrialCount", "must be an integer"),
    (
        "resume policy",
        lambda o: _spec(o).update(resumePolicy="Always"),
        "spec.resumePolicy",
        "Never, LongRunning, FromVolume",
    ),
    ("no objective", lambda o: _spec(o).pop("objective"), "spec.objective", "is required"),
    (
        "objective type",
        lambda o: _spec(o)["objective"].update(type="min"),
        "spec.objective.type",
        "minimize, maximize",
    ),
    (
        "objective type missing",
        lambda o: _spec(o)["objective"].pop("type"),
        "spec.objective.type",
        "is required",
    ),
    (
        "metric name",
        lambda o: _spec(o)["objective"].pop("objectiveMetricName"),
        "spec.objective.objectiveMetricName",
        "is required",
    ),
    (
        "goal type",
        lambda o: _spec(o)["objective"].update(goal="0.1"),
        "spec.objective.goal",
        "must be a number",
    ),
    (
        "additional repeats objective",
        lambda o: _spec(o)["objective"].update(additionalMetricNames=["val_loss"]),
        "spec.objective.additionalMetricNames[0]",
        "is the objective metric",
    ),
    (
        "strategy unknown metric",
        lambda o: _spec(o)["objective"].update(metricStrategies=[{"name": "acc", "value": "max"}]),
        "spec.objective.metricStrategies[0].name",
        "neither the objective nor an additional metric",
    ),
    (
        "strategy value",
        lambda o: _spec(o)["objective"].update(metricStrategies=[{"name": "val_loss", "value": "best"}]),
        "spec.objective.metricStrategies[0].value",
        "min, max, latest",
    ),
    ("no algorithm", lambda o: _spec(o).pop("algorithm"), "spec.algorithm", "is required"),
    (
        "algorithm name",
        lambda o: _spec(o)["algorithm"].update(algorithmName="genetic"),
        "spec.algorithm.algorithmName",
        "random, grid",
    ),
    (
        "algorithm empty",
        lambda o: _spec(o)["algorithm"].update(algorithmName=""),
        "spec.algorithm.algorithmName",
        "is required",
    ),
    (
        "algorithm setting value",
        lambda o: _spec(o)["algorithm"].update(algorithmSettings=[{"name": "random_state", "value": 10}]),
        "spec.algorithm.algorithmSettings[0].value",
        "must be a string",
    ),
    (
        "early stopping name",
        lambda o: _spec(o)["earlyStopping"].update(algorithmName="hyperband"),
        "spec.earlyStopping.algorithmName",
        "medianstop",
    ),
    (
        "medianstop setting value",
        lambda o: _spec(o)["earlyStopping"].update(
            algorithmSettings=[{"name": "min_trials_required", "value": "0"}]
        ),
        "spec.earlyStopping.algorithmSettings",
        "min_trials_required must be an integer >= 1",
    ),
    (
        "medianstop unknown setting",
        lambda o: _spec(o)["earlyStopping"].update(algorithmSettings=[{"name": "patience", "value": "2"}]),
        "spec.earlyStopping.algorithmSettings",
        "unknown medianstop settings ['patience']",
    ),
    ("no parameters", lambda o: _spec(o).update(parameters=[]), "spec.parameters", "is required"),
    (
        "parameters and nas",
        lambda o: _spec(o).update(nasConfig={"graphConfig": {"numLayers": 2}}),
        "spec.parameters",
        "only one of spec.parameters and spec.nasConfig",
    ),
    (
        "duplicate parameter",
        lambda o: _param(1)(o).update(name="learning_rate"),
        f"{P1}.name",
        "is duplicated",
    ),
    (
        "parameter type",
        lambda o: _param(0)(o).update(parameterType="float"),
        f"{P0}.parameterType",
        "int, double, categorical, discrete",
    ),
    ("no feasible space", lambda o: _param(0)(o).pop("feasibleSpace"), f"{P0}.feasibleSpace", "is required"),
    (
        "double min missing",
        lambda o: _space(0)(o).pop("min"),
        f"{P0}.feasibleSpace.min",
        "is required for parameterType double",
    ),
    (
        "double parse",
        lambda o: _space(0)(o).update(max="high"),
        f"{P0}.feasibleSpace.max",
        "'high' is not a valid double",
    ),
    (
        "int parse",
        lambda o: _space(1)(o).update(min="4.5"),
        f"{P1}.feasibleSpace.min",
        "'4.5' is not a valid int",
    ),
    (
        "min >= max",
        lambda o: _space(1)(o).update(min="32", max="4"),
        f"{P1}.feasibleSpace.max",
        "must be greater than min",
    ),
    (
        "step <= 0",
        lambda o: _space(1)(o).update(step="0"),
        f"{P1}.feasibleSpace.step",
        "must be a positive int",
    ),
    ("bound type", lambda o: _space(1)(o).update(min=4), f"{P1}.feasibleSpace.min", "must be a string"),
    ("list on int", lambda o: _space(1)(o).update(list=["4"]), f"{P1}.feasibleSpace.list", "use min and max"),
    (
        "distribution",
        lambda o: _space(0)(o).update(distribution="beta"),
        f"{P0}.feasibleSpace.distribution",
        "uniform, logUniform",
    ),
    (
        "log min",
        lambda o: _space(0)(o).update(min="0"),
        f"{P0}.feasibleSpace.min",
        "must be > 0 for distribution logUniform",
    ),
    (
        "categorical empty",
        lambda o: _space(2)(o).update(list=[]),
        f"{P2}.feasibleSpace.list",
        "non-empty list",
    ),
    ("categorical with min", lambda o: _space(2)(o).update(min="1"), f"{P2}.feasibleSpace.min", "use list"),
    (
        "discrete non-numeric",
        lambda o: _space(3)(o).update(list=["32", "big"]),
        f"{P3}.feasibleSpace.list[1]",
        "discrete values must be numeric",
    ),
    (
        "list item type",
        lambda o: _space(3)(o).update(list=[32, "64"]),
        f"{P3}.feasibleSpace.list[0]",
        "must be a string",
    ),
    (
        "list duplicates",
        lambda o: _space(2)(o).update(list=["relu", "relu"]),
        f"{P2}.feasibleSpace.list",
        "duplicate values",
    ),
    ("no trial template", lambda o: _spec(o).pop("trialTemplate"), TT, "is required"),
    ("no trial spec", lambda o: _tt(o).pop("trialSpec"), f"{TT}.trialSpec", "is required"),
    (
        "spec and configmap",
        lambda o: _tt(o).update(configMap={"configMapName": "x"}),
        TT,
        "only one of trialSpec and configMap",
    ),
    (
        "trial param without reference",
        lambda o: _tt(o)["trialParameters"][0].pop("reference"),
        f"{TT}.trialParameters[0]",
        "name and reference are both required",
    ),
    (
        "duplicate trial param name",
        lambda o: _tt(o)["trialParameters"][1].update(name="learningRate"),
        f"{TT}.trialParameters[1].name",
        "'learningRate' is duplicated",
    ),
    (
        "duplicate reference",
        lambda o: _tt(o)["trialParameters"][1].update(reference="learning_rate"),
        f"{TT}.trialParameters[1].reference",
        "'learning_rate' is duplicated",
    ),
    (
        "reference unknown",
        lambda o: _tt(o)["trialParameters"][0].update(reference="lr"),
        f"{TT}.trialParameters[0].reference",
        "'lr' is not a parameter in spec.parameters",
    ),
    (
        "declared but unused",
        lambda o: _tt(o)["trialParameters"].append({"name": "seed", "reference": "${trialSpec.Name}"}),
        f"{TT}.trialParameters[4].name",
        "${trialParameters.seed} is not used in trialSpec",
    ),
    (
        "used but undeclared",
        lambda o: _container(o)["command"].append("--dropout=${trialParameters.dropout}"),
        f"{TT}.trialSpec",
        "${trialParameters.dropout} is used but not declared",
    ),
    (
        "primary container missing",
        lambda o: _tt(o).update(primaryContainerName="main"),
        f"{TT}.primaryContainerName",
        "'main' is not a container of the trialSpec",
    ),
    (
        "primary container empty",
        lambda o: _tt(o).pop("primaryContainerName"),
        f"{TT}.primaryContainerName",
        "is required",
    ),
    (
        "trial spec kind",
        lambda o: _tt(o)["trialSpec"].pop("kind"),
        f"{TT}.trialSpec",
        "apiVersion and kind are required",
    ),
    (
        "custom kind conditions",
        lambda o: (_tt(o)["trialSpec"].update(kind="Workflow"), _tt(o).pop("successCondition")),
        f"{TT}.trialSpec",
        "set successCondition and failureCondition",
    ),
    (
        "braces in name",
        lambda o: _tt(o)["trialParameters"][0].update(name="lr}"),
        f"{TT}.trialParameters[0].name",
        "must not contain",
    ),
    ("no trial parameters", lambda o: _tt(o).pop("trialParameters"), f"{TT}.trialParameters", "is required"),
    (
        "config map fields",
        lambda o: (_tt(o).pop("trialSpec"), _tt(o).update(configMap={"configMapName": "templates"})),
        f"{TT}.configMap",
        "needs configMapNamespace, templatePath",
    ),
    (
        "trial spec metadata name",
        lambda o: _tt(o)["trialSpec"].update(metadata={"name": "fixed"}),
        f"{TT}.trialSpec.metadata",
        "omit name and namespace",
    ),
    (
        "job restart policy",
        lambda o: _tt(o)["trialSpec"]["spec"]["template"]["spec"].update(restartPolicy="Always"),
        f"{TT}.trialSpec.spec.template.spec.restartPolicy",
        "Never, OnFailure",
    ),
    (
        "job containers",
        lambda o: _tt(o)["trialSpec"]["spec"]["template"]["spec"].pop("containers"),
        f"{TT}.trialSpec.spec.template.spec.containers",
        "is required",
    ),
    (
        "job container env",
        lambda o: _container(o).update(env=[{"name": "A", "value": 1}]),
        f"{TT}.trialSpec.spec.template.spec.containers[0].env[0].value",
        "must be a string",
    ),
    (
        "pod labels type",
        lambda o: _tt(o).update(primaryPodLabels={"role": 1}),
        f"{TT}.primaryPodLabels[role]",
        "must be a string",
    ),
    ("retain type", lambda o: _tt(o).update(retain="yes"), f"{TT}.retain", "must be a boolean"),
    (
        "collector kind",
        lambda o: _spec(o)["metricsCollectorSpec"]["collector"].update(kind="Stdout"),
        f"{MC}.collector.kind",
        "StdOut, File",
    ),
    (
        "file collector path",
        lambda o: _spec(o)["metricsCollectorSpec"]["collector"].update(kind="File"),
        f"{MC}.source.fileSystemPath.path",
        "an absolute path is required for collector File",
    ),
    (
        "file collector kind",
        lambda o: _spec(o)["metricsCollectorSpec"].update(
            collector={"kind": "File"},
            source={"fileSystemPath": {"path": "/var/log/m.log", "kind": "Directory"}},
        ),
        f"{MC}.source.fileSystemPath.kind",
        "must be 'File' for collector File",
    ),
    (
        "file format",
        lambda o: _spec(o).update(
            metricsCollectorSpec={
                "collector": {"kind": "File"},
                "source": {"fileSystemPath": {"path": "/m.log", "kind": "File", "format": "CSV"}},
            }
        ),
        f"{MC}.source.fileSystemPath.format",
        "use one of TEXT, JSON",
    ),
    (
        "json with filter",
        lambda o: _spec(o).update(
            metricsCollectorSpec={
                "collector": {"kind": "File"},
                "source": {
                    "fileSystemPath": {"path": "/m.json", "kind": "File", "format": "JSON"},
                    "filter": {"metricsFormat": ["(a)=(b)"]},
                },
            }
        ),
        f"{MC}.source.filter",
        "must be omitted when the metrics file is JSON",
    ),
    (
        "tf event format",
        lambda o: _spec(o).update(
            metricsCollectorSpec={
                "collector": {"kind": "TensorFlowEvent"},
                "source": {"fileSystemPath": {"path": "/logs", "kind": "Directory", "format": "TEXT"}},
            }
        ),
        f"{MC}.source.fileSystemPath.format",
        "must be empty for collector TensorFlowEvent",
    ),
    (
        "prometheus port",
        lambda o: _spec(o).update(
            metricsCollectorSpec={
                "collector": {"kind": "PrometheusMetric"},
                "source": {"httpGet": {"port": 0, "path": "/metrics"}},
            }
        ),
        f"{MC}.source.httpGet.port",
        "positive port number",
    ),
    (
        "prometheus path",
        lambda o: _spec(o).update(
            metricsCollectorSpec={
                "collector": {"kind": "PrometheusMetric"},
                "source": {"httpGet": {"port": 8080, "path": "metrics"}},
            }
        ),
        f"{MC}.source.httpGet.path",
        "absolute URL path",
    ),
    (
        "custom collector path",
        lambda o: _spec(o).update(
            metricsCollectorSpec={
                "collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "i"}},
                "source": {"fileSystemPath": {"path": "rel", "kind": "File"}},
            }
        ),
        f"{MC}.source.fileSystemPath",
        "absolute path and kind File or Directory",
    ),
    (
        "custom collector",
        lambda o: _spec(o)["metricsCollectorSpec"]["collector"].update(kind="Custom"),
        f"{MC}.collector.customCollector",
        "is required",
    ),
    (
        "metrics format regex",
        lambda o: _spec(o)["metricsCollectorSpec"].update(source={"filter": {"metricsFormat": ["([a-z]+"]}}),
        f"{MC}.source.filter.metricsFormat[0]",
        "not a valid regular expression",
    ),
    (
        "metrics format groups",
        lambda o: _spec(o)["metricsCollectorSpec"].update(
            source={"filter": {"metricsFormat": ["([a-z]+)=.*"]}}
        ),
        f"{MC}.source.filter.metricsFormat[0]",
        "needs two capture groups",
    ),
]


@pytest.mark.parametrize("case,mutate,field,fragment", CASES, ids=[c[0] for c in CASES])
def test_each_rule_rejects_with_a_message(
    case: str,
    mutate: Callable[[dict[str, Any]], Any],
    field: str,
    fragment: str,
    expect_rejection: Callable[..., dict[str, str]],
) -> None:
    obj = copy.deepcopy(_job_experiment())
    mutate(obj)
    causes = expect_rejection(validate_experiment, obj)
    assert field in causes, causes
    assert fragment in causes[field]


def test_pytorchjob_trial_spec_is_checked_with_the_pytorchjob_rules(
    expect_rejection: Callable[..., dict[str, str]],
) -> None:
    obj = _mnist_example()
    obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    causes = expect_rejection(validate_experiment, obj)
    field = "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.replicas"
    assert "exactly 1 replica" in causes[field]


def test_katib_defaulted_stdout_file_path_and_file_collector_are_accepted() -> None:
    obj = _job_experiment()
    # What Katib's defaulter writes for StdOut: it tees stdout into this file.
    obj["spec"]["metricsCollectorSpec"]["source"] = {
        "fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File"}
    }
    validate_experiment(obj)
    obj["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {
            "fileSystemPath": {"path": "/katib/mnist.log", "kind": "File"},  # format defaults to TEXT
            "filter": {"metricsFormat": ["{metricName: ([\\w|-]+), metricValue: ((-?\\d+)(\\.\\d+)?)}"]},
        },
    }
    validate_experiment(obj)


def test_placeholder_replicas_in_a_pytorchjob_trial_spec_are_accepted() -> None:
    obj = _mnist_example()
    obj["spec"]["parameters"].append(
        {"name": "workers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}
    )
    obj["spec"]["trialTemplate"]["trialParameters"].append({"name": "workers", "reference": "workers"})
    replicas = obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]
    replicas["Worker"]["replicas"] = "${trialParameters.workers}"
    validate_experiment(obj)
    del replicas["Master"]["replicas"]
    with pytest.raises(ValidationError, match="set replicas: 1 on the Master"):
        validate_experiment(obj)


def test_metadata_references_and_nas_are_accepted() -> None:
    obj = _job_experiment()
    obj["spec"]["trialTemplate"]["trialParameters"].append(
        {"name": "trialName", "reference": "${trialSpec.Name}"}
    )
    obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].append(
        "--run-name=${trialParameters.trialName}"
    )
    validate_experiment(obj)


def test_build_experiment_validates() -> None:
    with pytest.raises(ValidationError, match="maxFailedTrialCount"):
        build_experiment(
            name="x",
            objective=Objective(objective_metric_name="loss"),
            parameters=[Parameter.int_("a", 1, 2)],
            trial_template=trainer_trial_template("img", ["a"]),
            max_trial_count=1,
            parallel_trial_count=1,
            max_failed_trial_count=2,
        )


def test_trainer_trial_template_trainjob_says_what_katib_does_not_default() -> None:
    from kubeflow_bridge import workflow

    template = trainer_trial_template(
        "kubeflow-bridge/trainer:latest", SEARCH_SPACE, kind="TrainJob", workers=1, env=workflow.storage_env()
    ).to_dict()
    spec = template["trialSpec"]
    assert (spec["apiVersion"], spec["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    trainer = spec["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 1)
    assert trainer["command"][:4] == ["torchrun", "-m", "trainer", "train"]
    assert "--latent-dim=${trialParameters.latentDim}" in trainer["command"]
    assert trainer["env"] == workflow.storage_env()
    # Katib defaults nothing for a TrainJob: done at Complete/Failed, metrics from node 0's container.
    assert template["successCondition"] == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    assert template["failureCondition"] == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    assert template["primaryContainerName"] == "node"
    assert template["primaryPodLabels"] == {
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    }
    experiment = build_experiment(
        name="tune",
        objective=Objective(objective_metric_name="val_loss"),
        parameters=SEARCH_SPACE,
        trial_template=trainer_trial_template(
            "kubeflow-bridge/trainer:latest", SEARCH_SPACE, kind="TrainJob"
        ),
    )
    assert experiment["spec"]["trialTemplate"]["trialSpec"]["kind"] == "TrainJob"  # and it validates
    with pytest.raises(ValueError, match="a TrainJob has no envFrom"):
        trainer_trial_template(
            "kubeflow-bridge/trainer:latest",
            SEARCH_SPACE,
            kind="TrainJob",
            env_from=workflow.storage_env_from(),
        )
