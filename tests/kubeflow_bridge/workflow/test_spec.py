"""The workflow spec's pure helpers (both the DAG and the KFP components use them)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from kubeflow_bridge import workflow


def test_run_prefix_is_path_safe() -> None:
    assert workflow.run_prefix("s3://b/runs/", "manual__2026-01-01T00:00:00+00:00") == (
        "s3://b/runs/manual__2026-01-01T00-00-00-00-00"
    )
    with pytest.raises(ValueError, match="artifact_root is empty"):
        workflow.run_prefix("", "r")
    with pytest.raises(ValueError, match="no usable characters"):
        workflow.run_prefix("s3://b", "///")


def test_ingest_args_window_and_sources() -> None:
    args = workflow.ingest_args(
        "s3://b/r", source="synthetic", rows=5000, seed=3, window_end="2026-02-01T00:00:00Z"
    )
    assert args[:3] == ["ingest", "--out", "s3://b/r/raw"]
    assert args[args.index("--rows") + 1] == "5000"
    assert args[args.index("--end") + 1] == "2026-02-01T00:00:00Z"
    assert args[-2:] == ["--summary-out", "s3://b/r/summaries/ingest.json"]
    nab = workflow.ingest_args("s3://b/r", source="nab", rows=5000, seed=0, window_end="2026-02-01")
    assert "--rows" not in nab and "--end" not in nab  # the NAB series is used whole
    mine = workflow.ingest_args(
        "s3://b/r",
        source="s3://team/telemetry/",
        rows=5000,
        seed=0,
        window_end="2026-02-01T00:00:00Z",
        time_column="ts",
        feature_columns="a,b",
        label_column="is_anomaly",
        lookback="30D",
    )
    flags = dict(zip(mine[3:-2:2], mine[4:-2:2], strict=True))
    assert flags == {
        "--source": "s3://team/telemetry/",
        "--seed": "0",
        "--time-column": "ts",
        "--feature-columns": "a,b",
        "--label-column": "is_anomaly",
        "--end": "2026-02-01T00:00:00Z",
        "--lookback": "30D",
    }
    # Unset (None from the trigger form, "" from KFP) optional columns are left to the trainer's defaults.
    bare = workflow.ingest_args("s3://b/r", source="/data/x.csv", rows=1, seed=0, feature_columns=None)
    assert "--feature-columns" not in bare and "--label-column" not in bare and "--lookback" not in bare


def test_search_space_from_params_and_bad_bounds() -> None:
    space = workflow.search_space(workflow.DEFAULTS)
    assert [p["name"] for p in space] == ["lr", "latent_dim"]
    assert space[0]["min"] == workflow.DEFAULTS["lr_min"] and space[1]["type"] == "int"
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        workflow.search_space({**workflow.DEFAULTS, "lr_min": 0.1, "lr_max": 0.01})
    with pytest.raises(ValueError, match="latent_dim_min < latent_dim_max"):
        workflow.search_space({**workflow.DEFAULTS, "latent_dim_min": 8, "latent_dim_max": 8})


def test_trial_and_train_args() -> None:
    trial = workflow.trial_args("s3://b/r", epochs=2, seed=0)
    assert "s3://b/r/trials/${trialSpec.Name}/model.pt" in trial
    train = workflow.train_args("s3://b/r", epochs=4, seed=1, best_params={"lr": 0.002, "latent_dim": 8})
    assert train[0] == "train"
    assert "--latent-dim=8" in train and "--lr=0.002" in train
    assert train[train.index("--model-out") + 1] == "s3://b/r/model/model.pt"
    with pytest.raises(ValueError, match="finite"):
        workflow.hyperparameter_flags({"lr": float("nan")})


def test_trainer_cli_accepts_the_generated_arguments() -> None:
    # The arguments we build must parse with the trainer's own CLI (the contract between the two).
    from trainer.__main__ import build_parser

    parser = build_parser()
    prefix = "s3://b/r"
    for args in (
        workflow.ingest_args(prefix, source="synthetic", rows=100, seed=0, window_end="2026-01-01T00:00:00Z"),
        workflow.ingest_args(
            prefix,
            source="s3://t/d",
            rows=0,
            seed=0,
            window_end="2026-01-01",
            label_column="y",
            lookback="7D",
        ),
        workflow.preprocess_args(prefix, workers=1),
        workflow.train_args(prefix, epochs=1, seed=0, best_params={"lr": 0.001, "latent_dim": 4}),
        workflow.evaluate_args(prefix, contamination=0.02, seed=3),
    ):
        parsed = parser.parse_args(args)
        assert parsed.step == args[0]
        assert parsed.summary_out == f"{prefix}/summaries/{args[0]}.json"
    parsed = parser.parse_args(["train", *workflow.trial_args(prefix, epochs=2, seed=0), "--lr=0.01"])
    assert parsed.epochs == 2 and parsed.lr == 0.01


def test_parse_trainer_summary() -> None:
    out = (
        'epoch=1 val_loss=0.5\nTRAINER_SUMMARY {"step": "x", "compute_seconds": 1}\nTRAINER_SUMMARY '
        + json.dumps({"step": "train", "compute_seconds": 2.5})
    )
    assert workflow.parse_trainer_summary(out)["compute_seconds"] == 2.5
    with pytest.raises(ValueError, match="did not finish"):
        workflow.parse_trainer_summary("epoch=1 val_loss=0.5\n")


def test_trial_span_seconds() -> None:
    trials = [
        {"status": {"startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:30Z"}},
        {"status": {"startTime": "2026-01-01T00:00:05Z", "completionTime": "2026-01-01T00:00:50Z"}},
        {"status": {"startTime": "2026-01-01T00:00:10Z"}},  # still running: ignored
    ]
    assert workflow.trial_span_seconds(trials) == 50.0
    assert workflow.trial_span_seconds([]) is None


def test_smoke_payload_matches_the_trainers_channels() -> None:
    from trainer.ingest import CHANNELS

    payload = workflow.smoke_payload("synthetic", rows=3)
    assert len(payload["instances"]) == 3
    assert len(payload["instances"][0]) == len(CHANNELS)
    assert workflow.smoke_payload("nab")["instances"][0] == [0.0]
    # A team's dataset: the width is the model's channel count (evaluate reports it).
    assert workflow.smoke_payload("s3://t/d", rows=2, channels=4)["instances"] == [[0.0] * 4] * 2
    with pytest.raises(ValueError, match="needs the model's channel count"):
        workflow.smoke_payload("s3://t/d")


def test_check_params_cross_field() -> None:
    workflow.check_params(workflow.DEFAULTS)
    with pytest.raises(ValueError, match="exceeds max_trials"):
        workflow.check_params({**workflow.DEFAULTS, "parallel_trials": 9, "max_trials": 2})
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        workflow.check_params({**workflow.DEFAULTS, "lr_min": 0.5})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": "csv"}, "neither synthetic, nab nor a dataset URI"),
        ({"source": "synthetic", "label_column": "y"}, "label_column apply to your own dataset"),
        ({"source": "s3://t/d", "lookback": "a month"}, "lookback 'a month' is not a duration"),
        ({"no_labels_policy": "sometimes"}, "no_labels_policy 'sometimes' is unknown"),
    ],
)
def test_check_params_dataset_fields(change: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        workflow.check_params({**workflow.DEFAULTS, **change})


def test_dataset_params_pass_the_form_schema() -> None:
    good = {"source": "s3://team/telemetry/", "lookback": "30D", "feature_columns": "a, b,c"}
    for name, value in good.items():
        jsonschema.validate(value, workflow.PARAM_SCHEMAS[name])
    # An empty optional field is null from the trigger form and "" from a KFP run's inputs: both pass.
    for name in ("lookback", "feature_columns", "label_column"):
        jsonschema.validate("", workflow.PARAM_SCHEMAS[name])
    assert workflow.pipeline_inputs(workflow.FORM_DEFAULTS)["lookback"] == ""
    workflow.check_params({**workflow.DEFAULTS, **good, "label_column": "y"})
    for name, value in {"source": "ftp://x/y", "lookback": "30 parsecs", "feature_columns": "a,,b"}.items():
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, workflow.PARAM_SCHEMAS[name])


def test_form_schemas_keep_the_rules_but_not_the_clamping_bounds() -> None:
    rows = workflow.form_schema("rows")
    assert "minimum" not in rows and "maximum" not in rows  # the form's number field would clamp to these
    jsonschema.validate(1000, rows)
    for bad in (5, 10**9):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, rows)
    assert workflow.form_schema("namespace") == workflow.PARAM_SCHEMAS["namespace"]  # no bounds: unchanged
