"""Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "kubeflow-bridge",
        "name": "Kubeflow Bridge",
        "description": "Launch and wait for Kubeflow Pipelines runs, Katib Experiments, PyTorchJobs and "
        "KServe InferenceServices from Airflow.",
        "versions": ["0.1.0"],
    }
