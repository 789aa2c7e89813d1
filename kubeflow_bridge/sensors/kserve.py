"""Sensor for an existing InferenceService."""

from __future__ import annotations

from typing import Any, ClassVar

from kubeflow_bridge.sensors.base import KubeflowObjectSensor


class InferenceServiceSensor(KubeflowObjectSensor):
    """Wait for an InferenceService's current generation to be Ready."""

    kind_name: ClassVar[str] = "InferenceService"

    def _min_generation(self, obj: dict[str, Any]) -> int | None:
        generation = (obj.get("metadata") or {}).get("generation")
        return int(generation) if generation is not None else None
