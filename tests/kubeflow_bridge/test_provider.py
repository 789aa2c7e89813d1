from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kubeflow_bridge.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]


#: The CLI opens its database even to list providers: keep that file out of the checkout (an empty one
#: there would make `make demo` think Airflow's database exists).
_DB = Path(tempfile.mkdtemp(prefix="kb-provider-test-")) / "airflow.db"


def airflow_cli(*args: str) -> str:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(ROOT),
        "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_DB}",
    }
    out = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_provider_info_matches_airflows_schema() -> None:
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_every_registered_class_and_module_imports() -> None:
    info = get_provider_info()
    for path in [*info["extra-links"], *(c["hook-class-name"] for c in info["connection-types"])]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path
    for section in ("operators", "sensors", "hooks", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)


def test_password_like_fields_are_masked_in_the_form() -> None:
    conn, mlflow = get_provider_info()["connection-types"]
    assert conn["connection-type"] == "kubeflow" and mlflow["connection-type"] == "mlflow"
    assert "password" not in conn["ui-field-behaviour"]["hidden-fields"]  # the built-in masked Password field
    assert set(conn["conn-fields"]) >= {
        "dashboard_url",
        "namespace",
        "auth_mode",
        "kubernetes_conn_id",
        "verify_tls",
    }


@pytest.mark.e2e
def test_airflow_cli_lists_provider_hook_and_links() -> None:
    assert "kubeflow-bridge" in airflow_cli("providers", "list")
    hooks = airflow_cli("providers", "hooks")
    assert "kubeflow_bridge.hooks.kubeflow.KubeflowHook" in hooks
    assert "kubeflow_bridge.hooks.mlflow.MlflowHook" in hooks
    links = airflow_cli("providers", "links")
    for name in (
        "KubeflowPipelineRunLink",
        "KatibExperimentLink",
        "PyTorchJobLink",
        "TrainJobLink",
        "InferenceServiceLink",
    ):
        assert name in links


def test_the_trigger_fire_delay_setting_is_declared_with_its_default() -> None:
    from kubeflow_bridge.triggers.kubeflow import FIRE_DELAY_SECONDS

    option = get_provider_info()["config"]["kubeflow_bridge"]["options"]["trigger_fire_delay"]
    assert float(option["default"]) == FIRE_DELAY_SECONDS and option["type"] == "float"
    # Airflow loads the provider's defaults: the setting is known without a line in airflow.cfg.
    assert (
        float(airflow_cli("config", "get-value", "kubeflow_bridge", "trigger_fire_delay"))
        == FIRE_DELAY_SECONDS
    )
