"""Link to a Katib Experiment in the central dashboard."""

from __future__ import annotations

from typing import ClassVar

from kubeflow_bridge.links.base import KubeflowLink


class KatibExperimentLink(KubeflowLink):
    """The Katib UI's experiment page."""

    name: ClassVar[str] = "Katib experiment"  # type: ignore[misc]
    key: ClassVar[str] = "katib_experiment"
    url_template: ClassVar[str] = "{dashboard}/_/katib/experiment/{namespace}/{name}"
