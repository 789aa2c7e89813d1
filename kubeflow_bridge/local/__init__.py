"""The local Kubeflow runtime: a Kubernetes-compatible API server plus controllers on 127.0.0.1.

README-internal (module layout):

- ``cli.py``: ``kubeflow-bridge local up|down|status|logs`` (``up`` starts ``daemon.py`` detached, in its
  own process group, logging to ``<state>/runtime.log``, and waits until ``/healthz`` answers).
- ``daemon.py``: :class:`~kubeflow_bridge.local.daemon.Runtime` assembles store, API server, controllers,
  S3 (``s3.py``) and the part-2 plug-ins (``PLUGINS``: modules exposing ``register(runtime)``); writes
  ``<state>/kubeconfig``, ``<state>/env`` and ``<state>/runtime.json``.
- ``paths.py``: state folder layout, kubeconfig and env file contents (AIRFLOW_CONN_*, AWS_*, KFP endpoint).
- ``kinds.py``: the served resource types (:class:`ResourceType` constants POD, JOB, PYTORCHJOB, EXPERIMENT,
  TRIAL, SUGGESTION, INFERENCESERVICE, ...).
- ``store.py``: objects in memory with SQLite write-through; resourceVersion, generation, finalizers,
  cascading delete via ownerReferences, watch history (410 Gone past it).
- ``admission.py``: defaults and validation on every write (resources-layer validators, structural checks).
- ``apiserver.py``: the HTTP API (aiohttp); ``discovery.py``, ``openapi.py`` (just enough for kubectl
  apply), ``watch.py``, ``logs.py`` (pod log subresource), ``tables.py`` (kubectl's Table printing),
  ``patch.py`` (merge and JSON patch), ``selectors.py``, ``apierrors.py`` (Status errors).
- ``faults.py``: fault injection (5xx, 429, dropped connections, watch cuts, forced 410, token auth),
  live through ``/_admin/faults``, ``/_admin/tokens``, ``/_admin/kill-pod``, ``/_admin/crash-pods``.
- ``images.py``: image name -> Python environment map; ``processes.py``: process groups and pid files.
- ``controllers/base.py``: the controller framework (read its docstring to write a controller);
  ``controllers/pod.py``, ``job.py``, ``pytorchjob.py`` (part 1); ``controllers/katib.py``,
  ``controllers/kserve.py``, ``katib/``, ``kserve/``, ``kfp/`` (part 2).
"""
