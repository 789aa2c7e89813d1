"""Render the comparison document as one self-contained HTML page (inline CSS and SVG, no CDN)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STATE_COLOURS = {
    "succeeded": "#4c9f70",
    "failed": "#d64545",
    "upstream_failed": "#e8a0a0",
    "skipped": "#b8b8b8",
    "cancelled": "#8c6bb1",
    "running": "#4a90d9",
    "pending": "#dddddd",
}
_DEFAULT_COLOUR = "#999999"
#: Shown for values that are unknown (an en dash, as tables usually print it).
_DASH = "\u2013"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
.side{display:flex;flex-wrap:wrap;gap:24px}.side>div{flex:1 1 480px;min-width:360px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2e7d4f;font-weight:600}.bad{color:#c62828;font-weight:600}
.err{color:#c62828;font-size:.9em;white-space:pre-wrap}.muted{color:#777;font-size:.9em}
.legend span{display:inline-block;margin-right:12px}.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
"""


def _fmt(seconds: float | None, digits: int = 1) -> str:
    return _DASH if seconds is None else f"{seconds:.{digits}f}"


def _gantt_svg(run: dict[str, Any], steps: list[str], scale_seconds: float) -> str:
    """One run's steps as horizontal bars on a time axis shared by all runs (so widths compare)."""
    label_w, chart_w, row_h, top = 110, 520, 26, 24
    height = top + row_h * len(steps) + 10
    scale = chart_w / scale_seconds if scale_seconds > 0 else 0.0
    by_step = {s["step"]: s for s in run["steps"]}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + chart_w + 20}" '
        f'height="{height}" aria-label="Gantt chart of {escape(run["orchestrator"])}">'
    ]
    ticks = 5
    for i in range(ticks + 1):
        x = label_w + chart_w * i / ticks
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 6}" stroke="#eee"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{top - 10}" font-size="10" text-anchor="middle" fill="#666">'
            f"{scale_seconds * i / ticks:.0f}s</text>"
        )
    for row, name in enumerate(steps):
        y = top + row * row_h
        parts.append(f'<text x="4" y="{y + 16}" font-size="12">{escape(name)}</text>')
        step = by_step.get(name)
        if step is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + 16}" font-size="11" fill="#999">not in run</text>')
            continue
        colour = _STATE_COLOURS.get(step["state"], _DEFAULT_COLOUR)
        offset, duration = step["offset_seconds"], step["duration_seconds"]
        title = escape(
            f"{name}: {step['state']}, duration {_fmt(duration)}s, compute {_fmt(step['compute_seconds'])}s"
            + (f", error: {step['error']}" if step.get("error") else "")
        )
        if offset is None or duration is None:
            parts.append(
                f'<text x="{label_w + 4}" y="{y + 16}" font-size="11" fill="{colour}">'
                f"{escape(step['state'])}<title>{title}</title></text>"
            )
            continue
        x, w = label_w + offset * scale, max(duration * scale, 1.5)
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}" '
            f'fill-opacity="0.45" stroke="{colour}"><title>{title}</title></rect>'
        )
        compute = step["compute_seconds"]
        if compute:
            cw = min(compute * scale, w)
            # The compute part is drawn right-aligned: start-up and scheduling come first in a step.
            parts.append(
                f'<rect x="{x + w - cw:.1f}" y="{y + 8}" width="{cw:.1f}" height="{row_h - 16}" '
                f'fill="{colour}"><title>{title}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _verdict(equal: bool | None, same: str, different: str, unknown: str) -> str:
    """A coloured verdict span: ``ok`` when equal, ``bad`` when not, ``muted`` when not comparable."""
    css, text = ("muted", unknown) if equal is None else ("ok", same) if equal else ("bad", different)
    return f'<span class="{css}">{text}</span>'


def _equality_rows(equality: dict[str, Any], labels: list[str]) -> str:
    rows = []
    for name, info in equality["fields"].items():
        cells = "".join(f"<td>{escape(_value(info['values'].get(label)))}</td>" for label in labels)
        verdict = _verdict(info["equal"], "equal", "differs", "n/a")
        note = f' <span class="muted">({escape(info["note"])})</span>' if info.get("note") else ""
        rows.append(f"<tr><th>{escape(name)}</th>{cells}<td>{verdict}{note}</td></tr>")
    return "".join(rows)


def _training_api(kind: str | None) -> str:
    api = {"TrainJob": "Kubeflow Trainer v2", "PyTorchJob": "Training Operator v1"}.get(kind or "")
    return f"{kind} ({api})" if api else kind or _DASH


def _value(value: Any) -> str:
    if value is None:
        return _DASH
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value(v)}" for k, v in sorted(value.items()))
    return str(value)


def render_html(comparison: dict[str, Any]) -> str:
    """The comparison document (:func:`~kubeflow_bridge.compare.analysis.build_comparison`) as HTML."""
    runs = comparison["runs"]
    steps = comparison["steps"]
    labels = [r["orchestrator"] for r in runs]
    walls = [r["wall_seconds"] for r in runs if r["wall_seconds"]]
    scale = max(walls) if walls else 1.0
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>kubeflow-bridge: orchestrator comparison</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Same workflow, two orchestrators</h1>",
        f'<p class="muted">Generated {escape(comparison["generated_at"])}. Overhead = wall time minus '
        "the critical path of compute (the trainer's own timings).</p>",
        "<h2>Summary</h2><table><tr><th></th>",
        *(f"<th>{escape(label)}</th>" for label in labels),
        "</tr>",
    ]
    pages = comparison.get("links") or {}

    def run_id(r: dict[str, Any]) -> str:
        url = pages.get(r["orchestrator"])
        return f"<a href='{escape(url)}'>{escape(r['run_id'])}</a>" if url else escape(r["run_id"])

    summary_rows: list[tuple[str, Any]] = [
        ("run id", run_id),
        ("training API", lambda r: escape(_training_api(r["outcome"].get("training_kind")))),
        ("state", lambda r: escape(r["state"])),
        ("wall time (s)", lambda r: _fmt(r["wall_seconds"])),
        ("critical path of compute (s)", lambda r: _fmt(r["critical_path"]["seconds"])),
        ("critical path", lambda r: escape(" → ".join(r["critical_path"]["steps"]))),
        ("orchestration overhead (s)", lambda r: _fmt(r["overhead_seconds"])),
        (
            "overhead share of wall time",
            lambda r: _DASH if r["overhead_ratio"] is None else f"{100 * r['overhead_ratio']:.0f}%",
        ),
        ("steps with unknown compute", lambda r: escape(", ".join(r["compute_unknown"]) or "none")),
    ]
    for title, cell in summary_rows:
        out.append(f"<tr><th>{escape(title)}</th>")
        out.extend(f'<td class="num">{cell(r)}</td>' for r in runs)
        out.append("</tr>")
    out.append("</table>")

    out.append("<h2>Timelines</h2><div class='legend'>")
    out.extend(
        f'<span><i class="sw" style="background:{c}"></i>{escape(s)}</span>'
        for s, c in _STATE_COLOURS.items()
    )
    out.append("<span class='muted'>pale: orchestrator time, solid: compute</span></div><div class='side'>")
    for run in runs:
        out.append(f"<div><h3>{escape(run['orchestrator'])}</h3>{_gantt_svg(run, steps, scale)}</div>")
    out.append("</div>")

    out.append("<h2>Steps</h2><table><tr><th>step</th>")
    for label in labels:
        out.append(
            f"<th>{escape(label)} state</th><th>{escape(label)} duration (s)</th>"
            f"<th>{escape(label)} compute (s)</th><th>{escape(label)} overhead (s)</th>"
        )
    out.append("</tr>")
    for name in steps:
        out.append(f"<tr><th>{escape(name)}</th>")
        for run in runs:
            step = next((s for s in run["steps"] if s["step"] == name), None)
            if step is None:
                out.append("<td colspan='4' class='muted'>not in run</td>")
                continue
            colour = _STATE_COLOURS.get(step["state"], _DEFAULT_COLOUR)
            out.append(
                f'<td style="color:{colour}">{escape(step["state"])}</td>'
                f'<td class="num">{_fmt(step["duration_seconds"])}</td>'
                f'<td class="num">{_fmt(step["compute_seconds"])}</td>'
                f'<td class="num">{_fmt(step["overhead_seconds"])}</td>'
            )
        out.append("</tr>")
    out.append("</table>")

    failures = [(r["orchestrator"], f) for r in runs for f in r["failed_steps"]]
    if failures:
        out.append("<h2>Failed steps</h2><ul>")
        for label, failure in failures:
            out.append(
                f"<li><b>{escape(label)}</b> / {escape(failure['step'])}: {escape(failure['state'])}"
                f'<div class="err">{escape(failure.get("error") or "(no error message recorded)")}</div></li>'
            )
        out.append("</ul>")

    equality = comparison["outcome_equality"]
    verdict = _verdict(equality["equal"], "same outcome", "outcomes differ", "one run only")
    out.append(f"<h2>Outcome: {verdict}</h2><table><tr><th></th>")
    out.extend(f"<th>{escape(label)}</th>" for label in labels)
    out.append("<th></th></tr>")
    out.append(_equality_rows(equality, labels))
    out.append("</table>")
    out.append(_inputs(runs))
    if comparison.get("mlflow"):
        out.append(_history(comparison["mlflow"], labels))
    out.append("</body></html>")
    return "".join(out)


def _inputs(runs: list[dict[str, Any]]) -> str:
    """Each run's inputs side by side; a row where both sides set different values is marked (the
    per-side service and registered model names differ on purpose; a side that did not set a param ran
    with its default)."""
    names = sorted({name for r in runs for name in r.get("params") or {}})
    if not names:
        return ""
    out = ["<h2>Inputs</h2><table><tr><th>param</th>"]
    out.extend(f"<th>{escape(r['orchestrator'])}</th>" for r in runs)
    out.append("<th></th></tr>")
    for name in names:
        values = [(r.get("params") or {}).get(name) for r in runs]
        given = {
            json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else v
            for v in values
            if v is not None
        }
        differ = len(given) > 1 and None not in values
        out.append(f"<tr><th>{escape(name)}</th>")
        out.extend(f"<td>{_DASH if v is None else escape(str(v))}</td>" for v in values)
        out.append(f"<td>{'differs' if differ else ''}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _history(tracked: dict[str, Any], labels: list[str]) -> str:
    """Each side's MLflow run and every comparison logged so far (newest first)."""
    uri = escape(tracked["uri"])
    if tracked.get("error"):
        return f"<h2>History (MLflow)</h2><p class='err'>Not logged to {uri}: {escape(tracked['error'])}</p>"
    links = " · ".join(
        f"<a href='{escape(url)}'>{escape(side)} run</a>" for side, url in tracked["links"].items()
    )
    out = [
        f"<h2>History (MLflow, <a href='{uri}'>{uri}</a>)</h2>",
        f"<p>{links or 'Neither side logged a run to MLflow.'}</p>",
        "<table><tr><th>compared</th>",
    ]
    fields = (("f_score", "composite F"), ("overhead_seconds", "overhead (s)"), ("wall_seconds", "wall (s)"))
    out.extend(f"<th>{escape(label)} {title}</th>" for _, title in fields for label in labels)
    out.append("</tr>")
    for row in tracked["history"]:
        out.append(f"<tr><th><a href='{escape(row['url'])}'>{escape(row['date'])}</a></th>")
        for field, _ in fields:
            for label in labels:
                value = row.get(f"{label}_{field}")
                text = _DASH if value is None else f"{value:.3f}" if field == "f_score" else _fmt(value)
                out.append(f'<td class="num">{text}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)
