"""The side-by-side comparison of one workflow run by Airflow and by KFP.

Cheap to import (no Airflow, kfp or kubernetes at module level): collectors import what they need
when called.
"""

from __future__ import annotations

from kubeflow_bridge.compare.analysis import (
    CriticalPath,
    build_comparison,
    compare_outcomes,
    critical_path,
    summarize_run,
    wall_seconds,
)
from kubeflow_bridge.compare.html import render_html
from kubeflow_bridge.compare.model import OrchestratorRun, Outcome, StepRecord, normalize_state
from kubeflow_bridge.compare.report import ReportPaths, write_report

__all__ = [
    "CriticalPath",
    "OrchestratorRun",
    "Outcome",
    "ReportPaths",
    "StepRecord",
    "build_comparison",
    "compare_outcomes",
    "critical_path",
    "normalize_state",
    "render_html",
    "summarize_run",
    "wall_seconds",
    "write_report",
]
