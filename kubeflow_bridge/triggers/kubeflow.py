"""Trigger that waits for a Kubernetes custom object (PyTorchJob, Experiment, InferenceService) to finish.

The trigger only reads: the worker created the object before deferring. It waits with the async
object client, whose ``wait`` shares one watch per (kind, namespace) across every waiter in the
triggerer process, and yields exactly one event. The deadline is absolute (epoch seconds), so a
trigger re-created after a triggerer restart keeps the original timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from kubeflow_bridge.triggers.progress import ProgressReporter

#: Every state a trigger event can carry; only ``succeeded`` lets a task succeed.
EVENT_STATES = ("succeeded", "failed", "cancelled", "timeout", "error")

#: Seconds after a deferral before its trigger may fire. Airflow 3.3's scheduler fails a resumed
#: task when it reads the executor's report of the deferring process's exit only after the trigger
#: event has queued the task again (apache/airflow#71580, #72716: 3.3.2 guards the SCHEDULED state
#: only). The task supervisor can take ~5 s to report that exit, so a job that ended within seconds
#: of its deferral could fail its task (seen in CI: a 4 s PyTorchJob, "state mismatch").
#: Object operators first wait this long on the worker (``wait_then_defer``), so only a job that ends
#: within it of a later deferral is held. The default of ``[kubeflow_bridge] trigger_fire_delay``; set
#: it to 0 on an Airflow with the fix.
FIRE_DELAY_SECONDS = 10.0


def fire_delay_seconds() -> float:
    """``[kubeflow_bridge] trigger_fire_delay`` (seconds, >= 0; :data:`FIRE_DELAY_SECONDS` if unset)."""
    from airflow.configuration import conf
    from airflow.exceptions import AirflowConfigException

    delay = conf.getfloat("kubeflow_bridge", "trigger_fire_delay", fallback=FIRE_DELAY_SECONDS)
    if not delay >= 0:
        raise AirflowConfigException(
            f"[kubeflow_bridge] trigger_fire_delay must be a number of seconds >= 0, not {delay}: "
            "set it to 0 to let triggers fire as soon as the job ends"
        )
    return delay


def fire_time_for_deferral(delay: float | None = None) -> float:
    """The ``fire_not_before`` for a trigger being deferred to now (``delay``: read the setting)."""
    return time.time() + (fire_delay_seconds() if delay is None else delay)


async def hold_until(fire_not_before: float | None) -> None:
    """Sleep until ``fire_not_before`` (epoch seconds); no wait once it has passed or when None."""
    if fire_not_before is not None and (delay := fire_not_before - time.time()) > 0:
        await asyncio.sleep(delay)


def event_payload(state: str, *, reason: str = "", message: str = "", **detail: Any) -> dict[str, Any]:
    """A JSON-safe trigger event payload; unknown states become ``error`` (never success)."""
    if state not in EVENT_STATES:
        message = f"unexpected state {state!r}: {message}"
        state = "error"
    return {"status": state, "reason": reason, "message": message, **detail}


def kill_was_asked(state_at_start: str | None, state_now: str | None) -> bool:
    """Whether a cancelled trigger stands for a kill a user asked for (so ``on_kill`` may act).

    Airflow's triggerer cancels a trigger "by user action" whenever its row is no longer wanted, which
    also covers rows nobody killed: trigger rows that ``airflow dags test`` left behind (their task
    already finished) and triggers of an earlier try. What the task instance says decides:

    - it was not deferred when this trigger started: a leftover, never a kill;
    - it is deferred now: the task still waits (the trigger moved to another triggerer), not a kill;
    - otherwise (marked failed or success, cleared, or its run deleted while deferred): a user's kill.

    ``None`` means unknown (no Execution API to ask); an unknown start state is not read as a leftover.
    """
    if state_at_start is not None and state_at_start != "deferred":
        return False
    return state_now != "deferred"


class KillGuard:
    """What the bridge's triggers share: read their task instance's state, to tell a user's kill from
    Airflow's own clean-up (see :func:`kill_was_asked`)."""

    _state_at_start: str | None = None
    _fired: bool = False
    log: Any  # BaseTrigger's logger

    async def task_state(self) -> str | None:
        """The task instance's state now, from the Execution API (None when it cannot be read)."""
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return None
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
            from asgiref.sync import sync_to_async

            map_index = getattr(ti, "map_index", -1)
            states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
                dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=map_index
            )
        except Exception as err:  # the guard must never break the wait itself
            self.log.warning("could not read the task's state: %s", err)
            return None
        key = ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}_{map_index}"
        state = (states.get(ti.run_id) or {}).get(key)
        return None if state is None else str(state)

    async def note_start(self) -> None:
        """Remember the task's state when the trigger starts (a leftover row finds it finished).

        The read runs shielded: when Airflow cancels the trigger while it is still reading (a leftover is
        cancelled within seconds of starting), :meth:`kill_asked` waits for it instead of guessing.
        """
        self._start_read = asyncio.ensure_future(self._read_start_state())
        await asyncio.shield(self._start_read)

    async def _read_start_state(self) -> None:
        self._state_at_start = await self.task_state()
        if self._state_at_start not in (None, "deferred"):
            self.log.warning(
                "the task instance is %s, not deferred: this trigger is a leftover (e.g. of `airflow dags "
                "test`) and will not act on a cancellation",
                self._state_at_start,
            )

    async def kill_asked(self) -> bool:
        """Whether this cancellation is a user's kill (never after the trigger's event was sent)."""
        if self._fired:
            return False
        start_read = getattr(self, "_start_read", None)
        if start_read is not None and not start_read.done():
            with contextlib.suppress(Exception):
                await start_read
        return kill_was_asked(self._state_at_start, await self.task_state())


class KubeflowObjectTrigger(KillGuard, BaseTrigger):
    """Wait for a custom object to reach a terminal state.

    Args:
        kind: Kind or plural name (``PyTorchJob``, ``experiments``, ``InferenceService``).
        name: Object name.
        namespace: Object namespace.
        deadline: Epoch seconds after which the wait ends with a ``timeout`` event.
        kubeflow_conn_id: The ``kubeflow`` connection.
        kubernetes_conn_id: Overrides the connection's cncf ``kubernetes`` connection id.
        min_generation: For InferenceServices: the generation whose readiness counts.
        on_kill_action: What a user's kill of the deferred task does (Airflow 3.3+ calls ``on_kill``;
            a triggerer restart does not): ``delete`` the object, ``rollback`` an InferenceService's
            canary in flight (never deleting it), or ``keep``.
        fire_not_before: Epoch seconds before which no event is yielded (operators set the deferral
            time plus ``[kubeflow_bridge] trigger_fire_delay``); None fires as soon as the object is done.
        progress_interval: Seconds between progress lines in the task log (and the training master's
            log streamed live; see :mod:`kubeflow_bridge.triggers.progress`); 0 turns them off.
    """

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        namespace: str,
        deadline: float,
        kubeflow_conn_id: str = "kubeflow_default",
        kubernetes_conn_id: str | None = None,
        min_generation: int | None = None,
        on_kill_action: str = "keep",
        fire_not_before: float | None = None,
        progress_interval: float = 10.0,
    ) -> None:
        super().__init__()
        self.on_kill_action = on_kill_action
        self.fire_not_before = fire_not_before
        self.progress_interval = float(progress_interval)
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.deadline = float(deadline)
        self.kubeflow_conn_id = kubeflow_conn_id
        self.kubernetes_conn_id = kubernetes_conn_id
        self.min_generation = min_generation

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "name": self.name,
                "namespace": self.namespace,
                "deadline": self.deadline,
                "kubeflow_conn_id": self.kubeflow_conn_id,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "min_generation": self.min_generation,
                "on_kill_action": self.on_kill_action,
                "fire_not_before": self.fire_not_before,
                "progress_interval": self.progress_interval,
            },
        )

    def _object_client(self) -> AbstractAsyncContextManager[Any]:
        """The async object client (the seam tests replace)."""
        from kubeflow_bridge.hooks.kubeflow import KubeflowHook

        hook = KubeflowHook(self.kubeflow_conn_id, kubernetes_conn_id=self.kubernetes_conn_id)
        return hook.async_object_client()

    def _detail(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "namespace": self.namespace}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await self.note_start()
        remaining = self.deadline - time.time()
        if remaining <= 0:
            await hold_until(self.fire_not_before)
            self._fired = True
            yield TriggerEvent(
                event_payload("timeout", reason="Timeout", message="deadline passed", **self._detail())
            )
            return
        try:
            from kubeflow_bridge.hooks.kubeflow import resolve_kind

            resource_kind = resolve_kind(self.kind)
            async with self._object_client() as client:
                reporter = ProgressReporter(
                    client, resource_kind, self.name, self.namespace, self.log, self.progress_interval
                )
                progress = asyncio.ensure_future(reporter.run()) if self.progress_interval > 0 else None
                try:
                    outcome = await client.wait(
                        resource_kind,
                        self.name,
                        namespace=self.namespace,
                        timeout=remaining,
                        min_generation=self.min_generation,
                    )
                finally:
                    if progress is not None:
                        await reporter.finish(progress)
            from kubeflow_bridge.clients.kube import created_object_outcome

            # the worker created it before deferring: gone now means deleted, i.e. cancelled
            outcome = created_object_outcome(outcome)
            words = reporter.last_words if outcome.state == "failed" else {}
            last_words = {"last_words": words} if words else {}
            payload = event_payload(
                outcome.state,
                reason=outcome.reason,
                message=outcome.message,
                streamed_log_lines=reporter.streamed,
                **last_words,
                **self._detail(),
            )
        except Exception as err:  # one event, always: the task fails with what went wrong
            self.log.warning("wait for %s %s/%s failed: %s", self.kind, self.namespace, self.name, err)
            payload = event_payload("error", reason=type(err).__name__, message=str(err), **self._detail())
        await hold_until(self.fire_not_before)
        self._fired = True
        yield TriggerEvent(payload)

    async def on_kill(self) -> None:
        """A user killed the deferred task: ``delete`` the object, ``rollback`` a canary, or ``keep``.

        Airflow calls this for every cancellation it makes "by user action", its own clean-ups included;
        :meth:`kill_asked` keeps those from touching anything.
        """
        if self.on_kill_action not in ("delete", "rollback"):
            return
        if not await self.kill_asked():
            self.log.info(
                "trigger cancelled by Airflow, not by a user: %s %s/%s is left as it is",
                self.kind,
                self.namespace,
                self.name,
            )
            return
        from kubeflow_bridge.hooks.kubeflow import resolve_kind

        kind = resolve_kind(self.kind)
        try:
            async with self._object_client() as client:
                if self.on_kill_action == "delete":
                    self.log.info("task killed: deleting %s %s/%s", self.kind, self.namespace, self.name)
                    await client.cancel(kind, self.name, namespace=self.namespace)
                    return
                from kubeflow_bridge.resources.kserve import canary_patch
                from kubeflow_bridge.workflow.rollout import canary_in_flight

                live = await client.get(kind, self.name, namespace=self.namespace)
                if canary_in_flight(live) is not None:
                    self.log.info(
                        "task killed: rolling %s/%s back to the previous revision", self.namespace, self.name
                    )
                    await client.patch(kind, self.name, canary_patch(0), namespace=self.namespace)
        except Exception:
            self.log.exception(
                "could not %s %s %s/%s", self.on_kill_action, self.kind, self.namespace, self.name
            )
