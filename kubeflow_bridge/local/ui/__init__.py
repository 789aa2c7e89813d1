"""A web UI for the local runtime, at the paths Kubeflow's own UIs use.

It is served on the dashboard URL (the KFP API's port), so the operators' extra links open a page here
as they open the real UI on a cluster (``kubeflow_bridge.links``):

- ``/_/pipeline/#/runs/details/<run id>`` (the KFP UI's route, forwarded to ``/_/pipeline/runs/details/...``):
  the run's graph with each task's state (cached and skipped shown), its inputs, outputs, logs, and
  artifacts shown as the KFP UI shows them (Metrics tables, confusion matrix and ROC curve, HTML and
  Markdown); ``/_/pipeline/#/runs`` lists runs (by experiment, by state); ``#/compare?runlist=`` compares
  them; ``#/runs/new?cloneFromRun=<id>`` clones one with new parameters, the UI's only write (see
  :mod:`kubeflow_bridge.local.ui.clone` for its login and guards);
- ``/_/katib/experiment/<namespace>/<name>``: the trials table and the objective-per-trial plot;
- ``/_/pytorchjobs/details/...``, ``/_/trainjobs/details/...`` (and the other training kinds): replicas'
  pods, their states and logs;
- ``/_/models/details/<namespace>/<name>``: an InferenceService's readiness, URL, traffic and predictor logs;
- ``/_/logs/<namespace>/<pod>``: a pod's log, ``?follow=true`` streamed as it is written.

Pages are rendered on the server from the runtime's own APIs only (its KFP API, its Kubernetes API with
the runtime's token, its S3 for artifacts): no side door into its stores, no script from a CDN.
"""

from __future__ import annotations

from kubeflow_bridge.local.ui.app import UiSources, add_ui_routes

__all__ = ["UiSources", "add_ui_routes"]
