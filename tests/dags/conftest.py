"""Load DAG files by path (as Airflow's DAG processor does), once per test session."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
_loaded: dict[str, ModuleType] = {}


def _load(name: str) -> ModuleType:
    if name not in _loaded:
        path = DAGS_DIR / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"dagfile_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


@pytest.fixture(scope="session")
def load_dag_file():  # type: ignore[no-untyped-def]
    """``load_dag_file("anomaly_retraining")`` -> the imported DAG module."""
    return _load
