"""Write the comparison as ``comparison.json`` and a self-contained ``comparison.html``."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeflow_bridge.compare.analysis import build_comparison
from kubeflow_bridge.compare.html import render_html
from kubeflow_bridge.compare.model import OrchestratorRun

if TYPE_CHECKING:
    from kubeflow_bridge.workflow.tracking import MlflowRest


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went.

    Attributes:
        json_path: The comparison document.
        html_path: The HTML page (open it in a browser; it needs no network).
    """

    json_path: Path
    html_path: Path


def _write_atomic(path: Path, text: str) -> None:
    # Write then rename, so a half-written report never looks complete.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(
    runs: list[OrchestratorRun],
    out_dir: str | os.PathLike[str] = "reports",
    *,
    rel_tol: float = 1e-6,
    mlflow: MlflowRest | None = None,
    links: dict[str, str] | None = None,
) -> tuple[ReportPaths, dict[str, Any]]:
    """Compare ``runs`` and write ``<out_dir>/comparison.json`` and ``<out_dir>/comparison.html``.

    With ``mlflow`` the comparison is also logged there, and the report links each side's MLflow run and
    shows every comparison logged so far (:mod:`kubeflow_bridge.compare.history`). ``links``: each
    orchestrator's page of its run (the report links them).

    Returns:
        The paths written and the comparison document.
    """
    comparison = build_comparison(runs, rel_tol=rel_tol)
    comparison["links"] = dict(links or {})
    if mlflow is not None:
        from kubeflow_bridge.compare.history import attach

        attach(comparison, mlflow)
    comparison["inputs"] = [run.to_dict() for run in runs]
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(json_path=folder / "comparison.json", html_path=folder / "comparison.html")
    _write_atomic(paths.json_path, json.dumps(comparison, indent=2, sort_keys=False, default=str) + "\n")
    _write_atomic(paths.html_path, render_html(comparison))
    return paths, comparison
