"""The local Kubeflow runtime for the operator tests (no S3), on the package's test helper."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from kubeflow_bridge.local.testing import RuntimeHandle as Runtime
from kubeflow_bridge.local.testing import local_runtime as _local_runtime

ROOT = Path(__file__).resolve().parents[3]
TRAINER_PYTHON = ROOT / ".venv-trainer" / "bin" / "python"

__all__ = ["ROOT", "TRAINER_PYTHON", "Runtime", "dag_test_file", "local_runtime"]


@contextlib.contextmanager
def local_runtime(state_dir: Path, *extra: str, timeout: float = 60) -> Iterator[Runtime]:
    with _local_runtime(state_dir, "--no-s3", *extra, timeout=timeout) as rt:
        yield rt


def dag_test_file(source: str, home: Path, env: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """Write a DAG file whose ``__main__`` runs ``dag.test()`` and prints ``RESULT {task: state}``, run it
    in a fresh Airflow home (SQLite), and return the states and the whole output."""
    (home / "dags").mkdir(parents=True)
    dag_file = home / "dags" / "dag_under_test.py"
    dag_file.write_text(source)
    run_env = {
        **os.environ,
        **(env or {}),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=run_env, check=True, capture_output=True, timeout=300)
    out = subprocess.run(
        [sys.executable, str(dag_file)], env=run_env, capture_output=True, text=True, timeout=300
    )
    log = out.stdout + out.stderr
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, log[-4000:]
    return json.loads(line[len("RESULT ") :]), log
