"""KServe (InferenceService) for the local runtime: predictor revisions, canary proxy, status."""
