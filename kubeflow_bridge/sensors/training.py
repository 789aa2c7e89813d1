"""Sensor for an existing PyTorchJob."""

from __future__ import annotations

from typing import ClassVar

from kubeflow_bridge.sensors.base import KubeflowObjectSensor


class PyTorchJobSensor(KubeflowObjectSensor):
    """Wait for a PyTorchJob to succeed (Restarting is not terminal)."""

    kind_name: ClassVar[str] = "PyTorchJob"
