"""KServe (serving.kserve.io/v1beta1 InferenceService) for the local runtime, Serverless mode.

* Each predictor spec change (not canaryTrafficPercent) is a new revision ``<name>-predictor-0000N``, run
  as a Pod (a process) on a free 127.0.0.1 port; ready when ``/v2/health/ready`` or
  ``/v1/models/<model>`` answers 200 (:mod:`.predictor`).
* Served predictors: a custom container (e.g. the trainer's ``python -m trainer serve``; its ``--port``
  is rewritten to the revision's port, ``PORT`` and Knative's ``K_REVISION`` are set) or
  ``predictor.model`` with ``modelFormat.name`` ``kubeflow-bridge-vae`` (aliases ``anomaly-vae``,
  ``trainer``) and a ``storageUri``. Every other format (sklearn, xgboost, lightgbm, tensorflow,
  pytorch/TorchServe, triton, onnx, huggingface, pmml, paddle, mlflow ...) and the legacy framework
  fields give Ready=False, reason ``NoSupportingRuntime``, modelStatus ``InvalidSpec``.
* ``status.url`` is the per-service traffic-splitting proxy ``http://127.0.0.1:<port>`` (reachable
  locally; :mod:`.proxy`), ``status.address.url`` keeps the in-cluster form
  ``http://<name>.<namespace>.svc.cluster.local``. Status and canary traffic follow KServe (:mod:`.status`).
"""
