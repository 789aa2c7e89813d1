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


REPO = Path(__file__).resolve().parents[2]
TRAINER_BIN = REPO / ".venv-trainer" / "bin"


class LocalRuntime:
    """A local Kubeflow runtime started with the public CLI in a temp state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env: dict[str, str] = {}

    def up(self) -> None:
        import subprocess

        subprocess.run(
            [str(TRAINER_BIN / "kubeflow-bridge"), "local", "up", "--state-dir", str(self.state_dir)],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        for line in (self.state_dir / "env").read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                import shlex

                key, _, value = line[len("export ") :].partition("=")
                self.env[key] = shlex.split(value)[0] if value else ""

    def down(self) -> None:
        import subprocess

        subprocess.run(
            [str(TRAINER_BIN / "kubeflow-bridge"), "local", "down", "--state-dir", str(self.state_dir)],
            check=False, capture_output=True, timeout=120,
        )  # fmt: skip

    def kubectl_json(self, *args: str) -> dict:  # type: ignore[type-arg]
        import json
        import subprocess

        out = subprocess.run(
            ["kubectl", "--kubeconfig", self.env["KUBECONFIG"], *args, "-o", "json"],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def local_runtime(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``kubeflow-bridge local up`` for this module; ``local down`` afterwards, whatever happens."""
    runtime = LocalRuntime(tmp_path_factory.mktemp("runtime"))
    try:
        runtime.up()
        yield runtime
    finally:
        runtime.down()
