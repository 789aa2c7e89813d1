"""``ModelGateBranchOperator``: deploy only a model that clears a threshold and beats the serving one.

The serving model's metric is the annotation ``kubeflow-bridge.io/metric.<name>`` that
:class:`~kubeflow_bridge.operators.kserve.KServeDeployOperator` records on the live InferenceService.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator

from kubeflow_bridge.hooks.kubeflow import KubeflowHook, resolve_kind
from kubeflow_bridge.operators.kserve import metric_annotation

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a number (after templating), not {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{field} must be a number, not NaN")
    return number


def gate_decision(
    metric: float, threshold: float, serving: float | None, *, higher_is_better: bool = True
) -> tuple[bool, str]:
    """Whether to deploy, and why (pure; the operator and ``@task.branch`` helpers share it)."""
    better = (lambda a, b: a > b) if higher_is_better else (lambda a, b: a < b)
    clears = metric >= threshold if higher_is_better else metric <= threshold
    if not clears:
        return False, f"metric {metric:g} does not clear the threshold {threshold:g}"
    if serving is not None and not better(metric, serving):
        return False, f"metric {metric:g} does not beat the serving model's {serving:g}"
    against = "no serving model" if serving is None else f"serving model {serving:g}"
    return True, f"metric {metric:g} clears {threshold:g} and beats {against}"


class ModelGateBranchOperator(BaseBranchOperator):
    """Branch to ``deploy_task_ids`` when the new model is good enough, else to ``skip_task_ids``.

    Args:
        metric_value: The new model's metric (templated, e.g. ``"{{ ti.xcom_pull('evaluate')['f1'] }}"``).
        threshold: The value the metric must clear.
        metric_name: The metric's name (the annotation key suffix on the live InferenceService).
        service_name: The live InferenceService whose recorded metric must be beaten (None: threshold only).
        deploy_task_ids: Task id(s) to follow when deploying.
        skip_task_ids: Task id(s) to follow otherwise (empty: skip everything downstream).
        higher_is_better: False for losses.
        kubeflow_conn_id: The ``kubeflow`` connection.
        namespace: Overrides the connection's namespace.
    """

    template_fields: Sequence[str] = ("metric_value", "threshold", "service_name", "namespace")

    def __init__(
        self,
        *,
        metric_value: Any,
        threshold: float | str,
        metric_name: str,
        deploy_task_ids: str | Iterable[str],
        skip_task_ids: str | Iterable[str] = (),
        service_name: str | None = None,
        higher_is_better: bool = True,
        kubeflow_conn_id: str = KubeflowHook.default_conn_name,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not metric_name or not isinstance(metric_name, str):
            raise ValueError(
                "metric_name is required (e.g. 'f1'): it names the annotation on the live service"
            )
        self.metric_value = metric_value
        self.threshold = threshold
        self.metric_name = metric_name
        self.deploy_task_ids = deploy_task_ids
        self.skip_task_ids = skip_task_ids
        self.service_name = service_name
        self.higher_is_better = higher_is_better
        self.kubeflow_conn_id = kubeflow_conn_id
        self.namespace = namespace

    def object_client(self) -> Any:
        """The sync object client (the seam tests replace)."""
        return KubeflowHook(self.kubeflow_conn_id, namespace=self.namespace).get_object_client()

    def serving_metric(self) -> float | None:
        """The live InferenceService's recorded metric, or None when there is no live model or record."""
        if not self.service_name:
            return None
        namespace = KubeflowHook(self.kubeflow_conn_id, namespace=self.namespace).namespace
        live = self.object_client().get(
            resolve_kind("InferenceService"), self.service_name, namespace=namespace
        )
        if live is None:
            return None
        recorded = ((live.get("metadata") or {}).get("annotations") or {}).get(
            metric_annotation(self.metric_name)
        )
        if recorded in (None, ""):
            return None
        return _number(f"the serving model's {self.metric_name} annotation", recorded)

    def choose_branch(self, context: Context) -> str | Iterable[str]:
        metric = _number("metric_value", self.metric_value)
        threshold = _number("threshold", self.threshold)
        serving = self.serving_metric()
        deploy, why = gate_decision(metric, threshold, serving, higher_is_better=self.higher_is_better)
        self.log.info("model gate: %s -> %s", why, "deploy" if deploy else "skip")
        context["ti"].xcom_push(
            key="gate", value={"deploy": deploy, "reason": why, "metric": metric, "serving_metric": serving}
        )
        return self.deploy_task_ids if deploy else self.skip_task_ids
