"""The Airflow UI's trigger form of ``anomaly_retraining``, driven in headless Chromium.

A session fixture starts ``airflow standalone`` (conftest's ``AirflowStandalone``: the repository's
airflow.cfg, a temp SQLite DB, logs and AIRFLOW_HOME, a free API port, the repository's dags/) in its own
process group and kills the whole group at teardown. DAGs are paused at creation and the form's "Unpause on trigger" box is cleared, so a
triggered run is recorded (queued) with its conf and nothing executes: no local runtime is needed.
``ui/trigger_form.js`` (playwright-core on the system's Chromium) fills the form and clicks Trigger; the
assertions read the DAG runs back through Airflow's REST API v2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeflow_bridge import workflow

from .conftest import AirflowStandalone

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "anomaly_retraining"
WINDOW_END = "2026-11-01T00:00:00+00:00"
START_TIMEOUT_S = 120.0

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@dataclass
class AirflowUI:
    """A running ``airflow standalone``: its UI/API address and a REST client."""

    standalone: AirflowStandalone
    api: httpx.Client

    @property
    def base_url(self) -> str:
        return self.standalone.base_url

    def log_tail(self, lines: int = 40) -> str:
        return self.standalone.log_tail(lines)

    def manual_runs(self) -> list[dict[str, Any]]:
        response = self.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"run_type": "manual"})
        response.raise_for_status()
        return list(response.json()["dag_runs"])


@pytest.fixture(scope="session")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowUI]:
    """``airflow standalone`` on a free port; the whole process group is killed at teardown."""
    home = tmp_path_factory.mktemp("airflow_ui")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Paused DAGs: a triggered run stays queued, no scheduled run appears, no task executes.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "1",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }
    standalone = AirflowStandalone(env, home / "standalone.log")
    try:
        standalone.start(DAG_ID, timeout=START_TIMEOUT_S)
        with httpx.Client(base_url=standalone.base_url, timeout=10) as api:
            yield AirflowUI(standalone=standalone, api=api)
    finally:
        standalone.stop()


@pytest.fixture(scope="session")
def form_driver(ui_drivers: Path) -> Path:
    return ui_drivers / "trigger_form.js"


def drive_form(
    ui: AirflowUI, driver: Path, tmp_path: Path, fill: dict[str, str], *, submit: bool = True
) -> dict[str, Any]:
    """Open the trigger form, fill ``fill``, click Trigger (when ``submit`` and enabled); the outcome."""
    screenshot = tmp_path / "trigger_form.png"
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "base_url": ui.base_url,
                "dag_id": DAG_ID,
                "sections": {name: schema["section"] for name, schema in workflow.PARAM_SCHEMAS.items()},
                "datetimes": {
                    name: schema["title"]
                    for name, schema in workflow.PARAM_SCHEMAS.items()
                    if schema.get("format") == "date-time"
                },
                "fill": fill,
                "submit": submit,
                "unpause": False,
                "screenshot": str(screenshot),
                "chromium": shutil.which("chromium"),
            }
        )
    )
    done = subprocess.run(
        ["node", str(driver), str(spec)], cwd=driver.parent, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        pytest.fail(f"the browser run failed (screenshot: {screenshot}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["screenshot"] = str(screenshot)
    return result


def test_changed_params_reach_the_triggered_run(
    airflow_ui: AirflowUI, form_driver: Path, tmp_path: Path
) -> None:
    before = {run["dag_run_id"] for run in airflow_ui.manual_runs()}
    changed = {"window_end": WINDOW_END, "rows": "5000", "f_score_threshold": "0.75"}

    result = drive_form(airflow_ui, form_driver, tmp_path, changed)

    assert result["triggerable"], f"Trigger stayed disabled; see {result['screenshot']}"
    assert result["response"]["status"] == 200, result["response"]["body"]
    assert result["toast"].startswith("Dag Run Triggered"), result["toast"]
    run_id = json.loads(result["response"]["body"])["dag_run_id"]
    assert {run["dag_run_id"] for run in airflow_ui.manual_runs()} - before == {run_id}
    response = airflow_ui.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    response.raise_for_status()
    run = response.json()
    assert run["triggered_by"] == "ui"
    conf = run["conf"]
    assert conf["rows"] == 5000 and isinstance(conf["rows"], int)
    assert conf["f_score_threshold"] == 0.75
    # The date-time picker sends its own ISO form of the same instant.
    assert datetime.fromisoformat(conf["window_end"].replace("Z", "+00:00")) == datetime.fromisoformat(
        WINDOW_END
    )
    untouched = {name: value for name, value in workflow.FORM_DEFAULTS.items() if name not in changed}
    assert {name: conf[name] for name in untouched} == untouched
    # The form's unpause box was cleared: the DAG stays paused and the run waits, nothing executes.
    assert airflow_ui.api.get(f"/api/v2/dags/{DAG_ID}").json()["is_paused"] is True
    assert run["state"] == "queued"


@pytest.mark.parametrize(
    ("param", "value", "schema_word"),
    # rows 5: the form must not clamp it to 1000 on its own (Airflow's number field clamps to a top-level
    # minimum/maximum; workflow.form_schema keeps the bounds out of its reach), so submit refuses it.
    [("namespace", "Not_Valid", "pattern"), ("lr_min", "0", "exclusiveMinimum"), ("rows", "5", "minimum")],
)
def test_param_outside_its_schema_is_refused(
    airflow_ui: AirflowUI,
    form_driver: Path,
    tmp_path: Path,
    param: str,
    value: str,
    schema_word: str,
) -> None:
    before = airflow_ui.manual_runs()

    result = drive_form(airflow_ui, form_driver, tmp_path, {"window_end": WINDOW_END, param: value})

    # Refused either in the browser (Trigger disabled, a field error shown) or by the trigger request the
    # form sends (the plugin's conf check, then Airflow, validate params against their JSON schema), whose
    # refusal the form shows.
    if result["triggerable"]:
        assert result["response"]["status"] == 400, result["response"]
        detail = json.loads(result["response"]["body"])["detail"]
        assert f"Invalid input for param {param}" in detail and schema_word in detail, detail
        assert result["toast"].startswith("Failed to Trigger Dag"), result["toast"]
    else:
        assert result["field_errors"], f"Trigger disabled without a field error; see {result['screenshot']}"
    assert airflow_ui.manual_runs() == before


def test_defaults_are_triggerable(airflow_ui: AirflowUI, form_driver: Path, tmp_path: Path) -> None:
    result = drive_form(airflow_ui, form_driver, tmp_path, {}, submit=False)
    assert result["defaults_triggerable"], f"Trigger disabled with the defaults; see {result['screenshot']}"


def test_the_providers_documentation_link_opens_the_how_to(airflow_ui: AirflowUI) -> None:
    providers = airflow_ui.api.get("/api/v2/providers").json()["providers"]
    (ours,) = [p for p in providers if p["package_name"] == "kubeflow-bridge"]
    path = ours["documentation_url"].split("8080", 1)[1]  # the same path on this test's port
    page = httpx.get(airflow_ui.base_url + path, timeout=30)
    assert page.status_code == 200 and "<h2>KServeDeployOperator</h2>" in page.text
