"""Pure builders and validators of Kubeflow manifests and KFP run requests (dicts in, dicts out).

No I/O and no Airflow, kfp, kserve or kubernetes import: safe at DAG parse time and in both environments.

- :mod:`.names`: deterministic DNS-1035 names, :class:`~.names.Identity`, identity labels/annotations.
- :mod:`.katib`: Katib Experiment builder, ``trainer_trial_template`` and ``validate_experiment``.
- :mod:`.training`: PyTorchJob builder and ``validate_pytorchjob``.
- :mod:`.kserve`: InferenceService builder and ``validate_inference_service``.
- :mod:`.kfp`: compiled pipeline parsing, ``validate_parameters``, run and recurring-run requests.
- :mod:`.errors`: ``ValidationError`` / ``FieldCause`` raised by every validator.
"""
