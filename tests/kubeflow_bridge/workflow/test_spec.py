"""The workflow spec's pure helpers (both the DAG and the KFP components use them)."""

from __future__ import annotations

import json

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
    with pytest.raises(ValueError, match="'synthetic' or 'nab'"):
        workflow.ingest_args("s3://b/r", source="csv", rows=1, seed=0)


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
        workflow.preprocess_args(prefix, workers=1),
        workflow.train_args(prefix, epochs=1, seed=0, best_params={"lr": 0.001, "latent_dim": 4}),
        workflow.evaluate_args(prefix),
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
    with pytest.raises(ValueError, match="source must be one of"):
        workflow.smoke_payload("csv")


def test_check_params_cross_field() -> None:
    workflow.check_params(workflow.DEFAULTS)
    with pytest.raises(ValueError, match="exceeds max_trials"):
        workflow.check_params({**workflow.DEFAULTS, "parallel_trials": 9, "max_trials": 2})
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        workflow.check_params({**workflow.DEFAULTS, "lr_min": 0.5})
