"""Structure, trigger rules, params schema and templates of the scheduled retraining DAG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pendulum
import pytest
from airflow.sdk import CronTriggerTimetable, TriggerRule
from airflow.sdk.exceptions import ParamValidationError

from kubeflow_bridge import workflow


@pytest.fixture(scope="module")
def mod(load_dag_file: Any) -> Any:
    return load_dag_file("anomaly_retraining")


def test_tasks_and_dependencies(mod: Any) -> None:
    dag = mod.dag
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        "ingest": [],
        "preprocess": ["ingest"],
        "tune": ["preprocess"],
        "train": ["tune"],
        "evaluate": ["train"],
        "gate": ["evaluate"],
        "deploy": ["gate"],
        "champion": ["deploy"],
        "summary": ["champion", "deploy", "evaluate", "ingest", "preprocess", "train", "tune"],
        "check_run": ["champion", "deploy", "evaluate", "ingest", "preprocess", "train", "tune"],
    }


def test_operators_and_trigger_rules(mod: Any) -> None:
    dag = mod.dag
    kinds = {t.task_id: type(t).__name__ for t in dag.tasks}
    assert kinds["ingest"] == kinds["preprocess"] == kinds["evaluate"] == "TrainerPodOperator"
    from kubeflow_bridge.operators.katib import KatibExperimentOperator

    assert isinstance(dag.get_task("tune"), KatibExperimentOperator)
    assert kinds["train"] == "TrainingJobOperator"
    assert kinds["gate"] == "ModelGateBranchOperator"
    assert kinds["deploy"] == "KServeDeployOperator"
    rules = {t.task_id: t.trigger_rule for t in dag.tasks}
    assert rules["summary"] == TriggerRule.ALL_DONE
    assert rules["check_run"] == TriggerRule.ONE_FAILED
    assert all(rules[s] == TriggerRule.ALL_SUCCESS for s in workflow.STEPS)
    # The gate branches to deploy only; it must not be a direct parent of summary/check_run, or a
    # "skip" decision would skip them too.
    assert dag.get_task("gate").downstream_task_ids == {"deploy"}
    assert dag.get_task("gate").deploy_task_ids == "deploy"


def test_schedule_and_data_interval(mod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    dag = mod.dag
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.catchup is False and dag.start_date is None
    assert dag.max_active_runs == 1
    # What the scheduler computes from it (the core timetable the DAG serializes to): a run at 03:00 covers
    # the day before it (its end is the training window's end); unpausing the DAG starts nothing before
    # the next 03:00, at any time of day (just after 03:00 included); a manual run covers the day before it.
    import airflow.timetables.trigger as core_trigger
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction

    core = decode_timetable(encode_timetable(dag.timetable))
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup)
    for now in ("2026-03-05T03:00:01", "2026-03-05T04:30:00", "2026-03-05T12:00:00", "2026-03-05T02:59:00"):
        unpaused_at = pendulum.parse(now, tz="UTC")
        monkeypatch.setattr(core_trigger, "utcnow", lambda at=unpaused_at: at)
        first = core.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
        assert first is not None and first.run_after > unpaused_at, now
        assert first.run_after.hour == 3 and first.run_after - unpaused_at <= timedelta(days=1), now
        assert first.data_interval.end - first.data_interval.start == timedelta(days=1)
    triggered_at = pendulum.datetime(2026, 3, 5, 12, tz="UTC")
    manual = core.infer_manual_data_interval(run_after=triggered_at)
    assert (manual.start, manual.end) == (pendulum.datetime(2026, 3, 4, 12, tz="UTC"), triggered_at)


def test_params_defaults_validate(mod: Any) -> None:
    resolved = mod.dag.params.validate()
    empty_is_null = ("window_end", "feature_columns", "label_column", "lookback", "tracking_uri")
    assert resolved == workflow.FORM_DEFAULTS == {**workflow.DEFAULTS, **dict.fromkeys(empty_is_null)}


def test_every_param_has_a_title_a_description_and_a_section(mod: Any) -> None:
    sections = set()
    for name in workflow.DEFAULTS:
        schema = mod.dag.params.get_param(name).schema
        param = mod.dag.params.get_param(name)
        assert schema["title"] and len(param.description or "") > 20, name
        sections.add(schema["section"])
    assert sections == {"Data", "Tuning", "Training", "Gate", "Deploy", "Tracking"}
    window_end = mod.dag.params.get_param("window_end")
    assert window_end.schema["format"] == "date-time"
    assert window_end.resolve(value="2026-11-01T00:00:00+00:00") == "2026-11-01T00:00:00+00:00"
    # The schema's format is the form's picker; the workflow's own check refuses text that is no date-time.
    with pytest.raises(ValueError, match="window_end 'yesterday' is not an ISO 8601 date-time"):
        mod.MACROS["ingest_args"]({**workflow.FORM_DEFAULTS, "window_end": "yesterday"}, "manual__1", None)
    mod.MACROS["ingest_args"]({**workflow.FORM_DEFAULTS, "window_end": "2026-11-01T00:00:00.000Z"}, "m", None)


def test_an_unknown_conf_key_fails_the_first_task_before_anything_is_created(mod: Any) -> None:
    params = {**workflow.FORM_DEFAULTS, "rowz": 5000}
    with pytest.raises(ValueError, match=r"unknown param\(s\) 'rowz' \(did you mean 'rows'\?\)"):
        mod.MACROS["ingest_args"](params, "manual__1", None)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("source", "csv"),
        ("rows", 10),
        ("rows", "many"),
        ("max_trials", 0),
        ("parallel_trials", 17),
        ("lr_min", 0),
        ("lr_max", 2.0),
        ("epochs", 0),
        ("worker_replicas", -1),
        ("training_api", "tfjob"),
        ("gpus_per_replica", 9),
        ("f_score_threshold", 1.5),
        ("canary_percent", 101),
        ("namespace", "Bad_Namespace"),
        ("artifact_root", "ftp://x"),
        ("service_name", "9-starts-with-digit"),
    ],
)
def test_params_schema_rejects(mod: Any, name: str, bad: Any) -> None:
    param = mod.dag.params.get_param(name)
    with pytest.raises(ParamValidationError):
        param.resolve(value=bad)


def test_params_schema_accepts_changed_values(mod: Any) -> None:
    params = mod.dag.params
    assert params.get_param("source").resolve(value="nab") == "nab"
    assert params.get_param("canary_percent").resolve(value=0) == 0
    assert params.get_param("artifact_root").resolve(value="file:///tmp/runs") == "file:///tmp/runs"


def test_ingest_arguments_use_the_data_interval(mod: Any) -> None:
    params = dict(workflow.DEFAULTS)
    end = pendulum.datetime(2026, 3, 5, 3, tz="UTC")
    args = mod.MACROS["ingest_args"](params, "scheduled__2026-03-05T03:00:00+00:00", end)
    assert args[args.index("--end") + 1] == "2026-03-05T03:00:00+00:00"
    assert (
        args[args.index("--out") + 1] == "s3://kubeflow-bridge/runs/scheduled__2026-03-05T03-00-00-00-00/raw"
    )
    # An explicit window_end wins over the interval.
    args = mod.MACROS["ingest_args"]({**params, "window_end": "2026-01-01T00:00:00Z"}, "r", end)
    assert args[args.index("--end") + 1] == "2026-01-01T00:00:00Z"


def test_ingest_arguments_refuse_conflicting_params_before_anything_runs(mod: Any) -> None:
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        mod.MACROS["ingest_args"]({**workflow.DEFAULTS, "lr_min": 0.5, "lr_max": 0.1}, "r", None)
    with pytest.raises(ValueError, match="exceeds max_trials"):
        mod.MACROS["ingest_args"]({**workflow.DEFAULTS, "parallel_trials": 5, "max_trials": 2}, "r", None)


def test_templates_render_to_native_values(mod: Any) -> None:
    dag = mod.dag
    assert dag.render_template_as_native_obj is True
    env = dag.get_template_env()
    context = {"params": dict(workflow.DEFAULTS), "run_id": "manual__1", **mod.MACROS}
    train = dag.get_task("train")
    best = {"lr": 0.002, "latent_dim": 7}

    evaluated: dict[str, Any] = {
        "f_score": 0.61,
        "metrics": {"baseline_composite_f1": 0.42, "evaluable": True, "channels": 10},
    }

    class _TI:
        def xcom_pull(self, task_ids: str) -> dict[str, Any]:
            return {"tune": {"best_parameters": best}, "evaluate": evaluated}[task_ids]

    context["ti"] = _TI()
    # training_api picks the job: a TrainJob of 1 + worker_replicas torchrun nodes, or a PyTorchJob.
    job = env.from_string(train.job).render(**context)
    trainer = job["spec"]["trainer"]
    assert job["kind"] == "TrainJob" and trainer["command"] == ["torchrun", "-m", "trainer"]
    assert trainer["args"][0] == "train" and "--latent-dim=7" in trainer["args"]
    assert trainer["numNodes"] == 1 + workflow.DEFAULTS["worker_replicas"] and trainer["numProcPerNode"] == 1
    v1 = env.from_string(train.job).render(
        **{**context, "params": {**context["params"], "training_api": "pytorchjob"}}
    )
    assert v1["kind"] == "PyTorchJob"
    assert v1["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == workflow.DEFAULTS["worker_replicas"]
    master = v1["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert master["args"] == trainer["args"]
    tune = dag.get_task("tune")
    assert "algorithm_settings" in tune.template_fields
    assert env.from_string(tune.algorithm_settings["random_state"]).render(**context) == 0
    space = env.from_string(tune.search_space).render(**context)
    assert [p["name"] for p in space] == ["lr", "latent_dim"]
    deploy = dag.get_task("deploy")
    payload = env.from_string(deploy.smoke_payload).render(**context)
    assert len(payload["instances"][0]) == workflow.CHANNELS_PER_SOURCE["synthetic"]
    assert env.from_string(deploy.metrics["composite_f1"]).render(**context) == 0.61
    gate = dag.get_task("gate")
    assert env.from_string(gate.baseline_value).render(**context) == 0.42
    assert env.from_string(gate.evaluable).render(**context) is True
    assert env.from_string(gate.no_labels_policy).render(**context) == "if_nothing_serves"
    # A team's dataset: the smoke request is as wide as the model's channels; no labels, no score.
    evaluated.update(f_score=None, metrics={"evaluable": False, "channels": 3})
    context["params"] = {**context["params"], "source": "s3://team/telemetry/"}
    assert env.from_string(deploy.smoke_payload).render(**context)["instances"][0] == [0.0, 0.0, 0.0]
    assert env.from_string(deploy.metrics["composite_f1"]).render(**context) is None
    assert env.from_string(gate.baseline_value).render(**context) is None
    assert env.from_string(gate.evaluable).render(**context) is False


def test_window_end_without_interval(mod: Any) -> None:
    assert mod._window_end({"window_end": ""}, None) == ""
    assert (
        mod._window_end({"window_end": ""}, datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00+00:00"
    )


def test_tracking_env_renders_into_trials_train_and_evaluate(
    mod: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    dag = mod.dag
    env = dag.get_template_env()
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    params = {**workflow.DEFAULTS, "tracking_uri": "http://mlflow.example:5000", "registered_model": "det"}
    context: dict[str, Any] = {
        "params": params,
        "run_id": "manual__7",
        "data_interval_end": None,
        **mod.MACROS,
    }

    class _TI:
        def xcom_pull(self, task_ids: str) -> dict[str, Any]:
            return {"tune": {"best_parameters": {"lr": 0.002, "latent_dim": 7}}}[task_ids]

    context["ti"] = _TI()

    def values(rendered: list[dict[str, Any]]) -> dict[str, Any]:
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in rendered}

    evaluate = values(env.from_string(dag.get_task("evaluate").env_vars).render(**context))
    assert evaluate["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    settings = json.loads(evaluate["KUBEFLOW_BRIDGE_TRACKING"])
    assert settings["registered_model"] == "det" and settings["required"] is False
    assert settings["tags"]["kubeflow_bridge.orchestrator"] == "airflow"
    assert settings["tags"]["kubeflow_bridge.run_id"] == "manual__7"
    assert evaluate["MLFLOW_TRACKING_TOKEN"]["secretKeyRef"]["name"] == "kubeflow-bridge-mlflow"
    trial = values(env.from_string(dag.get_task("tune").trial_env).render(**context))
    assert json.loads(trial["KUBEFLOW_BRIDGE_TRACKING"])["trial"] == "${trialSpec.Name}"
    job = env.from_string(dag.get_task("train").job).render(**context)
    assert values(job["spec"]["trainer"]["env"])["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    # No URI and no mlflow_default connection: no tracking env at all.
    context["params"] = {**params, "tracking_uri": ""}
    assert env.from_string(dag.get_task("evaluate").env_vars).render(**context) == []
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": "http://conn:1"})
    )
    rendered = values(env.from_string(dag.get_task("evaluate").env_vars).render(**context))
    assert rendered["MLFLOW_TRACKING_URI"] == "http://conn:1"
    # A registered model name MLflow refuses fails the render, before anything is created.
    context["params"] = {**params, "registered_model": "a/b"}
    with pytest.raises(ValueError, match="registered_model 'a/b' is not allowed"):
        env.from_string(dag.get_task("evaluate").env_vars).render(**context)
