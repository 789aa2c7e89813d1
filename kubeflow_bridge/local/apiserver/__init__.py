"""The local runtime's Kubernetes API server: HTTP API, store, admission, watch and their helpers."""
