"""Katib (kubeflow.org/v1beta1 Experiment and Trial) for the local runtime.

Design, as Katib's own pieces:

* admission (:mod:`.validation`): Katib's defaulting webhook (parallelTrialCount 3, resumePolicy Never,
  metricStrategies, StdOut collector, success/failure conditions, primaryPodLabels for Kubeflow jobs),
  Katib's validating webhook rules (``kubeflow_bridge.resources.katib.validate_experiment``) and the
  local limits (:data:`.search.SUPPORTED_ALGORITHMS`): an Experiment the runtime cannot run is 422 Invalid
  and is not stored;
* the experiment controller (``kubeflow_bridge.local.katib.controller``) starts one suggestion process
  per Experiment, ``python -m kubeflow_bridge.local.katib.suggestion`` in the trainer environment (like
  Katib's per-experiment suggestion pod), and writes Experiment status from the Trials
  (:mod:`.status`);
* the suggestion process (:mod:`.suggestion`) is Katib's suggestion service and early stopping: it
  keeps parallelTrialCount Trials active up to maxTrialCount, each with assignments from
  :class:`.search.Searcher` (grid, Optuna's random sampler, Optuna's TPE for
  tpe/bayesianoptimization/multivariate-tpe, as Katib's own Optuna service), tells the searcher each
  finished Trial's objective, and applies Katib's medianstop rule to running Trials (a stopped one is
  annotated and becomes EarlyStopped). Nothing listens on a port;
* the trial controller creates the trial's Job or PyTorchJob (:mod:`.template`), follows its
  success/failure conditions and collects metrics from the primary container's log exactly as Katib's
  StdOut collector (:mod:`.metrics`).

One deliberate difference: a MetricsUnavailable trial (objective ``"unavailable"``) is never chosen as
``currentOptimalTrial`` (Katib would treat the non-numeric value as "latest wins").
"""
