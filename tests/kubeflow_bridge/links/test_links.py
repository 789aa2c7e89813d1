from __future__ import annotations

import pytest

from kubeflow_bridge.links.katib import KatibExperimentLink
from kubeflow_bridge.links.kfp import KubeflowPipelineRunLink
from kubeflow_bridge.links.kserve import InferenceServiceLink
from kubeflow_bridge.links.training import PyTorchJobLink, TrainJobLink


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (KubeflowPipelineRunLink, "https://kf.example/_/pipeline/#/runs/details/run-1"),
        (KatibExperimentLink, "https://kf.example/_/katib/experiment/team%20a/run-1"),
        (PyTorchJobLink, "https://kf.example/_/pytorchjobs/details/team%20a/run-1"),
        (TrainJobLink, "https://kf.example/_/trainjobs/details/team%20a/run-1"),
        (InferenceServiceLink, "https://kf.example/_/models/details/team%20a/run-1"),
    ],
)
def test_urls_from_the_dashboard(link: type, expected: str) -> None:
    assert link.format_url("https://kf.example/", namespace="team a", name="run-1") == expected


def test_no_dashboard_means_no_link_and_nothing_pushed() -> None:
    class TI:
        pushed: dict = {}

        def xcom_push(self, key: str, value: str) -> None:
            self.pushed[key] = value

    ti = TI()
    assert PyTorchJobLink.persist({"ti": ti}, None, namespace="n", name="x") is None  # type: ignore[arg-type]
    assert ti.pushed == {}
    PyTorchJobLink.persist({"ti": ti}, "http://d", namespace="n", name="x")  # type: ignore[arg-type]
    assert ti.pushed == {PyTorchJobLink().xcom_key: "http://d/_/pytorchjobs/details/n/x"}


def test_operators_declare_their_links() -> None:
    from kubeflow_bridge.operators.katib import KatibExperimentOperator
    from kubeflow_bridge.operators.kfp import KubeflowPipelineRunOperator
    from kubeflow_bridge.operators.kserve import KServeDeployOperator
    from kubeflow_bridge.operators.training import PyTorchJobOperator, TrainJobOperator

    for op, link in [
        (KubeflowPipelineRunOperator, KubeflowPipelineRunLink),
        (KatibExperimentOperator, KatibExperimentLink),
        (PyTorchJobOperator, PyTorchJobLink),
        (TrainJobOperator, TrainJobLink),
        (KServeDeployOperator, InferenceServiceLink),
    ]:
        assert [type(x) for x in op.operator_extra_links] == [link]
