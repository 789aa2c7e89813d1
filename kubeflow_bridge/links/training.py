"""Links to a PyTorchJob or TrainJob (the dashboard has no training UI by default: set ``pytorchjob_url_template`` or ``trainjob_url_template``)."""

from __future__ import annotations

from typing import ClassVar

from kubeflow_bridge.links.base import KubeflowLink


class PyTorchJobLink(KubeflowLink):
    """The PyTorchJob's page (a configured URL template, else the dashboard's resource view)."""

    name: ClassVar[str] = "PyTorchJob"  # type: ignore[misc]
    key: ClassVar[str] = "pytorchjob"
    url_template: ClassVar[str] = "{dashboard}/_/pytorchjobs/details/{namespace}/{name}"


class TrainJobLink(KubeflowLink):
    """The TrainJob's page (a configured URL template, else the dashboard's resource view)."""

    name: ClassVar[str] = "TrainJob"  # type: ignore[misc]
    key: ClassVar[str] = "trainjob"
    url_template: ClassVar[str] = "{dashboard}/_/trainjobs/details/{namespace}/{name}"
