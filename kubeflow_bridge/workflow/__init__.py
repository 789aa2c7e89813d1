"""The retraining workflow, defined once; the Airflow DAG, the KFP pipeline and the comparison call it.

- :mod:`~kubeflow_bridge.workflow.spec`: defaults, param schemas, artifact layout, trainer arguments,
  the trainer image (re-exported here, so ``workflow.DEFAULTS`` and ``workflow.train_args`` read as-is);
- :mod:`~kubeflow_bridge.workflow.training`: the train step's job, a TrainJob or a PyTorchJob (``training_api``);
- :mod:`~kubeflow_bridge.workflow.gate`: the deploy gate (one rule set);
- :mod:`~kubeflow_bridge.workflow.rollout`: the canary rollout (write, Ready, smoke, promote or roll back).

No Airflow and no kfp import anywhere in this package; importing it loads only the standard library.
"""

from __future__ import annotations

from kubeflow_bridge.workflow.spec import (
    CHANNELS_PER_SOURCE,
    DEFAULTS,
    F_SCORE_METRIC,
    FORM_DEFAULTS,
    LAYOUT,
    OBJECTIVE_METRIC,
    PARAM_SCHEMAS,
    STEPS,
    STORAGE_SECRET,
    TRAIN_BACKOFF_LIMIT,
    TRAINER_IMAGE,
    TRAINING_APIS,
    check_param_values,
    check_params,
    evaluate_args,
    evaluated_model_uri,
    form_schema,
    hyperparameter_flags,
    ingest_args,
    parse_trainer_summary,
    pipeline_inputs,
    preprocess_args,
    run_prefix,
    search_space,
    smoke_payload,
    storage_env,
    storage_env_from,
    summary_uri,
    train_args,
    trial_args,
    trial_span_seconds,
    unknown_params,
    uri,
)
from kubeflow_bridge.workflow.training import TRAINING_KINDS, training_api, training_job

__all__ = [
    "CHANNELS_PER_SOURCE",
    "DEFAULTS",
    "FORM_DEFAULTS",
    "F_SCORE_METRIC",
    "LAYOUT",
    "OBJECTIVE_METRIC",
    "PARAM_SCHEMAS",
    "STEPS",
    "STORAGE_SECRET",
    "TRAINER_IMAGE",
    "TRAINING_APIS",
    "TRAINING_KINDS",
    "TRAIN_BACKOFF_LIMIT",
    "check_param_values",
    "check_params",
    "evaluate_args",
    "evaluated_model_uri",
    "form_schema",
    "hyperparameter_flags",
    "ingest_args",
    "parse_trainer_summary",
    "pipeline_inputs",
    "preprocess_args",
    "run_prefix",
    "search_space",
    "smoke_payload",
    "storage_env",
    "storage_env_from",
    "summary_uri",
    "train_args",
    "training_api",
    "training_job",
    "trial_args",
    "trial_span_seconds",
    "unknown_params",
    "uri",
]
