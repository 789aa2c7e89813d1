"""What every Kubeflow custom-object operator shares: submit once, wait, reattach, cancel.

Flow of one try:

1. Validate the inputs (after templating) and build the manifest: nothing is created if that fails.
2. Create the object under a deterministic name (dag_id, task_id, run_id, map_index) with identity
   labels. A 409 for an object with our identity is a reattach: if it already finished with success,
   the result is returned; if it failed or was cancelled, a retry replaces it with a new one.
3. Remember the name in ``task_state_store`` (Airflow 3.3's ``ResumableJobMixin`` on the sync path).
4. Wait: defer to :class:`KubeflowObjectTrigger` (always with a timeout), or wait on the worker.
5. ``execute_complete`` turns any event but ``succeeded`` into a clear error; a cancelled remote job is
   never a success.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.sdk import BaseOperator, ResumableJobMixin

from kubeflow_bridge.hooks.kubeflow import KubeflowHook, resolve_kind
from kubeflow_bridge.links.base import start_links
from kubeflow_bridge.resources.names import IDENTITY_LABEL, ObjectRef

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context
    from airflow.triggers.base import BaseTrigger

    from kubeflow_bridge.links.base import KubeflowLink
    from kubeflow_bridge.resources.names import Identity

IF_EXISTS_VALUES = ("reattach", "fail", "replace")
ON_KILL_ACTIONS = ("delete", "keep")
#: The task_state_store key holding ``namespace/name`` of the object this task created.
STATE_KEY = "kubeflow_object"


class KubeflowOperatorError(RuntimeError):
    """The remote job did not succeed (failed, cancelled, timed out) or could not be waited for."""


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` when a deployment sets it; True (defer) when it is unset.

    Airflow's own default for the option is False, so "set" means: in the config file or in an
    ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE[_CMD|_SECRET]`` environment variable.
    """
    import configparser
    import os

    from airflow.sdk.configuration import conf

    env = "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"
    explicit = any(name in os.environ for name in (env, f"{env}_CMD", f"{env}_SECRET"))
    explicit = explicit or configparser.ConfigParser.has_option(conf, "operators", "default_deferrable")
    return conf.getboolean("operators", "default_deferrable", fallback=True) if explicit else True


#: The longest timeout or interval accepted (Airflow cannot defer past a timedelta's range; a year is enough).
MAX_SECONDS = 366 * 24 * 3600


def check_choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def as_seconds(field: str, value: Any, *, allow_zero: bool = False) -> float:
    """A positive number of seconds from a number, a numeric string (templated) or a timedelta."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a number of seconds, not {value!r}") from None
    if seconds != seconds or seconds < 0 or (seconds == 0 and not allow_zero):  # NaN != NaN
        raise ValueError(f"{field} must be greater than 0 seconds, not {value!r}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{field} must be at most {MAX_SECONDS} seconds (366 days), not {value!r}")
    return seconds


def as_int(field: str, value: Any, *, minimum: int) -> int:
    """An int from an int or a rendered string; bools and fractions are rejected."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{field} must be an integer >= {minimum}, not {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{field} must be an integer >= {minimum}, not {value!r}") from None
    if number < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, not {value!r}")
    return number


def as_command(field: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValueError(
            f"{field} must be a list of strings (e.g. ['python', '-m', 'trainer']), not a string"
        )
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ValueError(f"{field} must be a list of strings, not {value!r}")
    if not value:
        raise ValueError(f"{field} is an empty list: leave it unset (None) to use the image's default")
    return [str(v) for v in value]


def identity_from_context(context: Context) -> Identity:
    """The task instance's identity (dag_id, task_id, run_id, map_index)."""
    from kubeflow_bridge.resources.names import Identity

    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return Identity.airflow(ti.dag_id, ti.task_id, ti.run_id, -1 if map_index is None else map_index)


def raise_for_event(event: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """Return the event when it says ``succeeded``; raise a clear error for anything else."""
    if not isinstance(event, dict) or "status" not in event:
        raise KubeflowOperatorError(f"{what}: the trigger sent no usable event ({event!r})")
    status = event["status"]
    if status == "succeeded":
        return event
    reason = event.get("reason") or ""
    message = event.get("message") or ""
    hints = {
        "failed": "see the job's logs and events",
        "cancelled": "it was cancelled or deleted outside this task; a cancelled job is never a success",
        "timeout": "raise timeout= or check why it is slow",
        "error": "the wait itself failed (API or connection problem); a retry reattaches",
    }
    raise KubeflowOperatorError(
        f"{what} {status}: {reason} {message}".rstrip() + f" ({hints.get(status, 'unexpected state')})"
    )


def stop_after_timeout(
    operator: Any, event: dict[str, Any] | None, what: str, stop: Callable[[], None]
) -> dict[str, Any] | None:
    """An operator's own timeout ends its job as a kill would (``on_kill_action``): nothing is left
    running that no task waits for. The event's message says what was done."""
    if not (isinstance(event, dict) and event.get("status") == "timeout"):
        return event
    action = getattr(operator, "on_kill_action", "delete")
    if action == "keep":
        note = f"{what} left running (on_kill_action='keep')"
    else:
        try:
            stop()
            note = f"{what} stopped (on_kill_action={action!r})"
        except Exception as exc:  # the timeout is the failure to report; say what could not be done
            note = f"could not stop {what}: {exc}"
    operator.log.warning("timed out: %s", note)
    return {**event, "message": f"{event.get('message') or ''}; {note}".lstrip("; ")}


class KubeflowWaitingOperator(ResumableJobMixin, BaseOperator):
    """Base of the operators that start one remote job and wait for it: the wait settings, the deferral.

    Args:
        kubeflow_conn_id: The ``kubeflow`` connection.
        namespace: Overrides the connection's namespace.
        deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``, else True).
        poll_interval: Seconds between status (and log) reads while waiting on the worker.
        timeout: Seconds to wait before the task fails with a timeout.
        if_exists: What to do when the job this task instance would start already exists (the same
            deterministic name): ``reattach`` (default) waits for the one an earlier try started, unless
            it failed or was cancelled (then a new one starts); ``fail`` raises; ``replace`` deletes it
            and starts a new one. Only ever the task instance's own job: an object with the same name but
            another identity is never touched. Operators refuse a value they cannot honour.
        on_kill_action: What a kill the user asked for does to the job (default per operator, see
            ``on_kill_actions``): ``delete`` it, or ``keep`` it running.
        wait_for_completion: False submits and returns at once.
    """

    external_id_key = STATE_KEY
    #: The ``if_exists`` values this operator honours.
    if_exists_values: ClassVar[tuple[str, ...]] = IF_EXISTS_VALUES
    #: The ``on_kill_action`` values this operator honours; the first is the default.
    on_kill_actions: ClassVar[tuple[str, ...]] = ON_KILL_ACTIONS
    ui_color = "#4285f4"

    def __init__(
        self,
        *,
        kubeflow_conn_id: str = KubeflowHook.default_conn_name,
        namespace: str | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        timeout: float | timedelta = 24 * 3600,
        if_exists: str = "reattach",
        on_kill_action: str | None = None,
        wait_for_completion: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kubeflow_conn_id = kubeflow_conn_id
        self.namespace = namespace
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.poll_interval = as_seconds("poll_interval", poll_interval)
        self.timeout = as_seconds("timeout", timeout)
        self.if_exists = check_choice("if_exists", if_exists, self.if_exists_values)
        self.on_kill_action = check_choice(
            "on_kill_action", on_kill_action or self.on_kill_actions[0], self.on_kill_actions
        )
        self.wait_for_completion = wait_for_completion

    def defer_to(
        self,
        trigger: BaseTrigger,
        method_name: str = "execute_complete",
        kwargs: dict[str, Any] | None = None,
    ) -> NoReturn:
        """Defer to ``trigger``; Airflow's own timeout, a minute past the trigger's deadline, backs it up."""
        self.defer(
            trigger=trigger,
            method_name=method_name,
            kwargs=kwargs,
            timeout=timedelta(seconds=self.timeout + 60),
        )


class KubeflowObjectOperator(KubeflowWaitingOperator):
    """Base of the operators that create one Kubernetes custom object and wait for it.

    Args:
        kubernetes_conn_id: Overrides the connection's cncf ``kubernetes`` connection id.
        name: Object name; default: deterministic from dag_id, task_id, run_id and map_index.
        **kwargs: See :class:`KubeflowWaitingOperator` (connection, namespace, deferrable, timeout, ...).
    """

    template_fields: Sequence[str] = ("name", "namespace", "kubeflow_conn_id", "kubernetes_conn_id")
    kind_name: ClassVar[str] = ""
    link_class: ClassVar[type[KubeflowLink] | None] = None
    #: Longest generated name (children append suffixes such as ``-master-0``).
    name_max_length: ClassVar[int] = 40

    def __init__(
        self, *, kubernetes_conn_id: str | None = None, name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.name = name
        self._resource_name: str | None = None
        self._resource_namespace: str | None = None
        self._submit_generation: int | None = None

    # --- subclass API -------------------------------------------------------------------------
    def given_manifest(self, given: Any, field: str, name: str, namespace: str) -> dict[str, Any]:
        """A copy of a full manifest passed as ``field``, with this task's name and namespace."""
        if not isinstance(given, dict):
            article = "an" if self.kind_name[:1] in "AEIOU" else "a"
            raise ValueError(
                f"{field} must be {article} {self.kind_name} manifest (a dict), not {type(given).__name__}"
            )
        manifest = copy.deepcopy(given)
        metadata = manifest.setdefault("metadata", {})
        if isinstance(metadata, dict):
            metadata.update(name=name, namespace=namespace)
        return manifest

    def build_manifest(self, context: Context, name: str, namespace: str) -> dict[str, Any]:
        """The validated manifest to create (raise ValueError saying what to fix)."""
        raise NotImplementedError

    def build_result(self, obj: dict[str, Any], context: Context) -> Any:
        """The small XCom result from the finished object."""
        raise NotImplementedError

    def min_generation(self, obj: dict[str, Any]) -> int | None:
        """The generation whose terminal state counts (InferenceService), else None."""
        return None

    def after_wait(self, context: Context, name: str, namespace: str) -> None:
        """Called once the wait ended, before results (PyTorchJob prints the master's log)."""

    # --- plumbing -----------------------------------------------------------------------------
    @property
    def hook(self) -> KubeflowHook:
        if not hasattr(self, "_hook"):
            self._hook = KubeflowHook(
                self.kubeflow_conn_id, kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace
            )
        return self._hook

    def object_client(self) -> Any:
        """The sync object client (the seam tests replace)."""
        return self.hook.get_object_client()

    @property
    def kind(self) -> Any:
        return resolve_kind(self.kind_name)

    def _target(self, context: Context) -> tuple[str, str]:
        from kubeflow_bridge.resources._checks import dns1123_label_problem
        from kubeflow_bridge.resources.names import dns1035_problem

        namespace = self.hook.namespace
        problem = dns1123_label_problem(namespace, "namespace")
        if problem:
            raise ValueError(f"namespace: {problem}")
        if self.name:
            problem = dns1035_problem(self.name, 63)
            if problem:
                raise ValueError(f"{self.kind_name} name: {problem}")
            return self.name, namespace
        return identity_from_context(context).resource_name(max_length=self.name_max_length), namespace

    def _classify(self, obj: dict[str, Any] | None, min_generation: int | None = None) -> str:
        """``active``, ``succeeded``, ``failed``, ``cancelled`` or ``missing`` for an object."""
        if obj is None:
            return "missing"
        from kubeflow_bridge.clients.kube.status import classify

        found = classify(self.kind, obj, min_generation=min_generation)
        return "active" if found is None else found.state

    def _if_exists_value(self, value: str) -> Any:
        from kubeflow_bridge.clients.kube import IfExists

        return IfExists(value)

    def submit_job(self, context: Context) -> str:
        """Validate, build and create (or reattach to) the object; return ``namespace/name``."""
        from kubeflow_bridge.resources.names import with_identity

        name, namespace = self._target(context)
        manifest = self.build_manifest(context, name, namespace)
        manifest = with_identity(manifest, identity_from_context(context))
        client = self.object_client()
        result = client.create(
            self.kind, manifest, namespace=namespace, if_exists=self._if_exists_value(self.if_exists)
        )
        obj = result.obj
        if not result.created:
            state = self._classify(obj, self.min_generation(obj))
            if state in ("failed", "cancelled"):
                self.log.info(
                    "%s %s/%s %s before: starting a new one", self.kind_name, namespace, name, state
                )
                obj = client.create(
                    self.kind, manifest, namespace=namespace, if_exists=self._if_exists_value("replace")
                ).obj
            else:
                self.log.info("reattached to %s %s/%s (%s)", self.kind_name, namespace, name, state)
        else:
            self.log.info("created %s %s/%s", self.kind_name, namespace, name)
        self._remember(context, name, namespace, obj)
        return str(ObjectRef(namespace, name))

    def _remember(self, context: Context, name: str, namespace: str, obj: dict[str, Any]) -> None:
        self._resource_name, self._resource_namespace = name, namespace
        self._submit_generation = self.min_generation(obj)
        ti = context["ti"]
        ti.xcom_push(
            key="kubeflow_resource", value={"kind": self.kind_name, "name": name, "namespace": namespace}
        )
        url = None
        if self.link_class is not None:
            url = self.link_class.persist(context, self.hook.dashboard_url, namespace=namespace, name=name)
        who = identity_from_context(context)
        self.log.info(
            "%s %s/%s is this task's (dag %s, task %s, run %s; label %s=%s)%s",
            self.kind_name,
            namespace,
            name,
            who.dag_id,
            who.task_id,
            who.run_id,
            IDENTITY_LABEL,
            who.hash,
            f"; open it at {url}" if url else "",
        )

    def get_job_status(self, external_id: Any, context: Context) -> str:
        ref = ObjectRef.parse(external_id)
        name, namespace = ref.name, ref.namespace
        obj = self.object_client().get(self.kind, name, namespace=namespace)
        return self._classify(obj, self.min_generation(obj) if obj else None)

    def is_job_active(self, status: str) -> bool:
        return status == "active"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "succeeded"

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        """Wait on the worker; raise unless the object succeeded; return the result."""
        ref = ObjectRef.parse(external_id)
        name, namespace = ref.name, ref.namespace
        self._resource_name, self._resource_namespace = name, namespace
        if self._submit_generation is None:
            current = self.object_client().get(self.kind, name, namespace=namespace)
            self._submit_generation = self.min_generation(current) if current else None
        event = self.wait_on_worker(context, name, namespace, self._submit_generation)
        self.after_wait(context, name, namespace)
        self._raise_unless_succeeded(event, name, namespace)
        return self.get_job_result(external_id, context)

    def wait_on_worker(
        self, context: Context, name: str, namespace: str, min_generation: int | None
    ) -> dict[str, Any]:
        """Wait in slices of ``poll_interval`` (so logs can stream); the outcome as a trigger event."""
        event = self._wait_in_slices(context, name, namespace, min_generation, within=None)
        assert event is not None  # without ``within`` the wait ends in an outcome or the timeout
        return event

    def _wait_in_slices(
        self, context: Context, name: str, namespace: str, min_generation: int | None, within: float | None
    ) -> dict[str, Any] | None:
        """:meth:`wait_on_worker`; with ``within``, None once that many seconds passed first."""
        from kubeflow_bridge.clients.kube import created_object_outcome

        client = self.object_client()
        start = time.monotonic()
        deadline = start + self.timeout
        stop = deadline if within is None else min(deadline, start + within)
        while True:
            now = time.monotonic()
            if deadline - now <= 0:
                return {"status": "timeout", "reason": "Timeout", "message": f"after {self.timeout:g}s"}
            if stop - now <= 0:
                return None
            outcome = client.wait(
                self.kind,
                name,
                namespace=namespace,
                timeout=min(self.poll_interval, stop - now),
                min_generation=min_generation,
            )
            self.on_poll(context, name, namespace)
            outcome = created_object_outcome(outcome)
            if outcome.state != "timeout":
                return {"status": outcome.state, "reason": outcome.reason, "message": outcome.message}

    def wait_then_defer(
        self,
        context: Context,
        external_id: str,
        fire_delay: float,
        *,
        min_generation: int | None = None,
        method_name: str = "execute_complete",
    ) -> dict[str, Any]:
        """Wait ``fire_delay`` seconds on the worker, then defer.

        The trigger hold (``fire_delay``) guards a job that ends within that time of its deferral; a job
        that ends within it here needs neither deferral nor hold: its event comes back from this call.
        One still running then is deferred, its trigger held as before (this call does not return).
        """
        ref = ObjectRef.parse(external_id)
        generation = self._submit_generation if min_generation is None else min_generation
        if fire_delay > 0:
            event = self._wait_in_slices(context, ref.name, ref.namespace, generation, within=fire_delay)
            if event is not None:
                return event
        self._defer_wait(external_id, fire_delay, min_generation=min_generation, method_name=method_name)

    def _raise_unless_succeeded(self, event: dict[str, Any] | None, name: str, namespace: str) -> None:
        event = stop_after_timeout(
            self,
            event,
            f"{self.kind_name} {namespace}/{name}",
            lambda: self.object_client().cancel(self.kind, name, namespace=namespace),
        )
        try:
            raise_for_event(event, f"{self.kind_name} {namespace}/{name}")
        except KubeflowOperatorError as err:
            detail = ""
            if isinstance(event, dict) and event.get("status") == "failed":
                try:
                    detail = self.failure_detail(name, namespace)
                except Exception as extra:  # the detail is a courtesy; the failure is what matters
                    self.log.warning("could not read why %s/%s failed: %s", namespace, name, extra)
            if detail:
                raise KubeflowOperatorError(f"{err}\n{detail}") from None
            raise

    def failure_detail(self, name: str, namespace: str) -> str:
        """More about a failure for the error message (PyTorchJob: the failing replica's last log lines)."""
        return ""

    def on_poll(self, context: Context, name: str, namespace: str) -> None:
        """Called after each wait slice on the worker: where the object stands, in the line a trigger
        logs, when it changed or a heartbeat passed (training operators also stream the master's log)."""
        from kubeflow_bridge.triggers.progress import HEARTBEAT, progress_line

        try:
            obj = self.object_client().get(self.kind, name, namespace=namespace)
        except Exception as err:  # progress is a courtesy; never fail the wait for it
            self.log.debug("no progress read for %s/%s: %s", namespace, name, err)
            return
        if obj is None:
            return
        line, now = progress_line(self.kind_name, obj), time.monotonic()
        last_line, last_at = getattr(self, "_progress", ("", 0.0))
        if line != last_line or now - last_at >= HEARTBEAT:
            self.log.info("%s", line)
            self._progress = (line, now)

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        """The result, read once per external id (the mixin asks again after polling returned it)."""
        cached = getattr(self, "_result_cache", None)
        if cached is not None and cached[0] == external_id:
            return cached[1]
        result = self.read_result(external_id, context)
        self._result_cache = (external_id, result)
        return result

    def read_result(self, external_id: Any, context: Context) -> Any:
        """Read the finished object and build the result."""
        ref = ObjectRef.parse(external_id)
        name, namespace = ref.name, ref.namespace
        obj = self.object_client().get(self.kind, name, namespace=namespace)
        if obj is None:
            raise KubeflowOperatorError(
                f"{self.kind_name} {namespace}/{name} is gone; cannot read its result"
            )
        return self.build_result(obj, context)

    # --- Airflow entry points -----------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        start_links(self)  # no link until this try creates something
        if not self.wait_for_completion:
            submitted = self.submit_job(context)
            ref = ObjectRef.parse(submitted)
            name, namespace = ref.name, ref.namespace
            return {"name": name, "namespace": namespace, "state": "submitted"}
        if not self.deferrable:
            return self.execute_resumable(context)
        from kubeflow_bridge.triggers.kubeflow import fire_delay_seconds

        fire_delay = fire_delay_seconds()  # a bad setting fails here, before anything is created
        store = context.get("task_state_store")
        external_id: Any = store.get(self.external_id_key) if store is not None else None
        if external_id:
            status = self.get_job_status(external_id, context)
            if status == "succeeded":
                self.log.info("%s %s already succeeded in an earlier try", self.kind_name, external_id)
                return self.get_job_result(external_id, context)
            if status != "active":
                external_id = None  # failed, cancelled or gone: a real failure, start a new one
        if external_id:
            ref = ObjectRef.parse(external_id)
            name, namespace = ref.name, ref.namespace
            obj = self.object_client().get(self.kind, name, namespace=namespace) or {}
            self._remember(context, name, namespace, obj)
        else:
            external_id = self.submit_job(context)
            if store is not None:
                store.set(self.external_id_key, external_id)
        event = self.wait_then_defer(context, external_id, fire_delay)
        ref = ObjectRef.parse(external_id)
        # Ended on the worker, its log lines streamed while it waited: finish as a resumed task would.
        return self.execute_complete(
            context, {**event, "name": ref.name, "namespace": ref.namespace, "streamed_log_lines": True}
        )

    def _defer_wait(
        self,
        external_id: str,
        fire_delay: float,
        *,
        min_generation: int | None = None,
        method_name: str = "execute_complete",
    ) -> NoReturn:
        from kubeflow_bridge.triggers.kubeflow import KubeflowObjectTrigger, fire_time_for_deferral

        ref = ObjectRef.parse(external_id)
        name, namespace = ref.name, ref.namespace
        self.defer_to(
            KubeflowObjectTrigger(
                kind=self.kind_name,
                name=name,
                namespace=namespace,
                deadline=time.time() + self.timeout,
                kubeflow_conn_id=self.kubeflow_conn_id,
                kubernetes_conn_id=self.kubernetes_conn_id,
                min_generation=self._submit_generation if min_generation is None else min_generation,
                on_kill_action=self.on_kill_action,
                fire_not_before=fire_time_for_deferral(fire_delay),
                progress_interval=self.poll_interval,
            ),
            method_name=method_name,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: raise unless the object succeeded, then read the result."""
        name = (event or {}).get("name") or self._resource_name or ""
        namespace = (event or {}).get("namespace") or self._resource_namespace or ""
        self._resource_name, self._resource_namespace = name, namespace
        self._event = event
        self.after_wait(context, name, namespace)
        self._raise_unless_succeeded(event, name, namespace)
        return self.get_job_result(str(ObjectRef(namespace, name)), context)

    def on_kill(self) -> None:
        """Delete the object (``on_kill_action='delete'``) or leave it running (``keep``)."""
        if not self._resource_name or self.on_kill_action == "keep":
            return
        self.log.info(
            "task killed: deleting %s %s/%s", self.kind_name, self._resource_namespace, self._resource_name
        )
        self.object_client().cancel(self.kind, self._resource_name, namespace=self._resource_namespace)
