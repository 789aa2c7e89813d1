"""Airflow plugin registering kubeflow-bridge's operator extra links (for deployments that load plugins/).

The provider's ``extra-links`` already register them where the package is installed as a provider;
this plugin makes the links resolvable by the API server from the plugins folder too.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from kubeflow_bridge.links.katib import KatibExperimentLink
from kubeflow_bridge.links.kfp import KubeflowPipelineRunLink
from kubeflow_bridge.links.kserve import InferenceServiceLink
from kubeflow_bridge.links.training import PyTorchJobLink


class KubeflowBridgePlugin(AirflowPlugin):
    """Registers the Kubeflow links."""

    name = "kubeflow_bridge"
    operator_extra_links = [
        KubeflowPipelineRunLink(),
        KatibExperimentLink(),
        PyTorchJobLink(),
        InferenceServiceLink(),
    ]
