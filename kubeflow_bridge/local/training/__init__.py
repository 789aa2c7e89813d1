"""The Kubeflow Training Operator (v1 PyTorchJob) for the local runtime."""
