"""``KServeDeployOperator``: roll a model out on KServe with the workflow's canary rollout.

An InferenceService is a long-lived service, so its name is chosen by the user (it is what clients
call) rather than derived from the task. The phases are :mod:`kubeflow_bridge.workflow.rollout`'s, the
same the KFP pipeline runs: write the spec (create, or patch the live service with a canary), wait until
the generation written is Ready, smoke-test the new revision, then promote (wait again) or roll back.
Both waits are deferred to the triggerer (or run on the worker with ``deferrable=False``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kubeflow_bridge.hooks.kubeflow import KubeflowHook, resolve_kind
from kubeflow_bridge.links.base import start_links
from kubeflow_bridge.links.kserve import InferenceServiceLink
from kubeflow_bridge.operators._base import KubeflowObjectOperator, KubeflowOperatorError, as_int
from kubeflow_bridge.resources.names import ObjectRef

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from kubeflow_bridge.workflow.rollout import Rollout


class KServeDeployOperator(KubeflowObjectOperator):
    """Deploy a model on KServe: create the InferenceService or roll a new model out on the live one.

    Args:
        name: The InferenceService name (required; the service clients call).
        image: Custom predictor image (the trainer image serving ``model_uri``).
        model_uri: The model the trainer's ``serve`` step loads.
        model_name: Name the model is served under.
        env_from: The custom container's ``envFrom`` (e.g. the Secret with the model store's credentials).
        storage_uri: Instead of ``image``: a model KServe's runtimes serve.
        model_format: With ``storage_uri``: the model format.
        inference_service: A full InferenceService manifest instead of the fields above.
        canary_traffic_percent: Route this percent to the new revision while it is tested (updates only).
        smoke_payload: JSON posted to the new revision after it is Ready; None skips the smoke test.
        smoke_path: Path of the smoke request (``{model_name}`` is filled in).
        promote: After a good smoke test, move all traffic to the new revision.
        rollback_on_failure: When the canary does not become Ready or fails the smoke test, send all
            traffic back to the previous revision.
        metrics: Model metrics recorded as annotations once the new model serves (the gate reads them).
        **kwargs: See :class:`KubeflowObjectOperator`. ``if_exists``: ``reattach`` (default) rolls the
            model out on the live service, ``fail`` refuses to touch a live service; ``replace`` is
            refused (a deploy never deletes what serves). ``on_kill_action``: ``rollback`` (default: a
            canary in flight is rolled back, the previous revision serves everything) or ``keep``.

    Returns:
        ``{"name", "namespace", "url", "ready", "traffic", "generation", "promoted", "smoke_status"}``.
    """

    template_fields: Sequence[str] = (
        *KubeflowObjectOperator.template_fields,
        "image",
        "model_uri",
        "env_from",
        "storage_uri",
        "inference_service",
        "canary_traffic_percent",
        "smoke_payload",
        "metrics",
    )
    template_fields_renderers = {"inference_service": "json", "smoke_payload": "json", "metrics": "json"}
    kind_name: ClassVar[str] = "InferenceService"
    link_class = InferenceServiceLink
    operator_extra_links = (InferenceServiceLink(),)
    if_exists_values: ClassVar[tuple[str, ...]] = ("reattach", "fail")
    on_kill_actions: ClassVar[tuple[str, ...]] = ("rollback", "keep")

    def __init__(
        self,
        *,
        name: str,
        image: str | None = None,
        model_uri: str | None = None,
        model_name: str = "anomaly-vae",
        env_from: list[dict[str, Any]] | None = None,
        storage_uri: str | None = None,
        model_format: str | None = None,
        inference_service: dict[str, Any] | None = None,
        canary_traffic_percent: int | str | None = None,
        smoke_payload: Any = None,
        smoke_path: str = "/v1/models/{model_name}:predict",
        promote: bool = True,
        rollback_on_failure: bool = True,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("if_exists") == "replace":
            raise ValueError(
                "if_exists='replace' is not offered for KServeDeployOperator: it would delete the serving "
                "InferenceService. Use 'reattach' (roll the new model out on the live service) or 'fail'."
            )
        super().__init__(name=name, **kwargs)
        self.image = image
        self.model_uri = model_uri
        self.model_name = model_name
        self.env_from = env_from
        self.storage_uri = storage_uri
        self.model_format = model_format
        self.inference_service = inference_service
        self.canary_traffic_percent = canary_traffic_percent
        self.smoke_payload = smoke_payload
        self.smoke_path = smoke_path
        self.promote = promote
        self.rollback_on_failure = rollback_on_failure
        self.metrics = metrics

    def _target(self, context: Context) -> tuple[str, str]:
        if not self.name:
            raise ValueError("name is required: the InferenceService name clients call (e.g. 'anomaly-vae')")
        return super()._target(context)

    def min_generation(self, obj: dict[str, Any]) -> int | None:
        from kubeflow_bridge.workflow.rollout import generation_of

        return generation_of(obj)

    def rollout(self, name: str, namespace: str) -> Rollout:
        """The workflow's rollout plan from this operator's (rendered) fields."""
        from kubeflow_bridge.workflow.gate import metric_annotation, metric_record
        from kubeflow_bridge.workflow.rollout import Rollout

        canary = (
            None
            if self.canary_traffic_percent in (None, "")
            else as_int("canary_traffic_percent", self.canary_traffic_percent, minimum=0)
        )
        if canary is not None and canary > 100:
            raise ValueError(f"canary_traffic_percent must be between 0 and 100, not {canary}")
        return Rollout(
            name=name,
            namespace=namespace,
            canary_percent=canary,
            record={metric_annotation(k): metric_record(v) for k, v in (self.metrics or {}).items()},
            smoke_payload=self.smoke_payload,
            model_name=self.model_name,
            smoke_path=self.smoke_path,
            promote=self.promote,
            rollback_on_failure=self.rollback_on_failure,
            verify=self.hook.settings.verify_tls,
        )

    def build_manifest(self, context: Context, name: str, namespace: str) -> dict[str, Any]:
        from kubeflow_bridge.resources import kserve

        if self.inference_service is not None:
            manifest = self.given_manifest(self.inference_service, "inference_service", name, namespace)
            kserve.validate_inference_service(manifest)
            return manifest
        if bool(self.image) == bool(self.storage_uri):
            raise ValueError("set exactly one of image (+ model_uri) or storage_uri (+ model_format)")
        field, location = ("model_uri", self.model_uri) if self.image else ("storage_uri", self.storage_uri)
        problem = kserve.model_location_problem(field, location)
        if problem:
            raise ValueError(problem)
        if not isinstance(self.model_name, str) or not re.fullmatch(
            r"[A-Za-z0-9][-A-Za-z0-9_.]*", self.model_name
        ):
            raise ValueError(
                f"model_name {self.model_name!r} must be letters, digits, '-', '_' or '.' (it is part of the "
                "/v1/models/<name>:predict path), e.g. 'anomaly-vae'"
            )
        return kserve.build_inference_service(
            name=name,
            namespace=namespace,
            image=self.image,
            model_uri=self.model_uri,
            model_name=self.model_name,
            env_from=self.env_from,
            storage_uri=self.storage_uri,
            model_format=self.model_format,
        )

    def submit_job(self, context: Context) -> str:
        """Validate, then write the spec (rollout phase 1); return ``namespace/name``."""
        from kubeflow_bridge.operators._base import identity_from_context
        from kubeflow_bridge.resources.names import with_identity
        from kubeflow_bridge.workflow import rollout

        name, namespace = self._target(context)
        plan = self.rollout(name, namespace)
        manifest = with_identity(
            self.build_manifest(context, name, namespace), identity_from_context(context)
        )
        client = self.object_client()
        if self.if_exists == "fail" and client.get(self.kind, name, namespace=namespace) is not None:
            raise KubeflowOperatorError(
                f"InferenceService {namespace}/{name} exists and if_exists='fail'; use 'reattach' to update it"
            )
        written = rollout.write(client, plan, manifest)
        self.log.info(
            "InferenceService %s/%s %s (generation %s, canary %s)",
            namespace,
            name,
            written.action,
            written.generation,
            plan.canary_percent if written.action != "created" else None,
        )
        self._remember(context, name, namespace, written.obj)
        return str(ObjectRef(namespace, name))

    def execute(self, context: Context) -> Any:
        start_links(self)  # no link until this try creates something
        from kubeflow_bridge.triggers.kubeflow import fire_delay_seconds

        fire_delay = fire_delay_seconds() if self.deferrable else 0.0  # a bad setting creates nothing
        # Writing is idempotent (an unchanged spec is not written again), so a retry runs every phase.
        external_id = self.submit_job(context)
        ref = ObjectRef.parse(external_id)
        name, namespace = ref.name, ref.namespace
        if not self.wait_for_completion:
            return {"name": name, "namespace": namespace, "state": "submitted"}
        if self.deferrable:
            event = self.wait_then_defer(context, external_id, fire_delay, method_name="execute_complete")
        else:
            event = self.wait_on_worker(context, name, namespace, self._submit_generation)
        return self._after_ready(context, name, namespace, event)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """The written generation's wait ended: judge it, smoke-test, then promote (deferred) or finish."""
        name = (event or {}).get("name") or self.name or ""
        namespace = (event or {}).get("namespace") or self.hook.namespace
        self._resource_name, self._resource_namespace = name, namespace
        return self._after_ready(context, name, namespace, event)

    def _after_ready(self, context: Context, name: str, namespace: str, event: dict[str, Any] | None) -> Any:
        from kubeflow_bridge.triggers.kubeflow import fire_delay_seconds
        from kubeflow_bridge.workflow import rollout

        plan = self.rollout(name, namespace)
        client = self.object_client()
        state = (event or {}).get("status", "error")
        try:
            obj = rollout.check_ready(client, plan, state, (event or {}).get("message", ""))
            smoke_status = rollout.smoke(client, plan, obj)
            self.log.info("smoke test of %s/%s: %s", namespace, name, smoke_status)
            promote_generation = rollout.finish(client, plan, obj)
        except rollout.RolloutFailed as err:
            raise KubeflowOperatorError(str(err)) from None
        if promote_generation is None:
            return rollout.result(obj, smoke_status=smoke_status, promoted=False)
        self.log.info("promoting %s/%s: waiting for generation %s", namespace, name, promote_generation)
        if self.deferrable:
            promoted = self.wait_then_defer(
                context,
                str(ObjectRef(namespace, name)),
                fire_delay_seconds(),
                min_generation=promote_generation,
                method_name="execute_promoted",
            )
        else:
            promoted = self.wait_on_worker(context, name, namespace, promote_generation)
        return self._promoted(name, namespace, promoted)

    def execute_promoted(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """The promoted generation's wait ended (second deferral)."""
        name = (event or {}).get("name") or self.name or ""
        namespace = (event or {}).get("namespace") or self.hook.namespace
        return self._promoted(name, namespace, event)

    def _promoted(self, name: str, namespace: str, event: dict[str, Any] | None) -> Any:
        from kubeflow_bridge.workflow import rollout

        plan = self.rollout(name, namespace)
        try:
            rollout.check_promoted(
                plan, (event or {}).get("status", "error"), (event or {}).get("message", "")
            )
        except rollout.RolloutFailed as err:
            raise KubeflowOperatorError(str(err)) from None
        obj = self.object_client().get(self.kind, name, namespace=namespace)
        if obj is None:
            raise KubeflowOperatorError(f"InferenceService {namespace}/{name} is gone after promotion")
        return rollout.result(
            obj, smoke_status="ok" if self.smoke_payload is not None else "skipped", promoted=True
        )

    def on_kill(self) -> None:
        """Roll a canary in flight back (``on_kill_action='rollback'``); never delete a serving service."""
        if not self._resource_name or self.on_kill_action != "rollback":
            return
        from kubeflow_bridge.workflow import rollout

        plan = self.rollout(self._resource_name, self._resource_namespace or self.hook.namespace)
        client = self.object_client()
        live = client.get(self.kind, plan.name, namespace=plan.namespace)
        if rollout.roll_back(client, plan, live):
            self.log.info(
                "task killed: rolled %s/%s back to the previous revision", plan.namespace, plan.name
            )


def serving_model_uri(
    name: str, namespace: str | None = None, kubeflow_conn_id: str = KubeflowHook.default_conn_name
) -> str:
    """The model the live InferenceService ``name`` serves ("" when nothing serves).

    For a template macro: the DAG passes it to evaluate, which re-scores that model on the new one's
    splits so that the gate compares both on the same window.
    """
    from kubeflow_bridge.workflow.gate import serving_model_uri as uri_of

    hook = KubeflowHook(kubeflow_conn_id, namespace=namespace)
    live = hook.get_object_client().get(resolve_kind("InferenceService"), name, namespace=hook.namespace)
    return uri_of(live) or ""
