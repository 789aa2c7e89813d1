"""``ModelGateBranchOperator``: deploy only a model that clears a threshold and beats the serving one.

The rules are the workflow's gate (:mod:`kubeflow_bridge.workflow.gate`), the same the KFP pipeline
applies: not evaluable against labels -> the no-labels policy decides; no valid score -> skip; below the
threshold -> skip; not better than the best baseline by the margin -> skip; not better than the serving
model (re-scored on the same test split, or its score recorded on the live InferenceService) -> skip;
else deploy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator

from kubeflow_bridge.hooks.kubeflow import KubeflowHook, resolve_kind

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context


class ModelGateBranchOperator(BaseBranchOperator):
    """Branch to ``deploy_task_ids`` when the new model is good enough, else to ``skip_task_ids``.

    Args:
        metric_value: The new model's metric (templated, e.g. ``"{{ ti.xcom_pull('evaluate')['f1'] }}"``).
        threshold: The value the metric must clear.
        metric_name: The metric's name (the annotation key suffix on the live InferenceService).
        service_name: The live InferenceService whose recorded metric must be beaten (None: threshold only).
        deploy_task_ids: Task id(s) to follow when deploying.
        skip_task_ids: Task id(s) to follow otherwise (empty: skip everything downstream).
        baseline_value: The best baseline's metric on the same split (templated; empty: no baseline rule).
        baseline_margin: How much the model must beat the baseline by (templated, >= 0).
        serving_value: The serving model's metric re-scored on the new model's test split (templated;
            empty: compare with the metric recorded on the live InferenceService).
        evaluable: False when the evaluation had no labels (templated; ``"False"`` counts as false).
        no_labels_policy: ``never``, ``if_nothing_serves`` or ``always``: what to do when not evaluable.
        higher_is_better: False for losses.
        kubeflow_conn_id: The ``kubeflow`` connection.
        namespace: Overrides the connection's namespace.
    """

    template_fields: Sequence[str] = (
        "metric_value",
        "threshold",
        "baseline_value",
        "baseline_margin",
        "serving_value",
        "evaluable",
        "no_labels_policy",
        "service_name",
        "namespace",
    )

    def __init__(
        self,
        *,
        metric_value: Any,
        threshold: float | str,
        metric_name: str,
        deploy_task_ids: str | Iterable[str],
        skip_task_ids: str | Iterable[str] = (),
        service_name: str | None = None,
        baseline_value: Any = None,
        baseline_margin: float | str = 0.0,
        serving_value: Any = None,
        evaluable: bool | str = True,
        no_labels_policy: str = "if_nothing_serves",
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
        self.baseline_value = baseline_value
        self.baseline_margin = baseline_margin
        self.serving_value = serving_value
        self.evaluable = evaluable
        self.no_labels_policy = no_labels_policy
        self.higher_is_better = higher_is_better
        self.kubeflow_conn_id = kubeflow_conn_id
        self.namespace = namespace

    def object_client(self) -> Any:
        """The sync object client (the seam tests replace)."""
        return KubeflowHook(self.kubeflow_conn_id, namespace=self.namespace).get_object_client()

    def live_service(self) -> dict[str, Any] | None:
        """The live InferenceService (None: no service name, or nothing serves)."""
        from kubeflow_bridge.resources.names import dns1035_problem

        if not self.service_name:
            return None
        if problem := dns1035_problem(str(self.service_name), 63):
            raise ValueError(f"service_name: {problem}")
        namespace = KubeflowHook(self.kubeflow_conn_id, namespace=self.namespace).namespace
        live: dict[str, Any] | None = self.object_client().get(
            resolve_kind("InferenceService"), self.service_name, namespace=namespace
        )
        return live

    def choose_branch(self, context: Context) -> str | Iterable[str]:
        from kubeflow_bridge.workflow.gate import as_flag, as_score, as_threshold, decide, serving_to_beat

        metric = as_score("metric_value", self.metric_value)
        threshold = as_threshold(self.threshold)
        margin = as_score("baseline_margin", self.baseline_margin) or 0.0
        live = self.live_service()
        rescored = as_score("serving_value", self.serving_value)
        decision = decide(
            metric,
            threshold,
            serving_to_beat(live, self.metric_name, rescored),
            baseline=as_score("baseline_value", self.baseline_value),
            baseline_margin=margin,
            evaluable=as_flag("evaluable", self.evaluable),
            no_labels_policy=str(self.no_labels_policy),
            serving_exists=live is not None,
            higher_is_better=self.higher_is_better,
            metric=self.metric_name,
        )
        self.log.info(
            "model gate: %s -> %s (decided by: %s)",
            decision.reason,
            "deploy" if decision.deploy else "skip",
            decision.decided_by,
        )
        context["ti"].xcom_push(key="gate", value=decision.as_dict())
        return self.deploy_task_ids if decision.deploy else self.skip_task_ids
