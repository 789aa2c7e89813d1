"""Link to an InferenceService in the KServe models web app."""

from __future__ import annotations

from typing import ClassVar

from kubeflow_bridge.links.base import KubeflowLink


class InferenceServiceLink(KubeflowLink):
    """The models web app's InferenceService details page."""

    name: ClassVar[str] = "InferenceService"  # type: ignore[misc]
    key: ClassVar[str] = "inferenceservice"
    url_template: ClassVar[str] = "{dashboard}/_/models/details/{namespace}/{name}"
