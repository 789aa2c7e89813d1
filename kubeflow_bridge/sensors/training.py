"""Sensors for an existing PyTorchJob or TrainJob."""

from __future__ import annotations

from typing import ClassVar

from kubeflow_bridge.sensors.base import KubeflowObjectSensor


class PyTorchJobSensor(KubeflowObjectSensor):
    """Wait for a PyTorchJob to succeed (Restarting is not terminal)."""

    kind_name: ClassVar[str] = "PyTorchJob"


class TrainJobSensor(KubeflowObjectSensor):
    """Wait for a Kubeflow Trainer v2 TrainJob to complete (Suspended is not terminal)."""

    kind_name: ClassVar[str] = "TrainJob"
