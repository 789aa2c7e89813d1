"""``KServeDeployOperator``: create or update an InferenceService, canary, smoke test, promote or roll back.

An InferenceService is a long-lived service, so its name is chosen by the user (it is what clients
call) rather than derived from the task. Each deploy writes the spec and waits until the generation it
wrote is Ready: an old revision being Ready does not count.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kubeflow_bridge.links.kserve import InferenceServiceLink
from kubeflow_bridge.operators._base import KubeflowObjectOperator, KubeflowOperatorError, as_int

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

#: Requests a smoke test may send through a canary split before one reaches the new revision.
SMOKE_ATTEMPTS = 50
#: Header with the revision that answered (KServe's local proxy; Knative's queue-proxy).
REVISION_HEADER = "x-kserve-revision"
#: Annotation prefix under which a deploy records model metrics (the gate compares against them).
METRIC_ANNOTATION_PREFIX = "kubeflow-bridge.io/metric."


def metric_annotation(metric: str) -> str:
    """The annotation key holding ``metric`` of the model an InferenceService serves."""
    return f"{METRIC_ANNOTATION_PREFIX}{metric}"


class SmokeTestError(KubeflowOperatorError):
    """The new model did not answer the smoke request correctly."""


class KServeDeployOperator(KubeflowObjectOperator):
    """Deploy a model on KServe: create the InferenceService or patch the live one.

    Args:
        name: The InferenceService name (required; the service clients call).
        image: Custom predictor image (the trainer image serving ``model_uri``).
        model_uri: The model the trainer's ``serve`` step loads.
        model_name: Name the model is served under.
        storage_uri: Instead of ``image``: a model KServe's runtimes serve.
        model_format: With ``storage_uri``: the model format.
        inference_service: A full InferenceService manifest instead of the fields above.
        canary_traffic_percent: Route this percent to the new revision (only when updating).
        smoke_payload: JSON posted to the new model after it is Ready; None skips the smoke test.
        smoke_path: Path of the smoke request (``{model_name}`` is filled in).
        promote: After a good smoke test, move all traffic to the new revision.
        rollback_on_failure: On a failed smoke test, send all traffic back to the previous revision.
        metrics: Model metrics to record as annotations (the model gate reads them).
        **kwargs: See :class:`KubeflowObjectOperator`.

    Returns:
        ``{"name", "namespace", "url", "ready", "traffic", "generation", "promoted", "smoke_status"}``.
    """

    template_fields: Sequence[str] = (
        *KubeflowObjectOperator.template_fields,
        "image",
        "model_uri",
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

    def __init__(
        self,
        *,
        name: str,
        image: str | None = None,
        model_uri: str | None = None,
        model_name: str = "anomaly-vae",
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
        super().__init__(name=name, **kwargs)
        self.image = image
        self.model_uri = model_uri
        self.model_name = model_name
        self.storage_uri = storage_uri
        self.model_format = model_format
        self.inference_service = inference_service
        self.canary_traffic_percent = canary_traffic_percent
        self.smoke_payload = smoke_payload
        self.smoke_path = smoke_path
        self.promote = promote
        self.rollback_on_failure = rollback_on_failure
        self.metrics = metrics
        self._canary: int | None = None

    def _target(self, context: Context) -> tuple[str, str]:
        if not self.name:
            raise ValueError("name is required: the InferenceService name clients call (e.g. 'anomaly-vae')")
        return super()._target(context)

    def min_generation(self, obj: dict[str, Any]) -> int | None:
        generation = (obj.get("metadata") or {}).get("generation")
        return int(generation) if generation is not None else None

    def build_manifest(self, context: Context, name: str, namespace: str) -> dict[str, Any]:
        from kubeflow_bridge.resources import kserve

        self._canary = (
            None
            if self.canary_traffic_percent in (None, "")
            else as_int("canary_traffic_percent", self.canary_traffic_percent, minimum=0)
        )
        if self._canary is not None and self._canary > 100:
            raise ValueError(f"canary_traffic_percent must be between 0 and 100, not {self._canary}")
        annotations = {metric_annotation(k): str(v) for k, v in (self.metrics or {}).items()}
        if self.inference_service is not None:
            if not isinstance(self.inference_service, dict):
                raise ValueError("inference_service must be an InferenceService manifest (a dict)")
            manifest = copy.deepcopy(self.inference_service)
            metadata = manifest.setdefault("metadata", {})
            metadata.update(name=name, namespace=namespace)
            metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
            kserve.validate_inference_service(manifest)
            return manifest
        if bool(self.image) == bool(self.storage_uri):
            raise ValueError("set exactly one of image (+ model_uri) or storage_uri (+ model_format)")
        return kserve.build_inference_service(
            name=name,
            namespace=namespace,
            image=self.image,
            model_uri=self.model_uri,
            model_name=self.model_name,
            storage_uri=self.storage_uri,
            model_format=self.model_format,
            annotations=annotations,
        )

    def submit_job(self, context: Context) -> str:
        """Create the InferenceService, or patch the live one with the new spec (and canary percent)."""
        from kubeflow_bridge.operators._base import identity_from_context
        from kubeflow_bridge.resources.names import with_identity

        name, namespace = self._target(context)
        manifest = with_identity(
            self.build_manifest(context, name, namespace), identity_from_context(context)
        )
        client = self.object_client()
        live = client.get(self.kind, name, namespace=namespace)
        if live is None:
            obj = client.create(
                self.kind, manifest, namespace=namespace, if_exists=self._if_exists_value(self.if_exists)
            ).obj
            self.log.info("created InferenceService %s/%s", namespace, name)
        else:
            if self.if_exists == "fail":
                raise KubeflowOperatorError(
                    f"InferenceService {namespace}/{name} exists and if_exists='fail'; use 'reattach' to update it"
                )
            predictor = copy.deepcopy(manifest["spec"]["predictor"])
            if self._canary is not None:
                predictor["canaryTrafficPercent"] = self._canary
            patch = {
                "metadata": {
                    "labels": manifest["metadata"].get("labels", {}),
                    "annotations": manifest["metadata"].get("annotations", {}),
                },
                "spec": {"predictor": predictor},
            }
            live_predictor = (live.get("spec") or {}).get("predictor") or {}
            if all(live_predictor.get(k) == v for k, v in predictor.items()):
                obj = live  # a retry of this very deploy: the spec is already written
                self.log.info("InferenceService %s/%s already has this spec; waiting", namespace, name)
            else:
                obj = client.patch(self.kind, name, patch, namespace=namespace)
                self.log.info("patched InferenceService %s/%s (canary=%s)", namespace, name, self._canary)
        self._remember(context, name, namespace, obj)
        return f"{namespace}/{name}"

    def _smoke(
        self, url: str | None, latest_revision: str | None = None, latest_url: str | None = None
    ) -> str:
        """POST the smoke payload to the new revision; return ``ok`` or raise :class:`SmokeTestError`.

        A canary shares the service URL with the previous revision, so the request goes to the latest
        revision's own (tag-routed) URL when the status has one; otherwise it is repeated until an answer
        carries ``x-kserve-revision: <latest revision>`` (or, without that header, the first answer counts).
        """
        import httpx

        base = latest_url or url
        if not base:
            raise SmokeTestError("the InferenceService has no status.url to send the smoke request to")
        target = base.rstrip("/") + self.smoke_path.format(model_name=self.model_name)
        with httpx.Client(timeout=30, verify=False) as http:
            for _ in range(SMOKE_ATTEMPTS):
                try:
                    response = http.post(target, json=self.smoke_payload)
                except httpx.HTTPError as err:
                    raise SmokeTestError(f"smoke request to {target} failed: {err}") from err
                served_by = response.headers.get(REVISION_HEADER)
                if latest_url or not latest_revision or served_by is None or served_by == latest_revision:
                    break
            else:
                raise SmokeTestError(
                    f"no smoke answer came from the new revision {latest_revision} in {SMOKE_ATTEMPTS} requests"
                )
        if response.status_code >= 400:
            raise SmokeTestError(
                f"smoke request to {target} answered {response.status_code}: {response.text[:300]}"
            )
        return "ok"

    def read_result(self, external_id: Any, context: Context) -> Any:
        from kubeflow_bridge.clients.results import isvc_endpoint
        from kubeflow_bridge.resources.kserve import canary_patch

        name, namespace = self._split(external_id)
        client = self.object_client()
        obj = client.get(self.kind, name, namespace=namespace)
        if obj is None:
            raise KubeflowOperatorError(f"InferenceService {namespace}/{name} is gone")
        endpoint = isvc_endpoint(obj)
        canary = ((obj.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
        smoke_status = "skipped"
        promoted = False
        if self.smoke_payload is not None:
            try:
                latest = next((t for t in endpoint.traffic if t.get("latestRevision")), {})
                smoke_status = self._smoke(
                    endpoint.url,
                    latest.get("revisionName") or endpoint.latest_ready_revision,
                    latest.get("url"),
                )
            except SmokeTestError:
                if canary is not None and self.rollback_on_failure:
                    self.log.warning(
                        "smoke test failed: rolling %s/%s back to the previous revision", namespace, name
                    )
                    client.patch(self.kind, name, canary_patch(0), namespace=namespace)
                raise
        if canary is not None and self.promote:
            promoted_obj = client.patch(self.kind, name, canary_patch(None), namespace=namespace)
            outcome = client.wait(
                self.kind,
                name,
                namespace=namespace,
                timeout=self.timeout,
                min_generation=self.min_generation(promoted_obj),
            )
            if outcome.state != "succeeded":
                raise KubeflowOperatorError(
                    f"promoting {namespace}/{name} did not become Ready: {outcome.state} {outcome.message}"
                )
            obj = client.get(self.kind, name, namespace=namespace) or promoted_obj
            endpoint = isvc_endpoint(obj)
            promoted = True
        return {
            "name": name,
            "namespace": namespace,
            "url": endpoint.url,
            "ready": endpoint.ready,
            "traffic": endpoint.traffic,
            "generation": self.min_generation(obj),
            "promoted": promoted,
            "smoke_status": smoke_status,
        }

    def build_result(
        self, obj: dict[str, Any], context: Context
    ) -> Any:  # pragma: no cover - see get_job_result
        raise NotImplementedError
