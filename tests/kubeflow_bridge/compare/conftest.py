"""Helpers for building synthetic step records with hand-checkable times, and a real Airflow DB with
one probe DAG run for the collectors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubeflow_bridge.compare.model import StepRecord

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def _rec(
    step: str,
    start: float | None,
    end: float | None,
    compute: float | None,
    *,
    state: str = "succeeded",
    upstream: tuple[str, ...] | None = None,
    error: str | None = None,
) -> StepRecord:
    """A step record whose times are seconds after T0."""
    return StepRecord(
        step=step,
        start=None if start is None else _at(start),
        end=None if end is None else _at(end),
        state=state,
        compute_seconds=compute,
        error=error,
        upstream=upstream,
    )


@pytest.fixture
def at() -> Callable[[float], datetime]:
    """T0 plus seconds."""
    return _at


@pytest.fixture
def rec() -> Callable[..., StepRecord]:
    """Factory of step records with times in seconds after T0."""
    return _rec


@pytest.fixture
def linear_steps() -> list[StepRecord]:
    """ingest -> preprocess -> tune -> train -> evaluate; compute 6+15+40+14+5 = 80 over 110 s of wall."""
    return [
        _rec("ingest", 0, 10, 6, upstream=()),
        _rec("preprocess", 12, 30, 15, upstream=("ingest",)),
        _rec("tune", 31, 80, 40, upstream=("preprocess",)),
        _rec("train", 82, 100, 14, upstream=("tune",)),
        _rec("evaluate", 101, 110, 5, upstream=("train",)),
    ]


_DAG = """
from __future__ import annotations

import time

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def collector_probe():
    @task
    def ingest():
        time.sleep(0.2)
        return {"uri": "file:///tmp/raw", "compute_seconds": 0.2}

    @task
    def tune(_raw):
        return {"best_params": {"lr": 0.01, "latent_dim": 8}, "compute_seconds": 0.1}

    @task
    def evaluate(_params):
        raise RuntimeError("evaluate: test split is empty")

    @task(trigger_rule="all_done")
    def summary(_ev):
        return {"f_score": None, "deployed": False}

    summary(evaluate(tune(ingest())))


collector_probe()
"""


_AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="package")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh AIRFLOW_HOME with a migrated SQLite DB and the probe DAG (one migration per test run)."""
    home = tmp_path_factory.mktemp("airflow")
    (home / "dags").mkdir()
    (home / "dags" / "probe.py").write_text(_DAG)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    subprocess.run([_AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


@pytest.fixture(scope="package")
def probe_run(airflow_env: dict[str, str]) -> dict[str, str]:
    """``airflow_env`` after one ``airflow dags test collector_probe`` (evaluate fails on purpose)."""
    test = subprocess.run(
        [_AIRFLOW, "dags", "test", "collector_probe"],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "evaluate: test split is empty" in test.stdout + test.stderr
    return airflow_env
