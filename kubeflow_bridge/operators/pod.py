"""``TrainerPodOperator``: one trainer step (``python -m trainer <step> ...``) in a pod of the trainer image.

A thin wrapper over the cncf provider's ``KubernetesPodOperator`` (imported when the task runs, so DAG
parsing stays cheap). Outputs go to object storage; the small ``TRAINER_SUMMARY`` line the trainer
prints last (step, compute seconds, output URIs, metrics) comes back as the task's XCom, read from the
pod's log rather than through the XCom sidecar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from kubeflow_bridge import workflow

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

#: What a refused or unanswered connection says, at any depth of the exception chain.
_UNREACHABLE_SIGNS = ("Connection refused", "NewConnectionError", "Max retries exceeded")


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause or context) says nothing answers at the API address."""
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{type(seen).__name__}: {seen}"
        if any(sign in text for sign in _UNREACHABLE_SIGNS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _env_from_source(item: dict[str, Any]) -> Any:
    """A ``{"secretRef"|"configMapRef": {...}, "prefix"}`` dict as the pod operator's model."""
    from kubernetes.client import models as k8s

    if not isinstance(item, dict) or not ({"secretRef", "configMapRef"} & set(item)):
        raise ValueError(
            f"env_from entries are {{'secretRef': {{'name': ...}}}} or configMapRef, not {item!r}"
        )
    secret, config_map = item.get("secretRef"), item.get("configMapRef")
    return k8s.V1EnvFromSource(
        prefix=item.get("prefix"),
        secret_ref=k8s.V1SecretEnvSource(**secret) if secret else None,
        config_map_ref=k8s.V1ConfigMapEnvSource(**config_map) if config_map else None,
    )


def _env_var(item: dict[str, Any]) -> Any:
    """A ``{"name", "value"}`` or ``{"name", "valueFrom": {"secretKeyRef"|"configMapKeyRef": ...}}`` dict as
    the pod operator's model."""
    from kubernetes.client import models as k8s

    source = item.get("valueFrom") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not item.get("name") or ("value" in item) == (source is not None):
        raise ValueError(
            f"env_vars entries are {{'name': ..., 'value': ...}} or {{'name': ..., 'valueFrom': "
            f"{{'secretKeyRef': ...}}}}, not {item!r}"
        )
    if source is None:
        return k8s.V1EnvVar(name=item["name"], value=str(item["value"]))
    secret, config_map = source.get("secretKeyRef"), source.get("configMapKeyRef")
    if not (secret or config_map):
        raise ValueError(
            f"env var {item['name']}: valueFrom takes secretKeyRef or configMapKeyRef, not {source!r}"
        )
    return k8s.V1EnvVar(
        name=item["name"],
        value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(**secret) if secret else None,
            config_map_key_ref=k8s.V1ConfigMapKeySelector(**config_map) if config_map else None,
        ),
    )


class TrainerPodOperator(BaseOperator):
    """Run ``python -m trainer <arguments>`` in a pod of the trainer image; return its summary.

    Args:
        arguments: Trainer arguments, starting with the step (templated; must render to a list).
        namespace: Pod namespace (templated).
        image: The trainer image (templated).
        kubernetes_conn_id: The cncf ``kubernetes`` connection.
        startup_timeout_seconds: How long the pod may stay Pending.
        summary_lines: Log lines read back from the end of the pod's log to find the summary.
        env_from: The pod's ``envFrom`` (default: the workflow's storage Secret,
            :func:`kubeflow_bridge.workflow.storage_env_from`, so steps reach the object store).
        env_vars: More env, as Kubernetes env entries (templated; e.g. the workflow's MLflow tracking env,
            whose credentials are ``secretKeyRef`` sources, never values).

    Returns:
        ``{"step", "compute_seconds", "outputs", "metrics", "f_score"}`` from the trainer's summary.
    """

    template_fields: Sequence[str] = ("arguments", "namespace", "image", "env_vars")

    def __init__(
        self,
        *,
        arguments: list[str] | str,
        namespace: str = "default",
        image: str = workflow.TRAINER_IMAGE,
        kubernetes_conn_id: str = "kubernetes_default",
        startup_timeout_seconds: int = 600,
        summary_lines: int = 40,
        env_from: list[dict[str, Any]] | None = None,
        env_vars: list[dict[str, Any]] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.env_vars = env_vars
        self.env_from = workflow.storage_env_from() if env_from is None else env_from
        self.arguments = arguments
        self.namespace = namespace
        self.image = image
        self.kubernetes_conn_id = kubernetes_conn_id
        self.startup_timeout_seconds = startup_timeout_seconds
        self.summary_lines = summary_lines

    def on_kill(self) -> None:
        """A user's kill (or the task's timeout) deletes the running pod, as the pod operator does."""
        pod_operator = getattr(self, "_pod_operator", None)
        if pod_operator is not None:
            pod_operator.on_kill()

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        if not isinstance(self.arguments, list) or not self.arguments:
            raise ValueError(
                f"arguments must render to a non-empty list (the trainer step first), got {self.arguments!r}"
            )
        env_vars = self.env_vars or []
        if not isinstance(env_vars, list):
            raise ValueError(f"env_vars must render to a list of env entries, got {env_vars!r}")
        env = [_env_var(item) for item in env_vars]
        captured: dict[str, str] = {}
        summary_lines = self.summary_lines

        class _SummaryPodOperator(KubernetesPodOperator):
            def post_complete_action(self, *, pod: Any, remote_pod: Any, **kwargs: Any) -> Any:
                # Read the summary before the pod is deleted (the trainer prints it last).
                try:
                    # Raw bytes: the client's str deserialization of log bodies is unreliable.
                    response = self.client.read_namespaced_pod_log(
                        name=pod.metadata.name,
                        namespace=pod.metadata.namespace,
                        container=self.base_container_name,
                        tail_lines=summary_lines,
                        _preload_content=False,
                    )
                    captured["log"] = response.data.decode("utf-8", errors="replace")
                except Exception as exc:  # the pod's own failure is what matters; report it below
                    captured["error"] = str(exc)
                return super().post_complete_action(pod=pod, remote_pod=remote_pod, **kwargs)

        pod = _SummaryPodOperator(
            task_id=self.task_id,
            name=f"trainer-{self.arguments[0]}",
            namespace=self.namespace,
            image=self.image,
            cmds=["python", "-m", "trainer"],
            arguments=[str(a) for a in self.arguments],
            kubernetes_conn_id=self.kubernetes_conn_id,
            env_from=[_env_from_source(item) for item in self.env_from],
            env_vars=env,
            get_logs=True,
            do_xcom_push=False,
            deferrable=False,
            on_finish_action="delete_pod",
            startup_timeout_seconds=self.startup_timeout_seconds,
            labels={"app.kubernetes.io/managed-by": "kubeflow-bridge"},
        )
        self._pod_operator = pod  # on_kill stops the pod it started
        # Run it as the task runner runs an operator (its sentinel), not as a nested call Airflow warns about.
        from airflow.sdk.bases.operator import ExecutorSafeguard

        sentinel = {f"{type(pod).__name__}__sentinel": ExecutorSafeguard.sentinel_value}
        try:
            pod.execute(context, **sentinel)
        except Exception as exc:
            if is_unreachable(exc):
                raise RuntimeError(
                    f"the Kubernetes API of connection {self.kubernetes_conn_id!r} is unreachable ({exc}). "
                    "On this machine start the local runtime: `kubeflow-bridge local up`, then "
                    "`source .state/local/env`; for a cluster, point the connection at its kubeconfig."
                ) from exc
            raise
        if "log" not in captured:
            raise RuntimeError(
                f"could not read the trainer summary from the pod log: {captured.get('error')}"
            )
        summary = workflow.parse_trainer_summary(captured["log"])
        metrics = summary.get("metrics") or {}
        return {
            "step": summary.get("step"),
            "compute_seconds": summary.get("compute_seconds"),
            "outputs": summary.get("outputs", {}),
            "metrics": metrics,
            "f_score": metrics.get(workflow.F_SCORE_METRIC),
        }
