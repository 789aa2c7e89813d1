"""Airflow plugin: kubeflow-bridge's operator extra links, its how-to page in the Airflow UI, a
"Kubeflow" tab on each DAG run and task instance and the orchestrator comparison (:mod:`kubeflow_bridge.run_views`), and the
API server's check of a DAG run's conf at submit (:mod:`kubeflow_bridge.conf_check`).

The provider's ``extra-links`` already register the links where the package is installed as a provider;
this plugin makes them resolvable by the API server from the plugins folder too. The how-to
(``docs/operators.md`` of the checkout) is served at ``/kubeflow-bridge/docs``: the documentation URL
Admin > Providers shows for kubeflow-bridge.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin

from kubeflow_bridge.conf_check import DagRunConfCheck
from kubeflow_bridge.docs_app import URL_PREFIX, docs_app
from kubeflow_bridge.links.katib import KatibExperimentLink
from kubeflow_bridge.links.kfp import KubeflowPipelineRunLink
from kubeflow_bridge.links.kserve import InferenceServiceLink
from kubeflow_bridge.links.training import PyTorchJobLink, TrainJobLink
from kubeflow_bridge.run_views import add_run_views

#: The checkout (KUBEFLOW_BRIDGE_HOME, else the folder above plugins/): its docs/ has the how-to, its
#: reports/ the comparison `make demo` writes (KUBEFLOW_BRIDGE_REPORTS_DIR: another folder).
HOME = Path(os.environ.get("KUBEFLOW_BRIDGE_HOME") or Path(__file__).resolve().parents[1])
DOCS_FILE = HOME / "docs" / "operators.md"
REPORTS_DIR = Path(os.environ.get("KUBEFLOW_BRIDGE_REPORTS_DIR") or HOME / "reports")


def _app() -> object:
    app = docs_app(DOCS_FILE)
    add_run_views(app, REPORTS_DIR)
    return app


class KubeflowBridgePlugin(AirflowPlugin):
    """Registers the Kubeflow links and the how-to page."""

    name = "kubeflow_bridge"
    operator_extra_links = [
        KubeflowPipelineRunLink(),
        KatibExperimentLink(),
        PyTorchJobLink(),
        TrainJobLink(),
        InferenceServiceLink(),
    ]
    fastapi_apps = [{"app": _app(), "url_prefix": URL_PREFIX, "name": "kubeflow-bridge docs"}]
    external_views = [
        {
            "name": "Kubeflow",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "kubeflow",
        },
        {  # each task's own: its object, links and output, the evaluation report embedded
            "name": "Kubeflow",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}?task={{TASK_ID}}",
            "destination": "task_instance",
            "url_route": "kubeflow-task",
        },
        {
            "name": "Orchestrator comparison",
            "href": f"{URL_PREFIX}/comparison",
            "destination": "nav",
            "category": "browse",
            "url_route": "orchestrator-comparison",
        },
    ]
    # Refuses a run of a kubeflow-bridge DAG whose conf has an unknown param or a value its schema refuses.
    fastapi_root_middlewares = [{"middleware": DagRunConfCheck, "name": "kubeflow-bridge conf check"}]
