"""The trainer image's code: `python -m trainer ingest|preprocess|train|evaluate|serve`.

Knows nothing of Airflow, KFP or Kubernetes.
"""
