from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from airflow.triggers.base import BaseTrigger, TriggerEvent

from kubeflow_bridge.clients.kfp import AsyncKfpClient
from kubeflow_bridge.clients.kube import WaitOutcome
from kubeflow_bridge.triggers.kfp import KubeflowPipelineRunTrigger
from kubeflow_bridge.triggers.kubeflow import KubeflowObjectTrigger, kill_was_asked

FUTURE = time.time() + 3600

TRIGGERS: list[BaseTrigger] = [
    KubeflowObjectTrigger(kind="PyTorchJob", name="job-1", namespace="ns", deadline=FUTURE),
    KubeflowObjectTrigger(
        kind="InferenceService",
        name="isvc",
        namespace="ns",
        deadline=FUTURE,
        kubeflow_conn_id="kf",
        kubernetes_conn_id="k8s",
        min_generation=3,
        on_kill_action="delete",
    ),
    KubeflowObjectTrigger(kind="Experiment", name="exp", namespace="ns", deadline=FUTURE),
    KubeflowPipelineRunTrigger(run_id="run-1", deadline=FUTURE, kubeflow_conn_id="kf", poll_interval=0.5),
    KubeflowPipelineRunTrigger(run_id="run-2", deadline=FUTURE, fire_not_before=FUTURE - 3590),
    KubeflowObjectTrigger(
        kind="PyTorchJob", name="job-2", namespace="ns", deadline=FUTURE, fire_not_before=FUTURE
    ),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_serialize_round_trip_through_airflow_trigger_model(
    trigger: BaseTrigger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models import crypto
    from airflow.models.trigger import Trigger
    from cryptography.fernet import Fernet

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    crypto.get_fernet.cache_clear()
    from importlib import import_module

    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)  # JSON-safe
    row = Trigger.from_object(trigger)
    assert trigger.serialize()[1].get("name", "run-1") not in row.encrypted_kwargs  # stored encrypted
    module, _, name = row.classpath.rpartition(".")
    rebuilt = getattr(import_module(module), name)(**row.kwargs)
    assert type(rebuilt) is type(trigger)
    assert rebuilt.serialize() == (classpath, kwargs)
    crypto.get_fernet.cache_clear()


def Outcome(state: str, reason: str, message: str, obj: dict | None = None) -> WaitOutcome:
    return WaitOutcome(state, reason, message, obj)


class FakeAsyncObjectClient:
    def __init__(self, result: Outcome | Exception) -> None:
        self.result = result
        self.waits: list[dict[str, Any]] = []
        self.cancelled: list[str] = []

    async def cancel(self, kind: Any, name: str, *, namespace: str) -> None:
        self.cancelled.append(f"{kind.kind} {namespace}/{name}")

    async def wait(
        self, kind: Any, name: str, *, namespace: str, timeout: float, min_generation: int | None = None
    ) -> Outcome:
        self.waits.append(
            {
                "kind": kind.kind,
                "name": name,
                "namespace": namespace,
                "timeout": timeout,
                "min_generation": min_generation,
            }
        )
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def collect(trigger: BaseTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


def object_trigger(
    monkeypatch: pytest.MonkeyPatch, client: FakeAsyncObjectClient, **kwargs: Any
) -> KubeflowObjectTrigger:
    @contextlib.asynccontextmanager
    async def seam(self: KubeflowObjectTrigger) -> AsyncIterator[FakeAsyncObjectClient]:
        yield client

    monkeypatch.setattr(KubeflowObjectTrigger, "_object_client", seam)
    base: dict[str, Any] = {
        "kind": "pytorchjobs",
        "name": "j",
        "namespace": "ns",
        "deadline": time.time() + 60,
    }
    base.update(kwargs)
    return KubeflowObjectTrigger(**base)


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled", "timeout"])
async def test_object_trigger_yields_exactly_one_event_with_the_outcome(
    monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    client = FakeAsyncObjectClient(Outcome(state, "Why", "detail"))
    events = await collect(object_trigger(monkeypatch, client, min_generation=2))
    assert len(events) == 1
    assert events[0].payload == {
        "status": state,
        "reason": "Why",
        "message": "detail",
        "kind": "pytorchjobs",
        "name": "j",
        "namespace": "ns",
        "streamed_log_lines": 0,
    }
    (call,) = client.waits
    assert call["kind"] == "PyTorchJob" and call["min_generation"] == 2 and 0 < call["timeout"] <= 60


async def test_object_trigger_turns_client_errors_into_one_error_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = await collect(object_trigger(monkeypatch, FakeAsyncObjectClient(ConnectionError("api down"))))
    assert [e.payload["status"] for e in events] == ["error"]
    assert events[0].payload["message"] == "api down" and events[0].payload["reason"] == "ConnectionError"


async def test_object_trigger_deleted_object_is_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    events = await collect(
        object_trigger(monkeypatch, FakeAsyncObjectClient(Outcome("error", "NotFound", "gone")))
    )
    assert events[0].payload["status"] == "cancelled"


async def test_object_trigger_unknown_state_is_error_never_success(monkeypatch: pytest.MonkeyPatch) -> None:
    events = await collect(object_trigger(monkeypatch, FakeAsyncObjectClient(Outcome("Complete", "", ""))))
    assert events[0].payload["status"] == "error"


async def test_object_trigger_past_deadline_times_out_without_calling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = FakeAsyncObjectClient(Outcome("succeeded", "", ""))
    events = await collect(object_trigger(monkeypatch, client, deadline=time.time() - 1))
    assert events[0].payload["status"] == "timeout" and client.waits == []


async def test_object_trigger_unknown_kind_is_error(monkeypatch: pytest.MonkeyPatch) -> None:
    events = await collect(
        object_trigger(monkeypatch, FakeAsyncObjectClient(Outcome("succeeded", "", "")), kind="Widget")
    )
    assert events[0].payload["status"] == "error"


class FakeAsyncKfp:
    """Fakes the transport (``get_run``); the wait is the real client's."""

    wait_for_run = AsyncKfpClient.wait_for_run

    def __init__(self, states: list[str | Exception]) -> None:
        self.states = states
        self.gets = 0
        self.closed = False

    async def get_run(self, run_id: str) -> dict:
        self.gets += 1
        item = self.states[min(self.gets - 1, len(self.states) - 1)]
        if isinstance(item, Exception):
            raise item
        return {
            "run_id": run_id,
            "state": item,
            "error": {"message": "task x failed"} if item == "FAILED" else {},
        }

    async def aclose(self) -> None:
        self.closed = True


def kfp_trigger(
    monkeypatch: pytest.MonkeyPatch, client: FakeAsyncKfp, deadline: float | None = None, **kwargs: Any
) -> KubeflowPipelineRunTrigger:
    monkeypatch.setattr(KubeflowPipelineRunTrigger, "_kfp_client", lambda self: client)
    return KubeflowPipelineRunTrigger(
        run_id="r1", deadline=deadline or time.time() + 30, poll_interval=0.01, **kwargs
    )


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["PENDING", "RUNNING", "SUCCEEDED"], "succeeded"),
        (["RUNNING", "FAILED"], "failed"),
        (["RUNNING", "CANCELING"], "cancelled"),
        (["CANCELED"], "cancelled"),
        (["SKIPPED"], "failed"),
    ],
)
async def test_kfp_trigger_maps_run_states(
    monkeypatch: pytest.MonkeyPatch, states: list[str], expected: str
) -> None:
    client = FakeAsyncKfp(states)
    events = await collect(kfp_trigger(monkeypatch, client))
    assert [e.payload["status"] for e in events] == [expected]
    assert client.closed


async def test_kfp_trigger_timeout_and_error(monkeypatch: pytest.MonkeyPatch) -> None:
    events = await collect(kfp_trigger(monkeypatch, FakeAsyncKfp(["RUNNING"]), deadline=time.time() + 0.05))
    assert events[0].payload["status"] == "timeout"
    events = await collect(kfp_trigger(monkeypatch, FakeAsyncKfp([RuntimeError("401 expired")])))
    assert events[0].payload["status"] == "error" and "401 expired" in events[0].payload["message"]


async def test_triggerer_restart_recreated_trigger_finishes_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeAsyncObjectClient(Outcome("succeeded", "PyTorchJobSucceeded", ""))
    original = object_trigger(monkeypatch, client)
    _classpath, kwargs = original.serialize()
    rebuilt = KubeflowObjectTrigger(**json.loads(json.dumps(kwargs)))
    events = await collect(rebuilt)
    assert events[0].payload["status"] == "succeeded"
    assert client.waits[0]["timeout"] <= kwargs["deadline"] - time.time() + 1  # same deadline, not a new one


@pytest.mark.parametrize(
    ("action", "fired", "expected"), [("delete", False, 1), ("keep", False, 0), ("delete", True, 0)]
)
async def test_object_trigger_on_kill_deletes_only_when_asked_and_not_after_its_event(
    monkeypatch: pytest.MonkeyPatch, action: str, fired: bool, expected: int
) -> None:
    client = FakeAsyncObjectClient(Outcome("succeeded", "", ""))
    trigger = object_trigger(monkeypatch, client, on_kill_action=action)
    if fired:
        await collect(trigger)
    await trigger.on_kill()
    assert client.cancelled == ["PyTorchJob ns/j"] * expected


@pytest.mark.parametrize(
    ("at_start", "now", "asked"),
    [
        ("deferred", "failed", True),  # a user marked the deferred task failed
        ("deferred", "success", True),  # ... or success
        ("deferred", None, True),  # ... or cleared it (no state), or the state cannot be read
        ("deferred", "deferred", False),  # the task still waits: the trigger moved to another triggerer
        ("success", "success", False),  # a row `airflow dags test` left behind
        ("failed", "failed", False),  # a trigger of an earlier, finished try
        (None, "failed", True),  # no Execution API at start: Airflow's own word stands
    ],
)
def test_kill_was_asked(at_start: str | None, now: str | None, asked: bool) -> None:
    assert kill_was_asked(at_start, now) is asked


@pytest.mark.parametrize(
    ("states", "deleted"),
    [(["deferred", "failed"], 1), (["success", "success"], 0), (["deferred", "deferred"], 0)],
)
async def test_object_trigger_on_kill_acts_only_on_a_users_kill(
    monkeypatch: pytest.MonkeyPatch, states: list[str], deleted: int
) -> None:
    # The seam: the task instance's state as the Execution API reports it, at the trigger's start and at
    # the cancellation (a real triggerer run is in tests/dags/test_airflow_ui_path.py).
    answers = iter(states)

    async def task_state(self: Any) -> str:
        return next(answers)

    monkeypatch.setattr(KubeflowObjectTrigger, "task_state", task_state)
    client = FakeAsyncObjectClient(ConnectionError("still waiting"))
    trigger = object_trigger(monkeypatch, client, on_kill_action="delete")
    await trigger.note_start()
    await trigger.on_kill()
    assert client.cancelled == ["PyTorchJob ns/j"] * deleted


async def test_kfp_trigger_on_kill_terminates_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    terminated: list[str] = []

    class Client(FakeAsyncKfp):
        async def terminate_run(self, run_id: str) -> None:
            terminated.append(run_id)

    client = Client(["RUNNING"])
    monkeypatch.setattr(KubeflowPipelineRunTrigger, "_kfp_client", lambda self: client)
    await KubeflowPipelineRunTrigger(
        run_id="r9", deadline=time.time() + 30, on_kill_action="delete"
    ).on_kill()
    await KubeflowPipelineRunTrigger(run_id="r8", deadline=time.time() + 30).on_kill()  # keep is the default
    assert terminated == ["r9"] and client.closed


HOLD = 0.4


@pytest.mark.parametrize("outcome", [Outcome("succeeded", "", ""), ConnectionError("api down")])
async def test_object_trigger_holds_its_event_until_fire_not_before(
    monkeypatch: pytest.MonkeyPatch, outcome: Outcome | Exception
) -> None:
    # A job done at once still fires no earlier than fire_not_before (Airflow's defer-exit race).
    client = FakeAsyncObjectClient(outcome)
    fire_not_before = time.time() + HOLD
    events = await collect(object_trigger(monkeypatch, client, fire_not_before=fire_not_before))
    assert len(events) == 1 and time.time() >= fire_not_before
    assert len(client.waits) == 1


async def test_kfp_trigger_holds_its_event_until_fire_not_before(monkeypatch: pytest.MonkeyPatch) -> None:
    fire_not_before = time.time() + HOLD
    events = await collect(
        kfp_trigger(monkeypatch, FakeAsyncKfp(["SUCCEEDED"]), fire_not_before=fire_not_before)
    )
    assert [e.payload["status"] for e in events] == ["succeeded"] and time.time() >= fire_not_before


async def test_a_passed_fire_not_before_does_not_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    # A trigger re-created after a triggerer restart: the hold has passed, the event comes at once.
    from kubeflow_bridge.triggers import kubeflow as module

    slept: list[float] = []

    async def no_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(module.asyncio, "sleep", no_sleep)
    client = FakeAsyncObjectClient(Outcome("succeeded", "", ""))
    await collect(object_trigger(monkeypatch, client, fire_not_before=time.time() - 1))
    await collect(object_trigger(monkeypatch, client, fire_not_before=None))
    assert slept == []
    await collect(object_trigger(monkeypatch, client, fire_not_before=time.time() + 30))
    assert len(slept) == 1 and 29 < slept[0] <= 30


def test_the_fire_delay_is_an_airflow_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.exceptions import AirflowConfigException

    from kubeflow_bridge.triggers.kubeflow import FIRE_DELAY_SECONDS, fire_time_for_deferral

    monkeypatch.delenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", raising=False)
    assert fire_time_for_deferral() - time.time() == pytest.approx(FIRE_DELAY_SECONDS, abs=1)
    monkeypatch.setenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", "0")
    assert fire_time_for_deferral() <= time.time()
    monkeypatch.setenv("AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY", "-5")
    with pytest.raises(AirflowConfigException, match=r"trigger_fire_delay must be .* >= 0"):
        fire_time_for_deferral()


async def test_a_deploys_trigger_rolls_a_canary_back_on_kill_and_never_deletes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patches: list[dict[str, Any]] = []

    class Client(FakeAsyncObjectClient):
        async def get(self, kind: Any, name: str, *, namespace: str) -> dict[str, Any]:
            return {"metadata": {"name": name}, "spec": {"predictor": {"canaryTrafficPercent": 20}}}

        async def patch(
            self, kind: Any, name: str, patch: dict[str, Any], *, namespace: str
        ) -> dict[str, Any]:
            patches.append(patch)
            return {}

    client = Client(Outcome("succeeded", "", ""))
    trigger = object_trigger(monkeypatch, client, kind="InferenceService", on_kill_action="rollback")
    await trigger.on_kill()
    assert patches == [{"spec": {"predictor": {"canaryTrafficPercent": 0}}}] and client.cancelled == []
