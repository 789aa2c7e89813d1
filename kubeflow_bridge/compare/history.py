"""The comparison across runs, from MLflow: each comparison is logged there once; the report shows them all.

Each ``kubeflow-bridge compare`` with a tracking URI logs one run in the :data:`HISTORY_EXPERIMENT` (per
side: wall time, orchestration overhead, composite F-score; tagged with both run ids, so comparing the
same pair again adds nothing), then reads every comparison run back for the report's history table (newest
first) and finds each side's own MLflow run (the workflow's ``train`` run, which evaluate completed) to
link it. MLflow trouble never loses the report: the error is shown in it instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubeflow_bridge.workflow.tracking import EXPERIMENT, TAG_PREFIX, MlflowRest, TrackingError

#: Where comparisons go (beside the workflow's own experiment).
HISTORY_EXPERIMENT = f"{EXPERIMENT}-comparisons"
#: What each side contributes to a history row: (metric suffix, where it is in a summarized run).
FIELDS = (("wall_seconds", "wall_seconds"), ("overhead_seconds", "overhead_seconds"), ("f_score", "f_score"))


def _ms(value: str | None) -> int | None:
    if not value:
        return None
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def _value(run: dict[str, Any], field: str) -> Any:
    return run["outcome"].get(field) if field == "f_score" else run.get(field)


def record(client: MlflowRest, comparison: dict[str, Any]) -> str:
    """Log this comparison (once per pair of runs); its MLflow run id."""
    pair = {f"{TAG_PREFIX}{r['orchestrator']}_run_id": r["run_id"] for r in comparison["runs"]}
    already = client.search_runs(
        HISTORY_EXPERIMENT, " and ".join(f"tags.`{k}` = '{v.replace(chr(39), '')}'" for k, v in pair.items())
    )
    if already:
        return str(already[0]["info"]["run_id"])
    metrics = {
        f"{r['orchestrator']}_{name}": float(value)
        for r in comparison["runs"]
        for name, field in FIELDS
        if isinstance(value := _value(r, field), int | float)
    }
    starts = [ms for r in comparison["runs"] if (ms := _ms(r.get("start"))) is not None]
    ends = [ms for r in comparison["runs"] if (ms := _ms(r.get("end"))) is not None]
    now = int(datetime.now(UTC).timestamp() * 1000)
    return client.log_run(
        HISTORY_EXPERIMENT,
        name=" vs ".join(r["orchestrator"] for r in comparison["runs"]),
        tags=pair,
        metrics=metrics,
        start_ms=min(starts, default=now),
        end_ms=max(ends, default=now),
    )


def history(client: MlflowRest, limit: int = 100) -> list[dict[str, Any]]:
    """Every recorded comparison, newest first: ``{"date", "url", "<side>_<field>"...}``."""
    rows = []
    for run in client.search_runs(HISTORY_EXPERIMENT, max_results=limit):
        start = datetime.fromtimestamp(int(run["info"]["start_time"]) / 1000, UTC)
        row: dict[str, Any] = {"date": start.strftime("%Y-%m-%d %H:%M"), "url": client.run_url(run)}
        row.update({m["key"]: m["value"] for m in run["data"].get("metrics") or []})
        rows.append(row)
    return rows


def side_links(client: MlflowRest, comparison: dict[str, Any]) -> dict[str, str]:
    """Each side's own MLflow run (its workflow run's ``train`` run), where it logged one."""
    links = {}
    for run in comparison["runs"]:
        found = client.search_runs(
            EXPERIMENT,
            f"tags.`{TAG_PREFIX}run_id` = '{run['run_id'].replace(chr(39), '')}' and "
            f"tags.`{TAG_PREFIX}orchestrator` = '{run['orchestrator']}' and tags.`{TAG_PREFIX}step` = 'train'",
            max_results=1,
        )
        if found:
            links[run["orchestrator"]] = client.run_url(found[0])
    return links


def attach(comparison: dict[str, Any], client: MlflowRest) -> None:
    """Record the comparison and add ``comparison["mlflow"]`` (links, history; or the error)."""
    try:
        recorded = record(client, comparison)
        comparison["mlflow"] = {
            "uri": client.uri,
            "recorded_run": recorded,
            "links": side_links(client, comparison),
            "history": history(client),
        }
    except TrackingError as exc:
        comparison["mlflow"] = {"uri": client.uri, "error": str(exc)}
