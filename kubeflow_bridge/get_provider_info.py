"""Provider metadata for Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

It imports nothing heavy: Airflow reads it in every process that lists providers.
"""

from __future__ import annotations

from typing import Any

OPERATOR_MODULES = [
    "kubeflow_bridge.operators.kfp",
    "kubeflow_bridge.operators.katib",
    "kubeflow_bridge.operators.training",
    "kubeflow_bridge.operators.kserve",
    "kubeflow_bridge.operators.gate",
    "kubeflow_bridge.operators.pod",
]
EXTRA_LINKS = [
    "kubeflow_bridge.links.kfp.KubeflowPipelineRunLink",
    "kubeflow_bridge.links.katib.KatibExperimentLink",
    "kubeflow_bridge.links.training.PyTorchJobLink",
    "kubeflow_bridge.links.training.TrainJobLink",
    "kubeflow_bridge.links.kserve.InferenceServiceLink",
]


def get_provider_info() -> dict[str, Any]:
    from kubeflow_bridge.hooks.connection_fields import CONN_FIELDS, UI_FIELD_BEHAVIOUR

    return {
        "package-name": "kubeflow-bridge",
        "name": "Kubeflow Bridge",
        "description": "Launch and wait for Kubeflow Pipelines runs, Katib Experiments, PyTorchJobs, "
        "Trainer v2 TrainJobs and KServe InferenceServices from Airflow.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Kubeflow",
                "external-doc-url": "https://www.kubeflow.org/docs/",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": "Kubeflow", "python-modules": OPERATOR_MODULES}],
        "sensors": [
            {
                "integration-name": "Kubeflow",
                "python-modules": [
                    "kubeflow_bridge.sensors.kfp",
                    "kubeflow_bridge.sensors.katib",
                    "kubeflow_bridge.sensors.training",
                    "kubeflow_bridge.sensors.kserve",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "Kubeflow",
                "python-modules": ["kubeflow_bridge.hooks.kubeflow", "kubeflow_bridge.hooks.mlflow"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Kubeflow",
                "python-modules": ["kubeflow_bridge.triggers.kubeflow", "kubeflow_bridge.triggers.kfp"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "kubeflow_bridge.hooks.kubeflow.KubeflowHook",
                "connection-type": "kubeflow",
                "hook-name": "Kubeflow",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            },
            {
                "hook-class-name": "kubeflow_bridge.hooks.mlflow.MlflowHook",
                "connection-type": "mlflow",
                "hook-name": "MLflow",
            },
        ],
        "extra-links": EXTRA_LINKS,
        "config": {
            "kubeflow_bridge": {
                "description": "Settings of the kubeflow-bridge operators and sensors.",
                "options": {
                    "trigger_fire_delay": {
                        "description": "Seconds after a deferral before its trigger may fire, and "
                        "how long a deferrable operator first waits on the worker (a job done by then "
                        "needs no deferral). Works around Airflow 3.3's stale defer-exit race "
                        "(apache/airflow#72716), which can fail a task whose job ends within seconds "
                        "of deferring; 0 defers at once and fires at once.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "0",
                        "default": "10.0",
                    }
                },
            }
        },
    }
