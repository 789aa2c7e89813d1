"""The local Kubeflow runtime: a Kubernetes-compatible API server plus controllers on 127.0.0.1.

Module layout:

- Runtime plumbing: ``cli.py`` (``kubeflow-bridge local up|down|status|logs``; ``up`` starts ``daemon.py``
  detached, in its own process group, logging to ``<state>/runtime.log``, and waits until ``/healthz``
  answers); ``daemon.py`` (:class:`~kubeflow_bridge.local.daemon.Runtime` assembles the API server, the
  controllers of every component, S3 and the KFP API; writes ``<state>/kubeconfig``, ``<state>/env`` and
  ``<state>/runtime.json``); ``paths.py`` (state folder layout, kubeconfig and env file contents);
  ``images.py`` (image name -> Python environment; the trainer image's environment); ``processes.py``
  (process groups and pid files); ``s3.py`` (SeaweedFS); ``tls.py``; ``testing.py`` (a runtime for tests).
- ``apiserver/``: the Kubernetes API itself. ``server.py`` (the HTTP API on aiohttp), ``store.py``
  (objects in memory with SQLite write-through; resourceVersion, generation, finalizers, cascading delete,
  watch history with 410 Gone), ``admission.py`` (defaults and validation on every write), ``kinds.py``
  (the served resource types), ``watch.py``, ``logs.py`` (pod log subresource), ``discovery.py``,
  ``openapi.py``, ``tables.py`` (kubectl's Table printing), ``patch.py``, ``selectors.py``, ``query.py``,
  ``errors.py`` (Status errors), ``faults.py`` (fault injection behind ``/_admin``), ``jsonfast.py``.
- ``controllers/``: the controller framework (``base.py``; read its docstring to write a controller) and
  the core kinds' controllers (``pod.py``: pods as processes; ``job.py``: batch Jobs).
- One folder per Kubeflow component, its controller next to its helpers: ``training/`` (PyTorchJob),
  ``katib/`` (Experiment, Trial, the suggestion service), ``kserve/`` (InferenceService,
  predictors, the traffic proxy), ``kfp/`` (the KFP v2beta1 API and its executor).
"""
