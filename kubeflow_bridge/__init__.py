"""kubeflow-bridge: Airflow operators, KFP components and a local runtime for Kubeflow.

Importing this package is cheap on purpose (DAG files import it at parse time): nothing heavy here.
"""

from __future__ import annotations

__version__ = "0.1.0"
