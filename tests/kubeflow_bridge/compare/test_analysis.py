"""Critical path, overhead and outcome equality on hand-computed synthetic runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from kubeflow_bridge.compare.analysis import (
    build_comparison,
    compare_outcomes,
    critical_path,
    step_overhead,
    summarize_run,
    wall_seconds,
)
from kubeflow_bridge.compare.model import OrchestratorRun, Outcome, StepRecord


def test_linear_chain_critical_path_is_the_sum_of_compute(linear_steps: list[StepRecord]) -> None:
    path = critical_path(linear_steps)
    assert path.seconds == pytest.approx(80.0)
    assert path.steps == ["ingest", "preprocess", "tune", "train", "evaluate"]
    assert path.inferred is False


def test_linear_chain_overhead_is_wall_minus_compute(linear_steps: list[StepRecord]) -> None:
    run = OrchestratorRun("airflow", "r1", linear_steps)
    summary = summarize_run(run)
    assert summary["wall_seconds"] == pytest.approx(110.0)
    assert summary["overhead_seconds"] == pytest.approx(30.0)
    assert summary["overhead_ratio"] == pytest.approx(30.0 / 110.0)
    by_step = {s["step"]: s for s in summary["steps"]}
    # preprocess ran 18 s with 15 s of compute: 3 s of orchestration inside the step.
    assert by_step["preprocess"]["overhead_seconds"] == pytest.approx(3.0)
    assert by_step["tune"]["offset_seconds"] == pytest.approx(31.0)


def test_run_times_win_over_step_extremes(
    linear_steps: list[StepRecord], at: Callable[[float], datetime]
) -> None:
    # The DAG run started 5 s before its first task and ended 2 s after its last one.
    run = OrchestratorRun("airflow", "r1", linear_steps, start=at(-5), end=at(112))
    assert wall_seconds(run) == pytest.approx(117.0)
    assert summarize_run(run)["overhead_seconds"] == pytest.approx(37.0)


def test_diamond_takes_the_heavier_branch(rec: Callable[..., StepRecord]) -> None:
    steps = [
        rec("a", 0, 6, 5, upstream=()),
        rec("b", 6, 18, 10, upstream=("a",)),
        rec("c", 6, 30, 20, upstream=("a",)),
        rec("d", 30, 40, 1, upstream=("b", "c")),
    ]
    path = critical_path(steps)
    assert path.steps == ["a", "c", "d"]
    assert path.seconds == pytest.approx(26.0)
    assert summarize_run(OrchestratorRun("kfp", "x", steps))["overhead_seconds"] == pytest.approx(14.0)


def test_dependencies_inferred_from_times_when_unknown(rec: Callable[..., StepRecord]) -> None:
    # b and c overlap, so neither depends on the other; d started after both ended.
    steps = [
        rec("a", 0, 5, 4),
        rec("b", 5, 15, 9),
        rec("c", 6, 30, 22),
        rec("d", 30, 31, 1),
    ]
    path = critical_path(steps)
    assert path.inferred is True
    assert path.steps == ["a", "c", "d"]
    assert path.seconds == pytest.approx(27.0)


def test_parallel_branches_are_not_summed(rec: Callable[..., StepRecord]) -> None:
    steps = [rec("x", 0, 10, 10, upstream=()), rec("y", 0, 8, 8, upstream=())]
    assert critical_path(steps).seconds == pytest.approx(10.0)


def test_unknown_compute_weighs_zero_and_is_listed(
    linear_steps: list[StepRecord], rec: Callable[..., StepRecord]
) -> None:
    steps = [*linear_steps[:2], rec("tune", 31, 80, None, upstream=("preprocess",)), *linear_steps[3:]]
    summary = summarize_run(OrchestratorRun("airflow", "r", steps))
    assert summary["critical_path"]["seconds"] == pytest.approx(40.0)
    assert summary["compute_unknown"] == ["tune"]
    assert summary["overhead_seconds"] == pytest.approx(70.0)
    tune = next(s for s in summary["steps"] if s["step"] == "tune")
    assert tune["overhead_seconds"] is None


def test_cycle_in_declared_dependencies_is_an_error(rec: Callable[..., StepRecord]) -> None:
    steps = [rec("a", 0, 1, 1, upstream=("b",)), rec("b", 1, 2, 1, upstream=("a",))]
    with pytest.raises(ValueError, match="cycle"):
        critical_path(steps)


def test_failed_step_is_reported_and_the_rest_kept(
    linear_steps: list[StepRecord], rec: Callable[..., StepRecord]
) -> None:
    steps = [
        *linear_steps[:3],
        rec("train", 82, 90, None, state="failed", upstream=("tune",), error="replica worker-1 exited 137"),
        rec("evaluate", None, None, None, state="upstream_failed", upstream=("train",)),
    ]
    summary = summarize_run(OrchestratorRun("airflow", "r", steps, state="failed"))
    assert summary["failed_steps"] == [
        {"step": "train", "state": "failed", "error": "replica worker-1 exited 137"},
        {"step": "evaluate", "state": "upstream_failed", "error": None},
    ]
    assert [s["step"] for s in summary["steps"]] == ["ingest", "preprocess", "tune", "train", "evaluate"]
    assert summary["critical_path"]["seconds"] == pytest.approx(61.0)
    assert summary["wall_seconds"] == pytest.approx(90.0)
    # A step that never ran has no compute to be unknown about.
    assert summary["compute_unknown"] == ["train"]


def test_outcomes_equal_within_tolerance() -> None:
    a = Outcome(best_params={"lr": 0.001, "latent_dim": 8}, f_score=0.8123456, deployed=True)
    b = Outcome(best_params={"lr": 0.0010000000001, "latent_dim": 8.0}, f_score=0.8123456001, deployed=True)
    result = compare_outcomes({"airflow": a, "kfp": b})
    assert result["equal"] is True
    assert all(f["equal"] for f in result["fields"].values())


def test_outcomes_differ_field_by_field() -> None:
    a = Outcome(best_params={"lr": 0.001, "latent_dim": 8}, f_score=0.81, deployed=True)
    b = Outcome(best_params={"lr": 0.002, "latent_dim": 8}, f_score=0.81, deployed=False)
    result = compare_outcomes({"airflow": a, "kfp": b})
    assert result["equal"] is False
    assert result["fields"]["best_params"]["equal"] is False
    assert result["fields"]["f_score"]["equal"] is True
    assert result["fields"]["deployed"]["equal"] is False
    assert result["fields"]["deployed"]["values"] == {"airflow": True, "kfp": False}


def test_missing_outcome_names_the_side() -> None:
    a = Outcome(best_params={"lr": 0.1}, f_score=None, deployed=False)
    b = Outcome(best_params={"lr": 0.1}, f_score=0.5, deployed=False)
    result = compare_outcomes({"airflow": a, "kfp": b})
    assert result["equal"] is False
    assert result["fields"]["f_score"]["note"] == "missing on airflow"
    assert result["fields"]["best_params"]["equal"] is True


def test_extra_param_key_is_a_difference() -> None:
    a = Outcome(best_params={"lr": 0.1}, f_score=0.5, deployed=True)
    b = Outcome(best_params={"lr": 0.1, "beta": 1.0}, f_score=0.5, deployed=True)
    assert compare_outcomes({"a": a, "b": b})["fields"]["best_params"]["equal"] is False


def test_build_comparison_orders_steps_and_checks_labels(
    linear_steps: list[StepRecord], rec: Callable[..., StepRecord]
) -> None:
    airflow = OrchestratorRun("airflow", "r1", [*linear_steps, rec("summary", 111, 112, None, upstream=())])
    kfp = OrchestratorRun("kfp", "k1", linear_steps)
    doc = build_comparison([airflow, kfp])
    assert doc["steps"] == ["ingest", "preprocess", "tune", "train", "evaluate", "summary"]
    assert doc["wall_seconds"] == {"airflow": pytest.approx(112.0), "kfp": pytest.approx(110.0)}
    with pytest.raises(ValueError, match="once"):
        build_comparison([kfp, kfp])
    with pytest.raises(ValueError, match="at least one"):
        build_comparison([])


def test_step_overhead_none_without_times(rec: Callable[..., StepRecord]) -> None:
    assert step_overhead(rec("a", None, None, 3)) is None
    assert step_overhead(rec("a", 0, 5, 3)) == pytest.approx(2.0)


def test_skipped_steps_stay_off_the_critical_path(
    linear_steps: list[StepRecord], rec: Callable[..., StepRecord]
) -> None:
    # Airflow gives a skipped task a start and an end; it still did no work.
    steps = [*linear_steps, rec("deploy", 110, 110, None, state="skipped", upstream=("evaluate",))]
    path = critical_path(steps)
    assert path.steps == ["ingest", "preprocess", "tune", "train", "evaluate"]
    assert summarize_run(OrchestratorRun("airflow", "r", steps))["compute_unknown"] == []


def test_a_single_run_has_nothing_to_compare_with() -> None:
    result = compare_outcomes({"kfp": Outcome(best_params={"lr": 0.1}, f_score=0.5, deployed=True)})
    assert result["equal"] is None
    assert result["fields"]["f_score"] == {"equal": None, "values": {"kfp": 0.5}, "note": "one run only"}
