"""The canary rollout of a model on KServe: one definition that the Airflow operator and the KFP step run.

Phases, each a function here; a face runs them in order and waits between them in its own way (the KFP
step blocks in :func:`run_rollout`, the Airflow operator defers to a trigger for each wait):

1. :func:`write` creates the InferenceService, or patches the live one with the new predictor and the
   canary percent. The metric annotations the gate reads are not written yet on an update: until the new
   model serves, they keep describing the model that does.
2. Wait until the generation just written is Ready (an older revision being Ready does not count).
   :func:`check_ready` judges how that wait ended; a canary that never became Ready is rolled back.
3. :func:`smoke` sends the smoke request to the new revision; :func:`canary_answered` is the one
   definition of a good answer. A failed smoke test rolls the canary back.
4. :func:`finish` promotes the canary (all traffic to the new revision) and records the metrics, and
   returns the generation to wait for; :func:`check_promoted` judges that second wait.

A rollback sets the canary to 0 %: the previous revision takes all traffic again. Nothing here ever
deletes an InferenceService.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Requests a smoke test may send through a canary split before one reaches the new revision.
SMOKE_ATTEMPTS = 50
#: Header naming the revision that answered (the local runtime's proxy; KServe raw deployments).
REVISION_HEADER = "x-kserve-revision"


class RolloutFailed(RuntimeError):
    """The new model was not rolled out; the message says why and whether the canary was rolled back."""


class ObjectClient(Protocol):
    """What the rollout needs of :class:`~kubeflow_bridge.clients.kube.KubeflowObjectClient`."""

    def get(self, kind: Any, name: str, *, namespace: str) -> dict[str, Any] | None: ...

    def create(self, kind: Any, body: dict[str, Any], *, namespace: str) -> Any: ...

    def patch(self, kind: Any, name: str, patch: dict[str, Any], *, namespace: str) -> dict[str, Any]: ...

    def wait(
        self, kind: Any, name: str, *, namespace: str, timeout: float, min_generation: int | None = None
    ) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """How to roll a model out on one InferenceService.

    Attributes:
        name: The InferenceService (the service clients call).
        namespace: Its namespace.
        canary_percent: Traffic for the new revision while it is tested (updates only; None: all at once).
        record: Annotations to write once the new model serves (the gate's metric annotations).
        smoke_payload: JSON posted to the new revision once Ready; None skips the smoke test.
        model_name: The name the model is served under (fills ``{model_name}`` in ``smoke_path``).
        smoke_path: Path of the smoke request.
        promote: Move all traffic to the new revision after a good smoke test.
        rollback_on_failure: Send all traffic back to the previous revision when the canary fails.
        verify: TLS verification of the smoke request (a bool or a CA bundle path).
    """

    name: str
    namespace: str
    canary_percent: int | None = None
    record: dict[str, str] | None = None
    smoke_payload: Any = None
    model_name: str = "anomaly-vae"
    smoke_path: str = "/v1/models/{model_name}:predict"
    promote: bool = True
    rollback_on_failure: bool = True
    verify: bool | str = True

    def __post_init__(self) -> None:
        if self.canary_percent is not None and not (
            isinstance(self.canary_percent, int) and 0 <= self.canary_percent <= 100
        ):
            raise ValueError(f"canary_percent must be an integer from 0 to 100, not {self.canary_percent!r}")
        if "{model_name}" not in self.smoke_path and not self.smoke_path.startswith("/"):
            raise ValueError(f"smoke_path must be a URL path starting with '/', not {self.smoke_path!r}")

    @property
    def what(self) -> str:
        return f"InferenceService {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Written:
    """What :func:`write` did.

    Attributes:
        action: ``created``, ``patched`` or ``unchanged`` (a retry of this very deploy).
        generation: The generation whose readiness counts.
        obj: The object as written.
    """

    action: str
    generation: int | None
    obj: dict[str, Any]


def _kind() -> Any:
    from kubeflow_bridge.clients.kube import INFERENCESERVICE

    return INFERENCESERVICE


def generation_of(obj: dict[str, Any] | None) -> int | None:
    value = ((obj or {}).get("metadata") or {}).get("generation")
    return int(value) if value is not None else None


def canary_in_flight(obj: dict[str, Any] | None) -> int | None:
    """The canary percent the live spec asks for (None: no canary is being tested)."""
    value = (((obj or {}).get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    return None if value is None else int(value)


def write(client: ObjectClient, rollout: Rollout, manifest: dict[str, Any]) -> Written:
    """Create the InferenceService from ``manifest``, or patch the live one with its predictor."""
    kind = _kind()
    live = client.get(kind, rollout.name, namespace=rollout.namespace)
    if live is None:
        body = copy.deepcopy(manifest)
        meta = body.setdefault("metadata", {})
        meta["annotations"] = {**(meta.get("annotations") or {}), **(rollout.record or {})}
        created = client.create(kind, body, namespace=rollout.namespace)
        obj = created.obj
        return Written("created", generation_of(obj), obj)
    predictor = copy.deepcopy(manifest["spec"]["predictor"])
    # Explicit None removes a canary percent a previous rollout left (merge patch semantics).
    predictor["canaryTrafficPercent"] = rollout.canary_percent
    live_predictor = (live.get("spec") or {}).get("predictor") or {}
    if all(live_predictor.get(k) == v for k, v in predictor.items()):
        return Written("unchanged", generation_of(live), live)
    meta = manifest.get("metadata") or {}
    patch = {
        "metadata": {"labels": meta.get("labels") or {}, "annotations": _without_record(meta, rollout)},
        "spec": {"predictor": predictor},
    }
    obj = client.patch(kind, rollout.name, patch, namespace=rollout.namespace)
    return Written("patched", generation_of(obj), obj)


def _without_record(meta: dict[str, Any], rollout: Rollout) -> dict[str, str]:
    record = rollout.record or {}
    return {k: v for k, v in (meta.get("annotations") or {}).items() if k not in record}


def roll_back(client: ObjectClient, rollout: Rollout, obj: dict[str, Any] | None) -> bool:
    """Send all traffic back to the previous revision when a canary is in flight; True if it did."""
    if not rollout.rollback_on_failure or canary_in_flight(obj) is None:
        return False
    from kubeflow_bridge.resources.kserve import canary_patch

    client.patch(_kind(), rollout.name, canary_patch(0), namespace=rollout.namespace)
    return True


def _fail(client: ObjectClient, rollout: Rollout, obj: dict[str, Any] | None, why: str) -> RolloutFailed:
    rolled_back = roll_back(client, rollout, obj)
    tail = "; rolled back: the previous revision serves all traffic" if rolled_back else ""
    return RolloutFailed(f"{rollout.what}: {why}{tail}")


def check_ready(client: ObjectClient, rollout: Rollout, state: str, message: str) -> dict[str, Any]:
    """Judge the wait for the written generation; roll back and raise unless it became Ready.

    Returns:
        The live object (Ready).

    Raises:
        RolloutFailed: The new revision did not become Ready (or the service is gone).
    """
    obj = client.get(_kind(), rollout.name, namespace=rollout.namespace)
    if obj is None:
        raise RolloutFailed(f"{rollout.what} is gone: it was deleted while the new model rolled out")
    if state != "succeeded":
        raise _fail(client, rollout, obj, f"the new revision did not become Ready ({state}: {message})")
    return obj


@dataclass(frozen=True)
class SmokeVerdict:
    """How one smoke answer is judged: ``ok``, ``other_revision`` (ask again) or ``bad``."""

    verdict: str
    message: str


def canary_answered(
    *,
    status: int,
    served_by: str | None,
    body: str,
    payload: Any,
    expected_revision: str | None,
    direct: bool,
) -> SmokeVerdict:
    """The one definition of "the new model answered the smoke request".

    Args:
        status: The HTTP status.
        served_by: The revision header of the answer (None: the server does not say).
        body: The answer's body.
        payload: What was sent.
        expected_revision: The new revision's name.
        direct: The request went to the new revision's own URL (tag routing), not through the split.
    """
    if not direct and expected_revision and served_by is not None and served_by != expected_revision:
        return SmokeVerdict("other_revision", f"answered by {served_by}, not the new revision")
    if status >= 400:
        return SmokeVerdict("bad", f"answered {status}: {body[:300]}")
    try:
        answer = json.loads(body)
    except ValueError:
        return SmokeVerdict("bad", f"answered {status} with a body that is not JSON: {body[:300]}")
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if isinstance(instances, list):
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(instances):
            return SmokeVerdict("bad", f"answered {body[:300]} (expected one prediction per instance sent)")
    v2_request = isinstance(payload, dict) and "inputs" in payload
    if v2_request and not (isinstance(answer, dict) and isinstance(answer.get("outputs"), list)):
        return SmokeVerdict("bad", f"answered {body[:300]} (expected V2 outputs)")
    return SmokeVerdict("ok", f"answered {status}" + (f" from {served_by}" if served_by else ""))


def smoke(client: ObjectClient, rollout: Rollout, obj: dict[str, Any]) -> str:
    """Send the smoke request to the new revision; ``ok`` or ``skipped``; roll back and raise on failure.

    A canary shares the service URL with the previous revision, so the request goes to the new
    revision's own (tag-routed) URL when the status has one, else it is repeated until an answer comes
    from the new revision (the revision header says which answered).

    Raises:
        RolloutFailed: No good answer from the new revision.
    """
    if rollout.smoke_payload is None:
        return "skipped"
    import httpx

    from kubeflow_bridge.clients.kube.results import isvc_endpoint

    endpoint = isvc_endpoint(obj)
    latest = next((t for t in endpoint.traffic if t.get("latestRevision")), {})
    direct = bool(latest.get("url"))
    base = latest.get("url") or endpoint.url
    if not base:
        raise _fail(client, rollout, obj, "it is Ready but has no status.url to send the smoke request to")
    expected = latest.get("revisionName") or endpoint.latest_ready_revision
    target = base.rstrip("/") + rollout.smoke_path.format(model_name=rollout.model_name)
    verdict = SmokeVerdict("other_revision", "")
    with httpx.Client(timeout=30, verify=rollout.verify) as http:
        for _ in range(SMOKE_ATTEMPTS):
            try:
                response = http.post(target, json=rollout.smoke_payload)
            except httpx.HTTPError as err:
                raise _fail(client, rollout, obj, f"smoke request to {target} failed: {err}") from err
            verdict = canary_answered(
                status=response.status_code,
                served_by=response.headers.get(REVISION_HEADER),
                body=response.text,
                payload=rollout.smoke_payload,
                expected_revision=expected,
                direct=direct,
            )
            if verdict.verdict != "other_revision":
                break
    if verdict.verdict == "other_revision":
        why = f"no smoke answer came from the new revision {expected} in {SMOKE_ATTEMPTS} requests"
        raise _fail(client, rollout, obj, why)
    if verdict.verdict == "bad":
        raise _fail(client, rollout, obj, f"smoke request to {target} {verdict.message}")
    return "ok"


def finish(client: ObjectClient, rollout: Rollout, obj: dict[str, Any]) -> int | None:
    """Promote a canary and record the metrics; the generation to wait for (None: nothing to wait for)."""
    kind = _kind()
    record = dict(rollout.record or {})
    if canary_in_flight(obj) is not None:
        if not rollout.promote:
            return None  # the canary stays as it is; the metrics still describe the serving model
        patch: dict[str, Any] = {"spec": {"predictor": {"canaryTrafficPercent": None}}}
        if record:
            patch["metadata"] = {"annotations": record}
        promoted = client.patch(kind, rollout.name, patch, namespace=rollout.namespace)
        return generation_of(promoted)
    annotations = ((obj.get("metadata") or {}).get("annotations")) or {}
    if record and any(annotations.get(k) != v for k, v in record.items()):
        client.patch(kind, rollout.name, {"metadata": {"annotations": record}}, namespace=rollout.namespace)
    return None


def check_promoted(rollout: Rollout, state: str, message: str) -> None:
    """Judge the wait after promotion.

    Raises:
        RolloutFailed: The promoted generation did not become Ready.
    """
    if state != "succeeded":
        raise RolloutFailed(f"promoting {rollout.what} did not become Ready ({state}: {message})")


def result(obj: dict[str, Any], *, smoke_status: str, promoted: bool) -> dict[str, Any]:
    """The rollout's small result (XCom / KFP output)."""
    from kubeflow_bridge.clients.kube.results import isvc_endpoint

    endpoint = isvc_endpoint(obj)
    meta = obj.get("metadata") or {}
    return {
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "url": endpoint.url,
        "ready": endpoint.ready,
        "traffic": endpoint.traffic,
        "generation": generation_of(obj),
        "promoted": promoted,
        "smoke_status": smoke_status,
    }


def run_rollout(
    client: ObjectClient, rollout: Rollout, manifest: dict[str, Any], *, timeout: float
) -> dict[str, Any]:
    """All phases, blocking in each wait (the KFP step; Airflow defers between the same phases)."""
    kind = _kind()
    written = write(client, rollout, manifest)
    log.info("%s %s (generation %s)", rollout.what, written.action, written.generation)
    outcome = client.wait(
        kind, rollout.name, namespace=rollout.namespace, timeout=timeout, min_generation=written.generation
    )
    obj = check_ready(client, rollout, outcome.state, outcome.message)
    smoke_status = smoke(client, rollout, obj)
    promote_generation = finish(client, rollout, obj)
    if promote_generation is not None:
        outcome = client.wait(
            kind,
            rollout.name,
            namespace=rollout.namespace,
            timeout=timeout,
            min_generation=promote_generation,
        )
        check_promoted(rollout, outcome.state, outcome.message)
    final = client.get(kind, rollout.name, namespace=rollout.namespace) or obj
    return result(final, smoke_status=smoke_status, promoted=promote_generation is not None)
