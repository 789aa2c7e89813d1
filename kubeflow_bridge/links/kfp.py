"""Link to a Kubeflow Pipelines run in the central dashboard."""

from __future__ import annotations

from typing import ClassVar

from kubeflow_bridge.links.base import KubeflowLink


class KubeflowPipelineRunLink(KubeflowLink):
    """The KFP run details page."""

    name: ClassVar[str] = "Kubeflow Pipelines run"  # type: ignore[misc]
    key: ClassVar[str] = "kfp_run"
    url_template: ClassVar[str] = "{dashboard}/_/pipeline/#/runs/details/{name}"
