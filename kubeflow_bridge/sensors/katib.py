"""Sensor for an existing Katib Experiment."""

from __future__ import annotations

from typing import ClassVar

from kubeflow_bridge.sensors.base import KubeflowObjectSensor


class KatibExperimentSensor(KubeflowObjectSensor):
    """Wait for a Katib Experiment to succeed."""

    kind_name: ClassVar[str] = "Experiment"
