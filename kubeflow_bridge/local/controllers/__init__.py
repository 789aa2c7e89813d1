"""Controllers of the local runtime (see :mod:`kubeflow_bridge.local.controllers.base`)."""
