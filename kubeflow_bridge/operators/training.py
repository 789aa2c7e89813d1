"""Training jobs: ``PyTorchJobOperator`` (training operator v1), ``TrainJobOperator`` (Kubeflow Trainer v2) and
``TrainingJobOperator`` (either, from a manifest)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kubeflow_bridge.links.training import PyTorchJobLink, TrainJobLink
from kubeflow_bridge.operators._base import KubeflowObjectOperator, as_command, as_int

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from kubeflow_bridge.links.base import KubeflowLink


class _TrainingJobOperator(KubeflowObjectOperator):
    """What the training-job operators share: node 0's (the master's) log streamed to the task log, the
    failing replica's last words in the error, the replica counts as the result."""

    def __init__(self, *, log_lines: int = 200, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log_lines = log_lines
        self._log_offsets: dict[str, int] = {}
        self._last_words: dict[str, str] = {}  # the master's log as last read (pods may be gone later)

    def _refuse_gpus(self, what: str, resources: dict[str, Any] | None) -> None:
        limits = (resources or {}).get("limits") or {}
        if self.hook.settings.gpus_available is False and str(limits.get("nvidia.com/gpu", "0")) not in (
            "0",
            "",
        ):
            raise ValueError(
                f"{what} requests nvidia.com/gpu but connection {self.kubeflow_conn_id!r} says the "
                "cluster has no GPUs (gpus_available=false): set gpus=0 or use a GPU cluster"
            )

    def check_v1_job(self, manifest: dict[str, Any]) -> None:
        """A v1 job (PyTorchJob, TFJob, XGBoostJob, JAXJob, MPIJob) as the training operator's webhook would
        take it, on this cluster's GPUs."""
        from kubeflow_bridge.resources.training import validate_pytorchjob
        from kubeflow_bridge.resources.v1jobs import V1_KINDS, validate_v1

        other = V1_KINDS.get(str(manifest.get("kind")))
        (validate_pytorchjob if other is None else validate_v1)(manifest)
        key = "pytorchReplicaSpecs" if other is None else other.replica_key
        for rtype, replica in (manifest.get("spec", {}).get(key) or {}).items():
            for container in ((replica or {}).get("template") or {}).get("spec", {}).get("containers", []):
                self._refuse_gpus(rtype, container.get("resources"))

    def check_trainjob(self, manifest: dict[str, Any], namespace: str) -> None:
        """A TrainJob as Trainer's webhook would take it, on this cluster's GPUs and runtimes."""
        from kubeflow_bridge.resources.trainjob import validate_trainjob

        validate_trainjob(manifest)
        self._refuse_gpus(
            "the trainer", ((manifest.get("spec") or {}).get("trainer") or {}).get("resourcesPerNode")
        )
        self._check_runtime(manifest, namespace)  # the one read: after the checks that need none

    def _check_runtime(self, manifest: dict[str, Any], namespace: str) -> None:
        """The runtime must exist (the webhook's rule), said before anything is created."""
        from kubeflow_bridge.clients.kube import CLUSTERTRAININGRUNTIME, TRAININGRUNTIME, KubeApiError
        from kubeflow_bridge.resources.trainjob import runtime_ref

        kind_name, name = runtime_ref(manifest)
        kind = TRAININGRUNTIME if kind_name == "TrainingRuntime" else CLUSTERTRAININGRUNTIME
        try:
            found = self.object_client().get(kind, name, namespace=namespace)
        except KubeApiError as err:
            if err.status == 403:  # no right to read runtimes: the webhook still checks at create
                return
            raise
        if found is None:
            where = f" in namespace {namespace!r}" if kind.namespaced else ""
            raise ValueError(
                f"runtime: {kind_name} {name!r} not found{where}: `kubectl get {kind.plural}` lists "
                "the runtimes; set runtime= (and runtime_kind=) to one of them"
            )

    def _read_logs(self, name: str, namespace: str) -> dict[str, str]:
        try:
            return self.object_client().job_logs(self.kind, name, namespace=namespace, role="master")
        except Exception as err:  # logs are a courtesy; never fail the task for them
            self.log.warning("could not read the logs of %s/%s: %s", namespace, name, err)
            return {}

    def on_poll(self, context: Context, name: str, namespace: str) -> None:
        """Where the job stands, then the master's new log lines since the last slice (a wait on the
        worker streams this way)."""
        super().on_poll(context, name, namespace)
        for pod, text in sorted(self._read_logs(name, namespace).items()):
            if text.strip():
                self._last_words[pod] = text
            start = self._log_offsets.get(pod, 0)
            if len(text) < start:  # a restarted pod starts a new log
                start = 0
            new = text[start:]
            self._log_offsets[pod] = len(text)
            for line in new.splitlines():
                self.log.info("[%s] %s", pod, line)

    def after_wait(self, context: Context, name: str, namespace: str) -> None:
        """Print what of the master's log the task log does not hold yet."""
        if not name:
            return
        if not self.deferrable:
            self.on_poll(context, name, namespace)  # the lines since the last slice
            return
        if (getattr(self, "_event", None) or {}).get("streamed_log_lines"):
            return  # the triggerer streamed it live
        for pod, text in sorted(self._read_logs(name, namespace).items()):
            for line in text.splitlines()[-self.log_lines :]:
                self.log.info("[%s] %s", pod, line)

    def failure_detail(self, name: str, namespace: str) -> str:
        from kubeflow_bridge.clients.kube.results import job_outcome

        obj = self.object_client().get(self.kind, name, namespace=namespace)
        if obj is None:
            return ""
        replica_logs = self.object_client().job_logs(self.kind, name, namespace=namespace, role="worker")
        logs = {**replica_logs, **self._read_logs(name, namespace)}
        if not any(text.strip() for text in logs.values()):
            # the pods are gone (v1.9 deletes them on reaching backoffLimit): what was read while waiting
            logs = {**self._last_words, **((getattr(self, "_event", None) or {}).get("last_words") or {})}
        outcome = job_outcome(obj, logs)
        if not outcome.failed_replica and not outcome.log_tail:
            return ""
        who = f"failed replica: {outcome.failed_replica}; " if outcome.failed_replica else ""
        return f"{who}last log lines:\n{outcome.log_tail}"

    def build_result(self, obj: dict[str, Any], context: Context) -> dict[str, Any]:
        from kubeflow_bridge.clients.kube.results import job_outcome

        outcome = job_outcome(obj)
        return {
            "name": outcome.name,
            "namespace": (obj.get("metadata") or {}).get("namespace", ""),
            "kind": self.kind_name,
            "state": outcome.state,
            "reason": outcome.reason,
            # counts only: the selectors the controller writes are large and say nothing new
            "replica_statuses": {
                rtype: {k: v for k, v in (counts or {}).items() if k in ("active", "succeeded", "failed")}
                for rtype, counts in outcome.replica_statuses.items()
            },
        }


class PyTorchJobOperator(_TrainingJobOperator):
    """Create a PyTorchJob and wait for it; the master's log goes to the task log.

    Args:
        image: Container image (the trainer image, e.g. ``kubeflow-bridge/trainer:latest``).
        command: Container command, a list.
        args: Container args, a list.
        env: Environment variables (mapping); a value may be a ``valueFrom`` source
            (``{"secretKeyRef": {"name": ..., "key": ...}}``).
        env_from: Container ``envFrom``: whole Secrets or ConfigMaps as env (``[{"secretRef": {"name": ...}}]``).
        workers: Worker replicas besides the Master (0: master only).
        gpus: ``nvidia.com/gpu`` per replica.
        cpu: CPU request and limit per replica (e.g. ``"2"``).
        memory: Memory request and limit per replica (e.g. ``"4Gi"``).
        nproc_per_node: ``spec.nprocPerNode``.
        backoff_limit: Restarts of failed replicas before the job fails (default 3, so a crash-looping
            replica fails the task with its own last log lines; None: the cluster's default, unbounded
            for ``OnFailure``).
        clean_pod_policy: ``All``, ``Running`` or ``None``.
        restart_policy: Replica restart policy: ``OnFailure`` (restart in place), ``Never``, ``ExitCode``.
        pytorchjob: A full PyTorchJob manifest instead of the fields above (name and identity are set).
        log_lines: Lines of the master's log printed at the end in deferrable mode.
        **kwargs: See :class:`KubeflowObjectOperator` (namespace, deferrable, timeout, if_exists, ...).

    Returns:
        ``{"name", "namespace", "state", "reason", "replica_statuses"}``.
    """

    template_fields: Sequence[str] = (
        *_TrainingJobOperator.template_fields,
        "image",
        "command",
        "args",
        "env",
        "env_from",
        "workers",
        "gpus",
        "cpu",
        "memory",
        "pytorchjob",
    )
    template_fields_renderers = {"pytorchjob": "json", "env": "json"}
    kind_name: ClassVar[str] = "PyTorchJob"
    link_class = PyTorchJobLink
    operator_extra_links = (PyTorchJobLink(),)

    def __init__(
        self,
        *,
        image: str | None = None,
        command: list[str] | None = None,
        args: list[str] | None = None,
        env: dict[str, Any] | None = None,
        env_from: list[dict[str, Any]] | None = None,
        workers: int | str = 0,
        gpus: int | str = 0,
        cpu: str | None = None,
        memory: str | None = None,
        nproc_per_node: str | int | None = None,
        backoff_limit: int | None = 3,
        clean_pod_policy: str | None = None,
        restart_policy: str = "OnFailure",
        pytorchjob: dict[str, Any] | None = None,
        log_lines: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(log_lines=log_lines, **kwargs)
        self.image = image
        self.command = command
        self.args = args
        self.env = env
        self.env_from = env_from
        self.workers = workers
        self.gpus = gpus
        self.cpu = cpu
        self.memory = memory
        self.nproc_per_node = nproc_per_node
        self.backoff_limit = backoff_limit
        self.clean_pod_policy = clean_pod_policy
        self.restart_policy = restart_policy
        self.pytorchjob = pytorchjob

    def build_manifest(self, context: Context, name: str, namespace: str) -> dict[str, Any]:
        from kubeflow_bridge.resources.training import (
            PyTorchJobSpec,
            RunPolicy,
            env_list,
            resource_requirements,
        )

        if self.pytorchjob is not None:
            manifest = self.given_manifest(self.pytorchjob, "pytorchjob", name, namespace)
            self.check_v1_job(manifest)
            return manifest
        if not self.image or not isinstance(self.image, str):
            raise ValueError(
                "image is required: the container image to run (e.g. 'kubeflow-bridge/trainer:latest')"
            )
        workers = as_int("workers", self.workers, minimum=0)
        gpus = as_int("gpus", self.gpus, minimum=0)
        nproc = self.nproc_per_node
        if (
            nproc is not None
            and str(nproc) not in ("auto", "cpu", "gpu")
            and not (str(nproc).isdigit() and int(nproc) >= 1)
        ):
            raise ValueError(
                f"nproc_per_node must be 'auto', 'cpu', 'gpu' or a number of processes, not {nproc!r}"
            )
        if self.env is not None and not isinstance(self.env, dict):
            raise ValueError(f"env must be a mapping of names to values, not {self.env!r}")
        run_policy = None
        if self.backoff_limit is not None or self.clean_pod_policy is not None:
            run_policy = RunPolicy(
                backoff_limit=None
                if self.backoff_limit is None
                else as_int("backoff_limit", self.backoff_limit, minimum=0),
                clean_pod_policy=self.clean_pod_policy,
            )
        manifest = PyTorchJobSpec(
            name=name,
            namespace=namespace,
            image=self.image,
            command=as_command("command", self.command),
            args=as_command("args", self.args),
            env=env_list(self.env),
            env_from=self.env_from,
            resources=resource_requirements(cpu=self.cpu, memory=self.memory, gpu=gpus) or None,
            workers=workers,
            nproc_per_node=self.nproc_per_node,
            run_policy=run_policy,
            restart_policy=self.restart_policy,
        ).to_dict()
        self.check_v1_job(manifest)
        return manifest


class TrainJobOperator(_TrainingJobOperator):
    """Create a Kubeflow Trainer v2 TrainJob on a training runtime and wait for it; node 0's log goes to
    the task log.

    Args:
        runtime: The runtime to run on (``torch-distributed``: torchrun with the ``PET_*`` env).
        runtime_kind: ``ClusterTrainingRuntime`` (default) or ``TrainingRuntime`` (in the namespace).
        image: The trainer node's image (the runtime's when None).
        command: The trainer's command, a list (the runtime's when None).
        args: The trainer's args, a list.
        env: Environment variables (mapping); a value may be a ``valueFrom`` source
            (``{"secretKeyRef": {"name": ..., "key": ...}}``): a TrainJob has no ``envFrom``.
        num_nodes: Trainer nodes (the runtime's ``mlPolicy.numNodes`` when None).
        num_proc_per_node: Processes per node (torch: the GPUs, else the CPUs, of a node when None).
        gpus: ``nvidia.com/gpu`` per node.
        cpu: CPU request and limit per node (e.g. ``"2"``).
        memory: Memory request and limit per node (e.g. ``"4Gi"``).
        runtime_patches: ``spec.runtimePatches`` (see :class:`~kubeflow_bridge.resources.trainjob.TrainJobSpec`):
            pod labels, a container's env or volumeMounts, volumes, nodeSelector... of the runtime's nodes.
        trainjob: A full TrainJob manifest instead of the fields above (name and identity are set).
        log_lines: Lines of node 0's log printed at the end in deferrable mode.
        **kwargs: See :class:`KubeflowObjectOperator` (namespace, deferrable, timeout, if_exists, ...).

    Returns:
        ``{"name", "namespace", "state", "reason", "replica_statuses"}`` (one entry per replicated job).
    """

    template_fields: Sequence[str] = (
        *_TrainingJobOperator.template_fields,
        "runtime",
        "image",
        "command",
        "args",
        "env",
        "num_nodes",
        "num_proc_per_node",
        "gpus",
        "cpu",
        "memory",
        "runtime_patches",
        "trainjob",
    )
    template_fields_renderers = {"trainjob": "json", "env": "json"}
    kind_name: ClassVar[str] = "TrainJob"
    link_class = TrainJobLink
    operator_extra_links = (TrainJobLink(),)

    def __init__(
        self,
        *,
        runtime: str = "torch-distributed",
        runtime_kind: str = "ClusterTrainingRuntime",
        image: str | None = None,
        command: list[str] | None = None,
        args: list[str] | None = None,
        env: dict[str, Any] | None = None,
        num_nodes: int | str | None = None,
        num_proc_per_node: int | str | None = None,
        gpus: int | str = 0,
        cpu: str | None = None,
        memory: str | None = None,
        runtime_patches: list[dict[str, Any]] | None = None,
        trainjob: dict[str, Any] | None = None,
        log_lines: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(log_lines=log_lines, **kwargs)
        self.runtime = runtime
        self.runtime_kind = runtime_kind
        self.image = image
        self.command = command
        self.args = args
        self.env = env
        self.num_nodes = num_nodes
        self.num_proc_per_node = num_proc_per_node
        self.gpus = gpus
        self.cpu = cpu
        self.memory = memory
        self.runtime_patches = runtime_patches
        self.trainjob = trainjob

    def build_manifest(self, context: Context, name: str, namespace: str) -> dict[str, Any]:
        from kubeflow_bridge.resources.training import env_list, resource_requirements
        from kubeflow_bridge.resources.trainjob import TrainJobSpec

        if self.trainjob is not None:
            manifest = self.given_manifest(self.trainjob, "trainjob", name, namespace)
        else:
            if self.env is not None and not isinstance(self.env, dict):
                raise ValueError(f"env must be a mapping of names to values, not {self.env!r}")
            gpus = as_int("gpus", self.gpus, minimum=0)
            manifest = TrainJobSpec(
                name=name,
                namespace=namespace,
                runtime=self.runtime,
                runtime_kind=self.runtime_kind,
                image=self.image,
                command=as_command("command", self.command),
                args=as_command("args", self.args),
                env=env_list(self.env),
                num_nodes=None if self.num_nodes is None else as_int("num_nodes", self.num_nodes, minimum=1),
                num_proc_per_node=None
                if self.num_proc_per_node is None
                else as_int("num_proc_per_node", self.num_proc_per_node, minimum=1),
                resources_per_node=resource_requirements(cpu=self.cpu, memory=self.memory, gpu=gpus) or None,
                runtime_patches=self.runtime_patches,
            ).to_dict()
        self.check_trainjob(manifest, namespace)
        return manifest


class TrainingJobOperator(_TrainingJobOperator):
    """Create a training job from its manifest, a Kubeflow Trainer v2 TrainJob or a Training Operator v1
    job (PyTorchJob, TFJob, XGBoostJob, JAXJob, MPIJob), and wait for it; the master's log (node 0, a TFJob's
    Chief or else Worker 0) goes to the task log.

    The kind comes from the rendered manifest, so one task can run either API: the retraining DAG's
    ``train`` task builds its job with ``workflow.training_job`` and its ``training_api`` param picks.

    Args:
        job: The manifest (a dict with ``apiVersion`` and ``kind``); its name and namespace become the
            task's (``name=``, else deterministic from the DAG run; ``namespace=``). The operator gives
            each v1 replica its framework's env (``TF_CONFIG``, XGBoost's tracker, JAX's coordinator).
        log_lines: Lines of node 0's log printed at the end in deferrable mode.
        **kwargs: See :class:`KubeflowObjectOperator` (namespace, deferrable, timeout, if_exists, ...).

    Returns:
        ``{"name", "namespace", "kind", "state", "reason", "replica_statuses"}``.
    """

    template_fields: Sequence[str] = (*_TrainingJobOperator.template_fields, "job")
    template_fields_renderers = {"job": "json"}
    #: The kinds this operator creates, with their API versions.
    KINDS: ClassVar[dict[str, str]] = {
        "TrainJob": "trainer.kubeflow.org/v1alpha1",
        "PyTorchJob": "kubeflow.org/v1",
        "TFJob": "kubeflow.org/v1",
        "XGBoostJob": "kubeflow.org/v1",
        "JAXJob": "kubeflow.org/v1",
        "MPIJob": "kubeflow.org/v1",
    }
    operator_extra_links = (TrainJobLink(), PyTorchJobLink())

    def __init__(self, *, job: dict[str, Any] | str, log_lines: int = 200, **kwargs: Any) -> None:
        super().__init__(log_lines=log_lines, **kwargs)
        self.job = job

    @property  # type: ignore[misc]  # the base's class constant, per task here
    def kind_name(self) -> str:  # type: ignore[override]
        kind = self.job.get("kind") if isinstance(self.job, dict) else None
        return kind if kind in self.KINDS else "training job"

    @property  # type: ignore[misc]
    def link_class(self) -> type[KubeflowLink] | None:  # type: ignore[override]
        return {"TrainJob": TrainJobLink, "PyTorchJob": PyTorchJobLink}.get(self.kind_name)

    def build_manifest(self, context: Context, name: str, namespace: str) -> dict[str, Any]:
        kinds = " or ".join(f"{kind} ({version})" for kind, version in self.KINDS.items())
        if not isinstance(self.job, dict) or self.job.get("kind") not in self.KINDS:
            got = self.job.get("kind") if isinstance(self.job, dict) else type(self.job).__name__
            raise ValueError(f"job must be a {kinds} manifest, not {got!r}")
        manifest = self.given_manifest(self.job, "job", name, namespace)
        if manifest.get("apiVersion") != self.KINDS[self.kind_name]:
            raise ValueError(
                f"job: a {self.kind_name} has apiVersion {self.KINDS[self.kind_name]!r}, "
                f"not {manifest.get('apiVersion')!r}"
            )
        if self.kind_name == "TrainJob":
            self.check_trainjob(manifest, namespace)
        else:
            self.check_v1_job(manifest)
        return manifest
