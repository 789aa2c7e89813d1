"""The local runtime's KFP v2beta1 REST API: experiments, runs, recurring runs, pipelines.

Integration (the `local up` daemon mounts it on its own port)::

    from aiohttp import web
    from kubeflow_bridge.local.kfp import create_kfp_app

    kfp_app = create_kfp_app(
        state_dir=state / "kfp",                 # SQLite state, run folders, local pipeline root
        pipeline_root="",                        # "" -> <state_dir>/pipeline-root; or s3://bucket/prefix
        kubeconfig=state / "kubeconfig",         # KUBECONFIG of every run (components reach the runtime)
        env={"AWS_ENDPOINT_URL": ..., ...},      # extra env of every run (S3 settings)
        trainer_python=trainer_python(),         # the trainer image's environment (local.images)
    )
    runner = web.AppRunner(kfp_app); await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()   # KFP endpoint: http://127.0.0.1:<port>
    ...; await runner.cleanup()                  # kills run processes; a restart marks them FAILED

Standalone: ``python -m kubeflow_bridge.local.kfp --port N --state-dir D [--pipeline-root P]
[--kubeconfig K] [--env-file F] [--max-parallel-runs N]``; prints ``KFP_ENDPOINT=http://127.0.0.1:N``.

Endpoints (paths, snake_case fields and enum strings of the v2beta1 swagger; errors are googlerpc
Status bodies ``{error, code, message, details}`` with HTTP 400/404/409): ``healthz``; ``experiments``
(create, get, list, ``:archive``, ``:unarchive``, delete); ``runs`` (create from an inline
``pipeline_spec`` or a ``pipeline_version_reference``, get, list with ``filter``/``sort_by``/paging/
``experiment_id``, ``:terminate``, ``:retry``, ``:archive``, ``:unarchive``, delete); ``recurringruns``
(create with cron - 6 fields with seconds, 5 fields, ``@every``, macros - or ``interval_second``,
start/end time, max_concurrency, no_catchup; get, list, ``:enable``, ``:disable``, delete);
``pipelines`` (create, ``/create`` with a version, get, ``names/{name}``, list, delete with
``cascade``; versions create/get/list/delete; multipart ``upload`` and ``upload_version`` with the
``uploadfile`` field as the kfp SDK sends them); and the KFP UI's ``GET /k8s/pod/logs?podname=&runid=``
(a task's output by its ``task_details[].pod_name``). ``kfp.Client`` calls only ``healthz`` when it is
constructed. By default ``multi_user`` is false and namespaces are ignored, as in a standalone KFP;
with ``multi_user=True`` (``--multi-user``, ``local up --kfp-multi-user``) the API behaves as Kubeflow's
multi-user KFP: experiments live in the namespace they are created in, runs in their experiment's,
list calls must name a namespace or an experiment, and a run needs an experiment id (KFP's words when
not). The ``kubeflow-userid`` identity is not checked: one local user may use every namespace.

Execution: each run attempt is a subprocess (its own process group) of
``python -m kubeflow_bridge.local.kfp.executor`` in the trainer env, which loads the compiled spec as
a component and runs it with ``kfp.local`` (SubprocessRunner, use_venv=False); a wrapper around
kfp.local's per-task seam writes task events that the API turns into ``run_details.task_details``,
with the extensions ``output_parameters``, ``output_artifacts`` (URIs) and ``output_artifact_metadata``
(each artifact's ``schema_title`` and ``metadata``: what KFP keeps in MLMD, such as a Metrics
artifact's scalars). Parameters are checked against
``root.inputDefinitions`` before anything is stored. kfp.local writes only to local folders, so an
``s3://`` (or ``minio://``) pipeline_root runs on the local folder and uploads every task's output
artifacts to that S3 prefix, reporting the s3:// URIs. The executor's log is ``<state_dir>/runs/<run_id>/attempt-<n>/
executor.log``, each task's output ``.../tasks/<n>.log``; deleting a run removes its folder.

Components run as the KFP SDK compiles them by default (``kfp.local.kfp.components``): the kfp
self-install preamble is satisfied from the environment the image maps to, ``packages_to_install``
go into cached overlay environments per requirement set (``<state_dir>/envs``; pip's error fails the
task), container components run through the image map (Python images in a Python environment,
busybox/alpine/ubuntu/debian images in the host shell; an unmapped image fails the task naming
``images.yaml``). An optional input left empty passes nothing, as on KFP.

Caching as KFP caches: a task whose cachingOptions.enableCache is set (the compiler's default;
``kfp.Client(...).create_run_from_pipeline_func(enable_caching=False)`` clears it) is looked up by
kfp.local's key (component, image, command, inputs, env) in ``<state_dir>/cache``, shared by all runs
and kept across restarts; a hit is reported as KFP reports it, ``SKIPPED`` with the cached outputs,
an empty ``pod_name`` and a ``cache_fingerprint``.

States and limits against real KFP: a terminated run stays CANCELING, as on the Argo backend
(CANCELED is never reported for a run; a task cut short shows CANCELED once its processes are gone).
Retry re-executes the whole pipeline; successful tasks of earlier attempts come from the cache.
Platform specs (kfp-kubernetes volumes, secrets) are ignored, and resource requests or node
selectors have no effect. Numbers inside list/dict parameters and artifact metadata arrive as floats
(kfp.local's protobuf round trip).
"""

from __future__ import annotations

from kubeflow_bridge.local.kfp.app import create_kfp_app

__all__ = ["create_kfp_app"]
