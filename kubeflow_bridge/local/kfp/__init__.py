"""The local runtime's KFP v2beta1 REST API: experiments, runs, recurring runs, pipelines.

Integration (the `local up` server mounts it on its own port)::

    from aiohttp import web
    from kubeflow_bridge.local.kfp import create_kfp_app

    kfp_app = create_kfp_app(
        state_dir=state / "kfp",                 # SQLite state, run folders, default pipeline root
        pipeline_root="",                        # "" -> <state_dir>/pipeline-root (a local folder)
        kubeconfig=state / "kubeconfig",         # KUBECONFIG of every run (components reach the runtime)
        env={"AWS_ENDPOINT_URL": ..., ...},      # extra env of every run (S3 settings)
        trainer_python=".venv-trainer/bin/python",
    )
    runner = web.AppRunner(kfp_app); await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()   # KFP endpoint: http://127.0.0.1:<port>
    ...; await runner.cleanup()                  # kills run processes; restart marks them FAILED

Standalone: ``python -m kubeflow_bridge.local.kfp --port N --state-dir D [--pipeline-root P]
[--kubeconfig K] [--env-file F]``; it prints ``KFP_ENDPOINT=http://127.0.0.1:N`` when it listens.

Execution: each run attempt is a subprocess (its own process group) of
``python -m kubeflow_bridge.local.kfp.executor`` in the trainer env, which loads the compiled spec as
a component and runs it with ``kfp.local`` (SubprocessRunner, use_venv=False), writing per-task events
that the API turns into ``run_details.task_details`` (with the extensions ``output_parameters`` and
``output_artifacts``). ``pipeline_root`` is a local folder because kfp.local only writes to local paths
(``kfp.local.init`` makes the root absolute); S3 is reachable from components through the env.
A terminated run stays CANCELING (as on Argo-backed KFP; CANCELED is never reported for a run).
"""

from __future__ import annotations

from kubeflow_bridge.local.kfp.app import create_kfp_app

__all__ = ["create_kfp_app"]
