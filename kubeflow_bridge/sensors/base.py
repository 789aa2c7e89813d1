"""Sensors that wait for an existing Kubeflow object (created elsewhere) to finish.

``poke`` reads the object once; a failed or cancelled object fails the sensor at once (it will never
succeed). In deferrable mode the sensor hands the wait to :class:`KubeflowObjectTrigger`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseSensorOperator

from kubeflow_bridge.hooks.kubeflow import KubeflowHook, resolve_kind
from kubeflow_bridge.operators._base import KubeflowOperatorError, default_deferrable, raise_for_event

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context


class KubeflowObjectSensor(BaseSensorOperator):
    """Wait until a custom object succeeds; fail when it fails, is cancelled or deleted.

    Args:
        name: The object's name.
        namespace: Overrides the connection's namespace.
        kubeflow_conn_id: The ``kubeflow`` connection.
        kubernetes_conn_id: Overrides the connection's cncf ``kubernetes`` connection id.
        deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``, else True).
        **kwargs: BaseSensorOperator arguments (``poke_interval``, ``timeout``, ``mode`` ...).
    """

    template_fields: Sequence[str] = ("name", "namespace", "kubeflow_conn_id")
    kind_name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        name: str,
        namespace: str | None = None,
        kubeflow_conn_id: str = KubeflowHook.default_conn_name,
        kubernetes_conn_id: str | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.namespace = namespace
        self.kubeflow_conn_id = kubeflow_conn_id
        self.kubernetes_conn_id = kubernetes_conn_id
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)

    @property
    def hook(self) -> KubeflowHook:
        return KubeflowHook(
            self.kubeflow_conn_id, kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace
        )

    def object_client(self) -> Any:
        """The sync object client (the seam tests replace)."""
        return self.hook.get_object_client()

    def _min_generation(self, obj: dict[str, Any]) -> int | None:
        return None

    def poke(self, context: Context) -> bool:
        from kubeflow_bridge.clients.kube.status import classify

        kind = resolve_kind(self.kind_name)
        namespace = self.hook.namespace
        obj = self.object_client().get(kind, self.name, namespace=namespace)
        what = f"{self.kind_name} {namespace}/{self.name}"
        if obj is None:
            raise KubeflowOperatorError(f"{what} does not exist: check the name and namespace")
        found = classify(kind, obj, min_generation=self._min_generation(obj))
        if found is None:
            return False
        raise_for_event({"status": found.state, "reason": found.reason, "message": found.message}, what)
        return True

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        from kubeflow_bridge.triggers.kubeflow import KubeflowObjectTrigger, fire_time_for_deferral

        self.defer(
            trigger=KubeflowObjectTrigger(
                kind=self.kind_name,
                name=self.name,
                namespace=self.hook.namespace,
                deadline=time.time() + float(self.timeout),
                kubeflow_conn_id=self.kubeflow_conn_id,
                kubernetes_conn_id=self.kubernetes_conn_id,
                fire_not_before=fire_time_for_deferral(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        raise_for_event(event, f"{self.kind_name} {self.name}")
