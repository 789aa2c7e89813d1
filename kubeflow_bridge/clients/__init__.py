"""I/O against the Kubernetes API and the KFP REST API, sync and async (no Airflow import).

Public modules: ``kube`` (custom-object client), ``status`` (terminal states), ``results`` (result
extraction), ``kfp`` (KFP v2beta1 REST client). Nothing heavy is imported here.
"""
