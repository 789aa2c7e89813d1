"""``KubeflowPipelineRunOperator``: start a Kubeflow Pipelines run and wait for it."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kubeflow_bridge.hooks.kubeflow import KubeflowHook
from kubeflow_bridge.links.base import start_links
from kubeflow_bridge.links.kfp import KubeflowPipelineRunLink
from kubeflow_bridge.operators._base import (
    KubeflowOperatorError,
    KubeflowWaitingOperator,
    identity_from_context,
    raise_for_event,
    stop_after_timeout,
)

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

ACTIVE_RUN_STATES = ("pending", "running")
STATE_KEY = "kfp_run_id"


def load_pipeline_spec(path: str) -> Any:
    """Read a compiled pipeline YAML into a ``PipelineDoc`` with errors that name the file."""
    import yaml

    from kubeflow_bridge.resources.kfp import parse_pipeline_yaml

    if not os.path.isfile(path):
        raise ValueError(f"pipeline_package_path {path!r} does not exist: compile the pipeline to YAML first")
    with open(path, "rb") as handle:
        text = handle.read()
    try:
        doc = parse_pipeline_yaml(text)
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(f"pipeline_package_path {path!r}: {err}") from err
    return doc


def compile_pipeline_func(func: Callable[..., Any]) -> Any:
    """Compile a ``@dsl.pipeline`` function on the worker (needs the kfp SDK there)."""
    try:
        from kfp import compiler
    except ImportError:
        raise ValueError(
            "pipeline_func needs the kfp SDK on the Airflow worker, which is not installed here: compile the "
            "pipeline to YAML (kfp.compiler.Compiler().compile(func, 'p.yaml')) and pass pipeline_package_path"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pipeline.yaml")
        compiler.Compiler().compile(func, path)
        return load_pipeline_spec(path)


class KubeflowPipelineRunOperator(KubeflowWaitingOperator):
    """Start a KFP run from a compiled pipeline, a pipeline function or an uploaded pipeline; wait for it.

    Args:
        pipeline_package_path: A compiled pipeline YAML.
        pipeline_func: A ``@dsl.pipeline`` function compiled on the worker (needs kfp there).
        pipeline_id: An uploaded pipeline's id (with ``pipeline_version_id``, else its latest version).
        pipeline_version_id: The uploaded pipeline version.
        parameters: Run parameters (``params`` is Airflow's own DAG params); validated against the pipeline's inputs and cast from rendered strings.
        experiment_name: The experiment the run belongs to (created when missing).
        run_name: The run's display name (default: deterministic from the task instance).
        service_account: Kubernetes service account of the run's pods.
        pipeline_root: Artifact root.
        **kwargs: See :class:`~kubeflow_bridge.operators._base.KubeflowWaitingOperator`: connection,
            namespace, deferrable, poll_interval, timeout, if_exists (``reattach`` to this task
            instance's run, ``fail``, or ``replace``: always a new run), on_kill_action (``delete``
            terminates the run), wait_for_completion.

    Returns:
        ``{"run_id", "state", "output_parameters": {task: {name: value}}}``.
    """

    template_fields: Sequence[str] = (
        "pipeline_package_path",
        "pipeline_id",
        "pipeline_version_id",
        "parameters",
        "experiment_name",
        "run_name",
        "namespace",
        "kubeflow_conn_id",
    )
    template_fields_renderers = {"parameters": "json"}
    external_id_key = STATE_KEY
    operator_extra_links = (KubeflowPipelineRunLink(),)

    def __init__(
        self,
        *,
        pipeline_package_path: str | None = None,
        pipeline_func: Callable[..., Any] | None = None,
        pipeline_id: str | None = None,
        pipeline_version_id: str | None = None,
        parameters: dict[str, Any] | None = None,
        experiment_name: str = "Default",
        run_name: str | None = None,
        service_account: str | None = None,
        pipeline_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        sources = [s for s in (pipeline_package_path, pipeline_func, pipeline_id) if s]
        if len(sources) != 1:
            raise ValueError("set exactly one of pipeline_package_path, pipeline_func or pipeline_id")
        if pipeline_func is not None and not callable(pipeline_func):
            raise ValueError(f"pipeline_func must be a @dsl.pipeline function, not {pipeline_func!r}")
        if pipeline_version_id and not pipeline_id:
            raise ValueError("pipeline_version_id needs pipeline_id")
        self.pipeline_package_path = pipeline_package_path
        self.pipeline_func = pipeline_func
        self.pipeline_id = pipeline_id
        self.pipeline_version_id = pipeline_version_id
        self.parameters = parameters
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.service_account = service_account
        self.pipeline_root = pipeline_root
        self._run_id: str | None = None

    @property
    def hook(self) -> KubeflowHook:
        if not hasattr(self, "_hook"):
            self._hook = KubeflowHook(self.kubeflow_conn_id, namespace=self.namespace)
        return self._hook

    def kfp_client(self) -> Any:
        """The sync KFP client (the seam tests replace)."""
        return self.hook.get_kfp_client()

    # --- building the request (before anything is created) ---------------------------------
    def _params(self) -> dict[str, Any]:
        params = self.parameters
        if isinstance(params, str):  # a rendered JSON string
            try:
                params = json.loads(params)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"parameters must be a mapping (or its JSON), not {self.parameters!r}"
                ) from err
        if params is None:
            return {}
        if not isinstance(params, dict):
            raise ValueError(
                f"parameters must be a mapping of pipeline inputs to values, not {type(params).__name__}"
            )
        return dict(params)

    def build_run_request(self, display_name: str, experiment_id: str | None) -> dict[str, Any]:
        from kubeflow_bridge.resources.kfp import build_run_request

        params = self._params()
        if self.pipeline_id:
            return build_run_request(
                display_name=display_name,
                pipeline_version_reference={
                    "pipeline_id": self.pipeline_id,
                    **({"pipeline_version_id": self.pipeline_version_id} if self.pipeline_version_id else {}),
                },
                parameters=params,
                experiment_id=experiment_id,
                service_account=self.service_account,
                pipeline_root=self.pipeline_root,
            )
        if self.pipeline_package_path:
            doc = load_pipeline_spec(self.pipeline_package_path)
        else:
            assert self.pipeline_func is not None
            doc = compile_pipeline_func(self.pipeline_func)
        return build_run_request(
            display_name=display_name,
            pipeline_spec=doc,
            parameters=params,
            experiment_id=experiment_id,
            service_account=self.service_account,
            pipeline_root=self.pipeline_root,
        )

    def _check_pipeline_exists(self, client: Any) -> None:
        if not self.pipeline_id:
            return
        try:
            versions = client.list_pipeline_versions(self.pipeline_id)
        except Exception as err:
            raise ValueError(
                f"pipeline_id {self.pipeline_id!r} is not known to KFP ({err}): upload it first"
            ) from err
        known = [v.get("pipeline_version_id") for v in (versions or {}).get("pipeline_versions") or []]
        if self.pipeline_version_id and self.pipeline_version_id not in known:
            raise ValueError(
                f"pipeline_version_id {self.pipeline_version_id!r} is not a version of pipeline {self.pipeline_id!r}"
            )

    def _existing_run(
        self, client: Any, display_name: str, experiment_id: str | None
    ) -> dict[str, Any] | None:
        from kubeflow_bridge.clients.kfp import run_state

        found = client.list_runs(
            experiment_id=experiment_id,
            filter=json.dumps(
                {"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": display_name}]}
            ),
        )
        runs = [r for r in (found or {}).get("runs") or [] if r.get("display_name") == display_name]
        usable = [r for r in runs if run_state(r) in (*ACTIVE_RUN_STATES, "succeeded")]
        return usable[0] if usable else None

    def submit_job(self, context: Context) -> str:
        """Validate, then start the run (or reattach to this task instance's run); return its id."""
        display_name = self.run_name or identity_from_context(context).resource_name(max_length=63)
        from kubeflow_bridge.resources._checks import dns1123_label_problem

        if problem := dns1123_label_problem(self.hook.namespace, "namespace"):
            raise ValueError(f"namespace: {problem}")
        for field, value, limit in (
            ("run_name", display_name, 255),
            ("experiment_name", self.experiment_name, 128),  # KFP's Experiment.Name limit
        ):
            if not isinstance(value, str) or not value.strip() or len(value) > limit:
                raise ValueError(
                    f"{field} must be a non-empty string of at most {limit} characters, not {value!r:.80}"
                )
        self.build_run_request(display_name, None)  # validates params and the pipeline before any call
        client = self.kfp_client()
        self._check_pipeline_exists(client)
        experiment = client.get_or_create_experiment(self.experiment_name, namespace=self.hook.namespace)
        experiment_id = experiment.get("experiment_id")
        existing = (
            self._existing_run(client, display_name, experiment_id) if self.if_exists != "replace" else None
        )
        if existing is not None:
            if self.if_exists == "fail":
                raise KubeflowOperatorError(f"a run named {display_name!r} exists and if_exists='fail'")
            run = existing
            self.log.info("reattached to KFP run %s (%s)", run["run_id"], display_name)
        else:
            run = client.create_run(self.build_run_request(display_name, experiment_id))
            self.log.info("started KFP run %s (%s)", run["run_id"], display_name)
        self._remember(context, str(run["run_id"]))
        return str(run["run_id"])

    def _remember(self, context: Context, run_id: str) -> None:
        self._run_id = run_id
        context["ti"].xcom_push(key="run_id", value=run_id)
        url = KubeflowPipelineRunLink.persist(
            context, self.hook.dashboard_url, namespace=self.hook.namespace, name=run_id
        )
        self.log.info("KFP run %s%s", run_id, f"; open it at {url}" if url else "")

    # --- ResumableJobMixin ------------------------------------------------------------------
    def get_job_status(self, external_id: Any, context: Context) -> str:
        from kubeflow_bridge.clients.kfp import run_state

        try:
            state = run_state(self.kfp_client().get_run(str(external_id)))
        except Exception as err:
            self.log.warning("could not read KFP run %s: %s", external_id, err)
            return "missing"
        return "active" if state in ACTIVE_RUN_STATES else state

    def is_job_active(self, status: str) -> bool:
        return status == "active"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "succeeded"

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        run_id = str(external_id)
        self._run_id = run_id
        outcome = self.kfp_client().wait_for_run(
            run_id, timeout=self.timeout, poll_interval=self.poll_interval
        )
        event = {"status": outcome.state, "reason": outcome.reason, "message": outcome.message}
        raise_for_event(self._stop_after_timeout(event, run_id), f"KFP run {run_id}")
        return self.get_job_result(run_id, context)

    def _stop_after_timeout(self, event: dict[str, Any] | None, run_id: str) -> dict[str, Any] | None:
        return stop_after_timeout(
            self, event, f"KFP run {run_id}", lambda: self.kfp_client().terminate_run(run_id)
        )

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        from kubeflow_bridge.clients.kfp import run_output_parameters, run_state

        run = self.kfp_client().get_run(str(external_id))
        return {
            "run_id": str(external_id),
            "state": run_state(run),
            "output_parameters": run_output_parameters(run),
        }

    # --- Airflow entry points -----------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        start_links(self)  # no link until this try creates something
        if not self.wait_for_completion:
            return {"run_id": self.submit_job(context), "state": "submitted", "output_parameters": {}}
        if not self.deferrable:
            return self.execute_resumable(context)
        from kubeflow_bridge.triggers.kfp import KubeflowPipelineRunTrigger
        from kubeflow_bridge.triggers.kubeflow import fire_delay_seconds, fire_time_for_deferral

        fire_delay = fire_delay_seconds()  # a bad setting fails here, before anything is created
        store = context.get("task_state_store")
        run_id: Any = store.get(self.external_id_key) if store is not None else None
        if run_id:
            status = self.get_job_status(run_id, context)
            if status == "succeeded":
                return self.get_job_result(run_id, context)
            if status != "active":
                run_id = None
        if run_id:
            self._remember(context, str(run_id))
        else:
            run_id = self.submit_job(context)
            if store is not None:
                store.set(self.external_id_key, run_id)
        self.defer_to(
            KubeflowPipelineRunTrigger(
                run_id=str(run_id),
                deadline=time.time() + self.timeout,
                kubeflow_conn_id=self.kubeflow_conn_id,
                poll_interval=self.poll_interval,
                on_kill_action=self.on_kill_action,
                fire_not_before=fire_time_for_deferral(fire_delay),
            )
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        run_id = (event or {}).get("run_id") or self._run_id or ""
        raise_for_event(self._stop_after_timeout(event, run_id), f"KFP run {run_id}")
        return self.get_job_result(run_id, context)

    def on_kill(self) -> None:
        if self._run_id and self.on_kill_action == "delete":
            self.log.info("task killed: terminating KFP run %s", self._run_id)
            self.kfp_client().terminate_run(self._run_id)
