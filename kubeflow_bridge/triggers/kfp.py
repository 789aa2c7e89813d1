"""Trigger that waits for a Kubeflow Pipelines run to finish (KFP has no watch: it polls ``get_run``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from kubeflow_bridge.triggers.kubeflow import KillGuard, event_payload, hold_until
from kubeflow_bridge.triggers.progress import RunProgress


class KubeflowPipelineRunTrigger(KillGuard, BaseTrigger):
    """Wait for a KFP run to reach a terminal state.

    Args:
        run_id: The KFP run id.
        deadline: Epoch seconds after which the wait ends with a ``timeout`` event.
        kubeflow_conn_id: The ``kubeflow`` connection.
        poll_interval: Seconds between ``get_run`` calls.
        on_kill_action: ``delete`` terminates the run when a user kills the deferred task; ``keep``.
        fire_not_before: Epoch seconds before which no event is yielded (see
            ``[kubeflow_bridge] trigger_fire_delay``).
    """

    def __init__(
        self,
        *,
        run_id: str,
        deadline: float,
        kubeflow_conn_id: str = "kubeflow_default",
        poll_interval: float = 5.0,
        on_kill_action: str = "keep",
        fire_not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.on_kill_action = on_kill_action
        self.fire_not_before = fire_not_before
        self.run_id = run_id
        self.deadline = float(deadline)
        self.kubeflow_conn_id = kubeflow_conn_id
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "deadline": self.deadline,
                "kubeflow_conn_id": self.kubeflow_conn_id,
                "poll_interval": self.poll_interval,
                "on_kill_action": self.on_kill_action,
                "fire_not_before": self.fire_not_before,
            },
        )

    def _kfp_client(self) -> Any:
        """The async KFP client (the seam tests replace)."""
        from kubeflow_bridge.hooks.kubeflow import KubeflowHook

        return KubeflowHook(self.kubeflow_conn_id).get_async_kfp_client()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await self.note_start()
        detail = {"run_id": self.run_id}
        try:
            client = self._kfp_client()
            try:
                outcome = await client.wait_for_run(
                    self.run_id,
                    timeout=max(0.0, self.deadline - time.time()),
                    poll_interval=self.poll_interval,
                    on_poll=RunProgress(self.log),
                )
            finally:
                await _close(client)
            payload = event_payload(outcome.state, reason=outcome.reason, message=outcome.message, **detail)
        except Exception as err:
            self.log.warning("wait for KFP run %s failed: %s", self.run_id, err)
            payload = event_payload("error", reason=type(err).__name__, message=str(err), **detail)
        await hold_until(self.fire_not_before)
        self._fired = True
        yield TriggerEvent(payload)

    async def on_kill(self) -> None:
        """A user killed the deferred task: terminate the run unless told to keep it (Airflow's own
        clean-ups are told apart by :meth:`kill_asked`)."""
        if self.on_kill_action != "delete":
            return
        if not await self.kill_asked():
            self.log.info(
                "trigger cancelled by Airflow, not by a user: KFP run %s is left running", self.run_id
            )
            return
        self.log.info("task killed: terminating KFP run %s", self.run_id)
        client = self._kfp_client()
        try:
            await client.terminate_run(self.run_id)
        except Exception:
            self.log.exception("could not terminate KFP run %s", self.run_id)
        finally:
            await _close(client)


async def _close(client: Any) -> None:
    close = getattr(client, "aclose", None) or getattr(client, "close", None)
    if close is not None:
        result = close()
        if asyncio.iscoroutine(result):
            await result
