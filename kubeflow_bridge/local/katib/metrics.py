"""Katib's StdOut metrics collector, in Python (pure).

Each log line that mentions a wanted metric name may start with an RFC 3339 timestamp (``<ts> <rest>``);
every filter regex (default Katib's ``([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)``) is
matched against the rest and each (name, value) pair whose name is the objective or an additional metric
becomes a metric log. Observations keep, per metric, min and max over float values (``"unavailable"``
when no value is a float) and the latest value, all as strings, as Katib's DB manager reports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
UNAVAILABLE = "unavailable"
#: Katib's timestamp for a metric without one (Go's zero time, RFC 3339).
ZERO_TIMESTAMP = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class MetricLog:
    """One reported value.

    Args:
        name: Metric name.
        value: The value as printed.
        timestamp: RFC 3339 timestamp from the line, or the zero time.
    """

    name: str
    value: str
    timestamp: str = ZERO_TIMESTAMP


def _is_rfc3339(text: str) -> bool:
    if not _RFC3339.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return False
    return True


def parse_metric_lines(
    lines: list[str] | str, metric_names: list[str], filters: list[str] | None = None
) -> list[MetricLog]:
    """All metric logs in ``lines`` for ``metric_names`` (no "unavailable" fill-in; see ``collect``).

    Args:
        lines: Log text or its lines.
        metric_names: Objective metric first, then additional metrics.
        filters: ``metricsCollectorSpec.source.filter.metricsFormat``; Katib's default when empty.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    regexes = [re.compile(f) for f in (filters or [DEFAULT_FILTER])]
    wanted = set(metric_names)
    out: list[MetricLog] = []
    for raw in lines:
        if not any(name in raw for name in metric_names):
            continue
        line = raw.strip()
        timestamp = ZERO_TIMESTAMP
        head, sep, rest = line.partition(" ")
        if sep and _is_rfc3339(head):
            timestamp, line = head, rest
        for regex in regexes:
            for match in regex.finditer(line):
                if match.lastindex is None or match.lastindex < 2:
                    continue
                name, value = match.group(1).strip(), match.group(2).strip()
                if name in wanted and value:
                    out.append(MetricLog(name, value, timestamp))
    return out


def parse_json_lines(text: str, metric_names: list[str]) -> list[MetricLog]:
    """Katib's File collector with ``format: JSON``: one JSON object per line, metrics as its keys."""
    import json

    out: list[MetricLog] = []
    for raw in text.splitlines():
        try:
            row = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        stamp = str(row.get("timestamp") or ZERO_TIMESTAMP)
        for name in metric_names:
            if name in row and row[name] is not None:
                out.append(MetricLog(name, str(row[name]), stamp if _is_rfc3339(stamp) else ZERO_TIMESTAMP))
    return out


def file_source(collector: dict[str, Any] | None) -> tuple[str, str] | None:
    """``(path, format)`` of a File metrics collector, None for StdOut."""
    collector = collector or {}
    if (collector.get("collector") or {}).get("kind") != "File":
        return None
    path = (collector.get("source") or {}).get("fileSystemPath") or {}
    return str(path.get("path") or ""), str(path.get("format") or "TEXT").upper()


def local_metrics_file(metrics_dir: Path, trial: dict[str, Any]) -> Path | None:
    """Where a File collector's metrics of `trial` land locally (its folder under `metrics_dir`): a local
    process cannot write the pod path Katib mounts (e.g. /var/log/katib). None for StdOut."""
    source = file_source(trial["spec"].get("metricsCollector"))
    if source is None:
        return None
    return metrics_dir / trial["metadata"]["namespace"] / trial["metadata"]["name"] / Path(source[0]).name


def collect(
    lines: list[str] | str, metric_names: list[str], filters: list[str] | None = None, fmt: str = "TEXT"
) -> list[MetricLog]:
    """As Katib's collector: the parsed logs, or one ``unavailable`` objective log when the objective
    metric was never reported."""
    if fmt == "JSON":
        logs = parse_json_lines(lines if isinstance(lines, str) else "\n".join(lines), metric_names)
    else:
        logs = parse_metric_lines(lines, metric_names, filters)
    if not any(log.name == metric_names[0] for log in logs):
        return [MetricLog(metric_names[0], UNAVAILABLE)]
    return logs


def _as_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def observation(logs: list[MetricLog], metric_names: list[str]) -> dict[str, list[dict[str, str]]]:
    """``status.observation`` of a Trial: ``{"metrics": [{name, min, max, latest}]}`` in metric order.

    Metrics that were never reported are left out; a metric whose values are not floats gets
    min and max ``"unavailable"``.
    """
    metrics = []
    for name in metric_names:
        values = [log.value for log in logs if log.name == name]
        if not values:
            continue
        numeric = [(v, f) for v in values if (f := _as_float(v)) is not None]
        if numeric:
            low = min(numeric, key=lambda pair: pair[1])[0]
            high = max(numeric, key=lambda pair: pair[1])[0]
        else:
            low = high = UNAVAILABLE
        metrics.append({"name": name, "min": low, "max": high, "latest": values[-1]})
    return {"metrics": metrics}


def objective_available(obs: dict[str, Any] | None, objective_name: str) -> bool:
    """True when the observation holds a real (not "unavailable") value of the objective metric."""
    for metric in (obs or {}).get("metrics") or []:
        if metric.get("name") == objective_name and metric.get("latest") not in (None, "", UNAVAILABLE):
            return True
    return False


def metric_value(obs: dict[str, Any] | None, name: str, strategy: str) -> str | None:
    """The value Katib compares for a metric: min, max or latest per strategy, latest when min/max are
    unavailable; None when the metric is absent."""
    for metric in (obs or {}).get("metrics") or []:
        if metric.get("name") != name:
            continue
        if strategy in ("min", "max") and metric.get(strategy) not in (None, UNAVAILABLE):
            return str(metric[strategy])
        return str(metric.get("latest")) if metric.get("latest") is not None else None
    return None
