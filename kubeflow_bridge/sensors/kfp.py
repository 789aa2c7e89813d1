"""Sensor for an existing Kubeflow Pipelines run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from kubeflow_bridge.hooks.kubeflow import KubeflowHook
from kubeflow_bridge.operators._base import default_deferrable, raise_for_event

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context


class KubeflowPipelineRunSensor(BaseSensorOperator):
    """Wait until a KFP run succeeds; fail when it fails or is cancelled.

    Args:
        run_id: The KFP run id.
        kubeflow_conn_id: The ``kubeflow`` connection.
        deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``, else True).
        **kwargs: BaseSensorOperator arguments.
    """

    template_fields: Sequence[str] = ("run_id", "kubeflow_conn_id")

    def __init__(
        self,
        *,
        run_id: str,
        kubeflow_conn_id: str = KubeflowHook.default_conn_name,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.kubeflow_conn_id = kubeflow_conn_id
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)

    def kfp_client(self) -> Any:
        """The sync KFP client (the seam tests replace)."""
        return KubeflowHook(self.kubeflow_conn_id).get_kfp_client()

    def poke(self, context: Context) -> bool:
        from kubeflow_bridge.clients.kfp import run_outcome

        outcome = run_outcome(self.kfp_client().get_run(self.run_id), self.run_id)
        if outcome is None:
            return False
        raise_for_event(
            {"status": outcome.state, "reason": outcome.reason, "message": outcome.message},
            f"KFP run {self.run_id}",
        )
        return True

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        from kubeflow_bridge.triggers.kfp import KubeflowPipelineRunTrigger
        from kubeflow_bridge.triggers.kubeflow import fire_time_for_deferral

        self.defer(
            trigger=KubeflowPipelineRunTrigger(
                run_id=self.run_id,
                deadline=time.time() + float(self.timeout),
                kubeflow_conn_id=self.kubeflow_conn_id,
                poll_interval=float(self.poke_interval),
                fire_not_before=fire_time_for_deferral(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        raise_for_event(event, f"KFP run {self.run_id}")
