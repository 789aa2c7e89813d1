"""The UI's pages as HTML (server-rendered; inline SVG for the run graph and the Katib plot)."""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote, urlsplit

STATE_COLOURS = {
    "SUCCEEDED": "#2e7d32",
    "Succeeded": "#2e7d32",
    "FAILED": "#c62828",
    "Failed": "#c62828",
    "RUNNING": "#1565c0",
    "Running": "#1565c0",
    "SKIPPED": "#9e9e9e",
    "CACHED": "#6a1b9a",
    "PENDING": "#ef6c00",
    "Pending": "#ef6c00",
    "CANCELED": "#616161",
}
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em 2em;color:#222}a{color:#1565c0}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f5f5f5}pre{background:#f7f7f7;padding:.8em;overflow:auto;
max-height:70vh;font-size:12px}.state{font-weight:600}.muted{color:#777}nav a{margin-right:1em}
iframe{width:100%;height:520px;border:1px solid #ddd}code{font-size:12px}
"""


def document(title: str, body: str) -> str:
    nav = (
        "<nav><a href='/_/'>Local Kubeflow</a><a href='/_/pipeline/runs'>Pipeline runs</a></nav>"
        if title != "Local Kubeflow"
        else ""
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{nav}<h1>{escape(title)}</h1>{body}</body></html>"
    )


def state(value: Any) -> str:
    text = str(value or "UNKNOWN")
    return f"<span class='state' style='color:{STATE_COLOURS.get(text, '#444')}'>{escape(text)}</span>"


def table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def value(v: Any) -> str:
    return escape(v if isinstance(v, str) else json.dumps(v, sort_keys=True))


def index() -> str:
    return (
        "<p>The local runtime's read-only views, at the paths Kubeflow's UIs use:</p><ul>"
        "<li><a href='/_/pipeline/#/runs'>Pipeline runs</a> (KFP)</li>"
        "<li>Katib: <code>/_/katib/experiment/&lt;namespace&gt;/&lt;name&gt;</code></li>"
        "<li>Training jobs: <code>/_/trainjobs/details/&lt;namespace&gt;/&lt;name&gt;</code> "
        "(also pytorchjobs, tfjobs, xgboostjobs, jaxjobs, mpijobs)</li>"
        "<li>Models: <code>/_/models/details/&lt;namespace&gt;/&lt;name&gt;</code></li></ul>"
    )


def hash_router() -> str:
    """The KFP UI's ``#/runs/details/<id>`` (and ``#/runs``, ``#/experiments/details/<id>``) forwarded."""
    script = (
        "var h=location.hash.replace(/^#/,'');var m;"
        "if((m=h.match(/^\\/runs\\/details\\/([^/?]+)/)))location.replace('/_/pipeline/runs/details/'+m[1]);"
        "else if((m=h.match(/^\\/runs\\/new\\?(?:.*&)?cloneFromRun=([^&]+)/)))"
        "location.replace('/_/pipeline/runs/clone/'+m[1]);"
        "else if((m=h.match(/^\\/compare\\?(.*)$/)))location.replace('/_/pipeline/compare?'+m[1]);"
        "else if((m=h.match(/^\\/experiments\\/details\\/([^/?]+)/)))"
        "location.replace('/_/pipeline/runs?experiment_id='+m[1]);"
        "else location.replace('/_/pipeline/runs');"
    )
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><script>{script}</script></head></html>"


def runs_table(runs: list[dict[str, Any]], experiment: str | None, wanted_state: str | None) -> str:
    rows = [
        [
            f"<input type='checkbox' name='runlist' value='{escape(r['run_id'])}'> "
            f"<a href='/_/pipeline/runs/details/{quote(r['run_id'])}'>{escape(r.get('display_name') or r['run_id'])}</a>",
            state(r.get("state")),
            escape(str(r.get("created_at", ""))),
            escape(
                str(r.get("finished_at", "") if not str(r.get("finished_at", "")).startswith("1970") else "")
            ),
            f"<a href='/_/pipeline/runs?experiment_id={quote(str(r.get('experiment_id', '')))}'>"
            f"{escape(str(r.get('experiment_id', ''))[:8])}</a>",
        ]
        for r in runs
    ]
    filters = " ".join(
        f"<a href='/_/pipeline/runs?state={s}{'&experiment_id=' + quote(experiment) if experiment else ''}'>{s.lower()}</a>"
        for s in ("RUNNING", "SUCCEEDED", "FAILED")
    )
    shown = ", ".join(x for x in (f"experiment {experiment}" if experiment else "", wanted_state or "") if x)
    return (
        f"<p>{len(runs)} run(s){' (' + escape(shown) + ')' if shown else ''}. State: {filters} · "
        "<a href='/_/pipeline/runs'>all</a></p><form action='/_/pipeline/compare' method='get'>"
        + table(["run", "state", "created", "finished", "experiment"], rows)
        + "<button type='submit'>Compare the checked runs</button></form>"
    )


def compare_page(runs: list[dict[str, Any]]) -> str:
    """Two or more runs side by side: their params, and each task's numeric outputs (the run's metrics)."""

    def metrics(run: dict[str, Any]) -> dict[str, Any]:
        found = {}
        for task in (run.get("run_details") or {}).get("task_details") or []:
            for name, v in (task.get("output_parameters") or {}).items():
                try:
                    found[f"{task['display_name']}.{name}"] = float(v)
                except (TypeError, ValueError):
                    continue
        return found

    heads = ["", *(r.get("display_name") or r["run_id"] for r in runs)]
    params = [(r.get("runtime_config") or {}).get("parameters") or {} for r in runs]
    found = [metrics(r) for r in runs]
    sections = []
    for title, values in (("Parameters", params), ("Metrics", found)):
        names = sorted({k for v in values for k in v})
        rows = []
        for name in names:
            cells = [v.get(name) for v in values]
            differ = len({json.dumps(c, sort_keys=True) for c in cells}) > 1
            label = f"<b>{escape(name)}</b>" if differ else escape(name)
            rows.append(
                [
                    label,
                    *(
                        escape("" if c is None else f"{c:.6g}" if isinstance(c, float) else str(c))
                        for c in cells
                    ),
                ]
            )
        sections.append(f"<h2>{title}</h2>" + table(heads, rows))
    links = " · ".join(
        f"<a href='/_/pipeline/runs/details/{quote(r['run_id'])}'>{escape(r.get('display_name') or r['run_id'])}</a>"
        for r in runs
    )
    return f"<p>{links} (rows in bold differ)</p>" + "".join(sections)


def _dag(spec: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """The pipeline's tasks by display name, with their dependencies (sub-DAGs such as ``dsl.If`` inlined)."""
    spec = spec.get("pipeline_spec", spec) if isinstance(spec, dict) else {}
    components = spec.get("components") or {}
    order: list[str] = []
    deps: dict[str, list[str]] = {}

    def walk(dag: dict[str, Any], outer: list[str]) -> None:
        names = {
            key: (task.get("taskInfo") or {}).get("name", key)
            for key, task in (dag.get("tasks") or {}).items()
        }
        for key, task in (dag.get("tasks") or {}).items():
            before = [names.get(d, d) for d in task.get("dependentTasks") or []] or outer
            component = components.get((task.get("componentRef") or {}).get("name", ""), {})
            if "dag" in component:  # a condition or loop: its tasks follow what it follows
                walk(component["dag"], before)
                continue
            order.append(names[key])
            deps[names[key]] = before

    walk((spec.get("root") or {}).get("dag") or {}, [])
    return order, deps


def graph_svg(order: list[str], deps: dict[str, list[str]], states: dict[str, str]) -> str:
    """Tasks in layers (longest path from a root), edges from each dependency, boxes coloured by state."""
    layer: dict[str, int] = {}

    def depth(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in layer:
            parents = [p for p in deps.get(name, []) if p in deps and p not in seen]
            layer[name] = 1 + max((depth(p, (*seen, name)) for p in parents), default=-1)
        return layer[name]

    for name in order:
        depth(name)
    rows: dict[int, list[str]] = {}
    for name in order:
        rows.setdefault(layer[name], []).append(name)
    w, h, gap_x, gap_y = 150, 34, 30, 36
    pos = {
        n: (20 + i * (w + gap_x), 20 + d * (h + gap_y))
        for d, names in rows.items()
        for i, n in enumerate(names)
    }
    width = 40 + max(len(v) for v in rows.values()) * (w + gap_x) if rows else 200
    height = 40 + len(rows) * (h + gap_y)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' class='graph'>"]
    for name, parents in deps.items():
        for parent in parents:
            if parent in pos and name in pos:
                (x1, y1), (x2, y2) = pos[parent], pos[name]
                parts.append(
                    f"<line x1='{x1 + w / 2}' y1='{y1 + h}' x2='{x2 + w / 2}' y2='{y2}' stroke='#999'/>"
                )
    for name, (x, y) in pos.items():
        st = states.get(name, "PENDING" if states else "")
        colour = STATE_COLOURS.get(st, "#bbb")
        parts.append(
            f"<g class='node' data-task='{escape(name)}' data-state='{escape(st)}'>"
            f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='6' fill='white' stroke='{colour}' "
            f"stroke-width='3'/><text x='{x + 8}' y='{y + 15}' font-size='13'>{escape(name)}</text>"
            f"<text x='{x + 8}' y='{y + 29}' font-size='11' fill='{colour}'>{escape(st.lower())}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _artifact_link(uri: str) -> tuple[str, str]:
    """(an href serving the artifact, its label) for an ``s3://`` URI or a local path; ("", uri) otherwise."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        key = quote(parts.path.lstrip("/"))
        return f"/_/pipeline/artifacts/get?source=s3&bucket={quote(parts.netloc)}&key={key}", uri
    if uri.startswith("/"):
        return f"/_/pipeline/artifacts/get?source=local&path={quote(uri)}", uri
    return "", uri


def run_page(run: dict[str, Any], spec: dict[str, Any]) -> str:
    """A run: its graph, tasks, visualizations and inputs (``spec``: its pipeline spec)."""
    run_id = run["run_id"]
    tasks = [t for t in (run.get("run_details") or {}).get("task_details") or [] if t.get("parent_task_id")]
    shown = {
        t["display_name"]: ("CACHED" if t.get("cache_fingerprint") else t.get("state", "")) for t in tasks
    }
    order, deps = _dag(spec)
    params = (run.get("runtime_config") or {}).get("parameters") or {}
    out = [
        f"<p>Run <code>{escape(run_id)}</code> {state(run.get('state'))} · created {escape(str(run.get('created_at', '')))}"
        f" · <a href='/_/pipeline/runs?experiment_id={quote(str(run.get('experiment_id', '')))}'>experiment runs</a>"
        f" · <a href='/_/pipeline/runs/clone/{quote(run_id)}'>Clone run</a></p>",
    ]
    if (run.get("error") or {}).get("message"):
        out.append(f"<pre>{escape(run['error']['message'])}</pre>")
    out.append("<h2>Graph</h2>" + graph_svg(order, deps, shown))
    rows = []
    for t in tasks:
        name = t["display_name"]
        log = (
            f"<a href='/_/pipeline/runs/details/{quote(run_id)}/logs/{quote(t['pod_name'])}'>log</a>"
            if t.get("pod_name")
            else "<span class='muted'>no pod (cached or skipped)</span>"
        )
        outputs = "<br>".join(
            f"{escape(k)} = {value(v)}" for k, v in (t.get("output_parameters") or {}).items()
        )
        artifacts = []
        for k, uri in (t.get("output_artifacts") or {}).items():
            href, label = _artifact_link(str(uri))
            artifacts.append(
                f"{escape(k)}: " + (f"<a href='{href}'>{escape(label)}</a>" if href else escape(label))
            )
        error = (t.get("error") or {}).get("message", "")
        rows.append(
            [
                f"<a id='task-{escape(name)}'>{escape(name)}</a>",
                state(shown[name]),
                escape(str(t.get("start_time", ""))),
                escape(str(t.get("end_time", ""))),
                outputs + (f"<pre>{escape(error)}</pre>" if error else ""),
                "<br>".join(artifacts),
                log,
            ]
        )
    out.append(
        "<h2>Tasks</h2>"
        + table(["task", "state", "started", "finished", "outputs", "artifacts", "log"], rows)
    )
    for t in tasks:
        details = t.get("output_artifact_metadata") or {}
        for name, uri in (t.get("output_artifacts") or {}).items():
            shown_as = visualization(str(uri), name, details.get(name) or {})
            if shown_as:
                out.append(f"<h2>{escape(t['display_name'])}: {escape(name)}</h2>{shown_as}")
    out.append(
        "<h2>Inputs</h2>"
        + table(["param", "value"], [[escape(k), value(v)] for k, v in sorted(params.items())])
    )
    return "".join(out)


def visualization(uri: str, name: str, detail: dict[str, Any]) -> str:
    """How the KFP UI shows an output artifact: a Metrics artifact's scalars as a table, a
    ClassificationMetrics' confusion matrix and ROC curve, an HTML or Markdown artifact rendered; "" for
    the others (their link is in the tasks table)."""
    kind, metadata = detail.get("schema_title", ""), detail.get("metadata") or {}
    if kind == "system.Metrics":
        rows = [[escape(k), value(v)] for k, v in sorted(metadata.items()) if k != "display_name"]
        return table(["metric", "value"], rows) if rows else "<p class='muted'>no metrics logged</p>"
    if kind == "system.ClassificationMetrics":
        return _confusion_matrix(metadata.get("confusionMatrix") or {}) + roc_curve(
            metadata.get("confidenceMetrics") or []
        )
    html_like = kind in ("system.HTML", "system.Markdown") or (
        not kind and (name in ("report", "html") or uri.endswith(".html"))
    )
    href = _artifact_link(uri)[0] if html_like else ""
    return f"<iframe class='viz' src='{href}'></iframe>" if href else ""


def _confusion_matrix(matrix: dict[str, Any]) -> str:
    labels = [str(a.get("displayName", "")) for a in matrix.get("annotationSpecs") or []]
    rows = [r.get("row") or [] for r in matrix.get("rows") or []]
    if not labels or not rows:
        return ""
    body = [
        [f"<b>{escape(label)}</b>", *(escape(f"{c:g}" if isinstance(c, float) else str(c)) for c in row)]
        for label, row in zip(labels, rows, strict=False)
    ]
    return "<h3>Confusion matrix</h3>" + table(["actual \\ predicted", *labels], body)


def roc_curve(points: list[dict[str, Any]]) -> str:
    """The ROC curve (false positive rate, recall) of a ClassificationMetrics artifact, as an SVG line."""
    xy = sorted(
        (float(p.get("falsePositiveRate", 0.0)), float(p.get("recall", 0.0)))
        for p in points
        if isinstance(p, dict)
    )
    if not xy:
        return ""
    size, pad = 260, 30
    span = size - 2 * pad
    line = " ".join(f"{pad + x * span:.1f},{size - pad - y * span:.1f}" for x, y in xy)
    return (
        f"<h3>ROC curve</h3><svg xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' class='roc'>"
        f"<rect x='{pad}' y='{pad}' width='{span}' height='{span}' fill='none' stroke='#ccc'/>"
        f"<line x1='{pad}' y1='{size - pad}' x2='{size - pad}' y2='{pad}' stroke='#ddd' stroke-dasharray='4'/>"
        f"<polyline points='{line}' fill='none' stroke='#1565c0' stroke-width='2' data-points='{len(xy)}'/>"
        f"<text x='{size / 2}' y='{size - 8}' font-size='11' text-anchor='middle'>false positive rate</text>"
        f"<text x='10' y='{size / 2}' font-size='11' transform='rotate(-90 10 {size / 2})' "
        "text-anchor='middle'>recall</text></svg>"
    )


def _conditions(obj: dict[str, Any]) -> str:
    rows = [
        [
            escape(c.get("type", "")),
            escape(str(c.get("status", ""))),
            escape(c.get("reason", "")),
            escape(c.get("message", "")),
        ]
        for c in (obj.get("status") or {}).get("conditions") or []
    ]
    return table(["condition", "status", "reason", "message"], rows)


def _pods(pods: list[dict[str, Any]]) -> str:
    rows = []
    for pod in pods:
        meta = pod["metadata"]
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        logs = " ".join(
            f"<a href='/_/logs/{quote(meta['namespace'])}/{quote(meta['name'])}?container={quote(c)}'>{escape(c)}</a>"
            for c in containers
        )
        rows.append([escape(meta["name"]), state((pod.get("status") or {}).get("phase")), logs])
    return table(["pod", "phase", "logs"], rows)


def _trial_pod(trial: str, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    mine = [p for p in pods if (p["metadata"].get("labels") or {}).get("katib.kubeflow.org/trial") == trial]
    return mine[0] if mine else None


def _trial_state(trial: dict[str, Any]) -> str:
    for c in reversed((trial.get("status") or {}).get("conditions") or []):
        if c.get("status") == "True":
            return str(c.get("type"))
    return "Created"


def objective_plot(points: list[tuple[str, float | None]], metric: str) -> str:
    """The objective per trial, in creation order (a point per trial that reported one)."""
    known = [(i, n, v) for i, (n, v) in enumerate(points) if v is not None]
    if not known:
        return "<p class='muted'>No trial has reported the objective yet.</p>"
    lo, hi = min(v for _, _, v in known), max(v for _, _, v in known)
    span = (hi - lo) or 1.0
    w, h, pad = 520, 220, 36
    step = (w - 2 * pad) / max(1, len(points) - 1)
    circles = "".join(
        f"<circle class='point' cx='{pad + i * step:.1f}' cy='{h - pad - (v - lo) / span * (h - 2 * pad):.1f}' r='5' "
        f"fill='#1565c0'><title>{escape(n)}: {v:.6g}</title></circle>"
        for i, n, v in known
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' class='objective'>"
        f"<line x1='{pad}' y1='{h - pad}' x2='{w - pad}' y2='{h - pad}' stroke='#999'/>"
        f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{h - pad}' stroke='#999'/>"
        f"<text x='{pad}' y='{pad - 8}' font-size='12'>{escape(metric)} (max {hi:.4g}, min {lo:.4g})</text>"
        f"<text x='{w - pad}' y='{h - 10}' font-size='12' text-anchor='end'>trial</text>{circles}</svg>"
    )


def experiment_page(
    experiment: dict[str, Any], trials: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> str:
    spec, status = experiment.get("spec") or {}, experiment.get("status") or {}
    metric = (spec.get("objective") or {}).get("objectiveMetricName", "objective")
    best = status.get("currentOptimalTrial") or {}
    rows, points = [], []
    for trial in trials:
        name = trial["metadata"]["name"]
        assignments = ", ".join(
            f"{escape(a['name'])}={escape(str(a['value']))}"
            for a in (trial.get("spec") or {}).get("parameterAssignments") or []
        )
        observed = {
            m["name"]: m.get("latest")
            for m in ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []
        }
        objective = observed.get(metric)
        try:
            points.append((name, float(objective) if objective not in (None, "unavailable") else None))
        except (TypeError, ValueError):
            points.append((name, None))
        pod = _trial_pod(name, pods)
        log = (
            f"<a href='/_/logs/{quote(pod['metadata']['namespace'])}/{quote(pod['metadata']['name'])}'>log</a>"
            if pod
            else "<span class='muted'>pod gone (Katib deletes a finished trial's job unless it retains it)</span>"
        )
        rows.append([escape(name), assignments, escape(str(objective)), state(_trial_state(trial)), log])
    best_params = ", ".join(f"{a['name']}={a['value']}" for a in best.get("parameterAssignments") or [])
    return (
        f"<p>Algorithm {escape(str((spec.get('algorithm') or {}).get('algorithmName', '')))} · objective "
        f"{escape(metric)} ({escape(str((spec.get('objective') or {}).get('type', '')))}) · "
        f"{status.get('trialsSucceeded', 0)} succeeded, {status.get('trialsFailed', 0)} failed of "
        f"{escape(str(spec.get('maxTrialCount', '?')))}</p>"
        f"<p>Best trial: {escape(best.get('bestTrialName') or 'none yet')} {escape(best_params)}</p>"
        + _conditions(experiment)
        + f"<h2>{escape(metric)} per trial</h2>"
        + objective_plot(points, metric)
        + "<h2>Trials</h2>"
        + table(["trial", "parameters", metric, "state", "log"], rows)
    )


def job_page(job: dict[str, Any], pods: list[dict[str, Any]]) -> str:
    meta = job["metadata"]
    return (
        f"<p>{escape(job.get('kind', ''))} <code>{escape(meta['namespace'])}/{escape(meta['name'])}</code></p>"
        + _conditions(job)
        + "<h2>Pods</h2>"
        + _pods(pods)
    )


def model_page(isvc: dict[str, Any], pods: list[dict[str, Any]]) -> str:
    status = isvc.get("status") or {}
    ready = next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "Unknown"
    )
    predictor = (status.get("components") or {}).get("predictor") or {}
    traffic = table(
        ["revision", "percent", "latest", "tag"],
        [
            [
                escape(str(t.get("revisionName", ""))),
                escape(str(t.get("percent", ""))),
                escape(str(t.get("latestRevision", ""))),
                escape(str(t.get("tag", ""))),
            ]
            for t in predictor.get("traffic") or []
        ],
    )
    url = status.get("url") or ""
    return (
        f"<p>Ready: {state('Succeeded' if ready == 'True' else ready)} · URL "
        f"{f'<code>{escape(url)}</code>' if url else '<span class=muted>none yet</span>'}</p>"
        + "<h2>Traffic</h2>"
        + traffic
        + _conditions(isvc)
        + "<h2>Predictor pods</h2>"
        + _pods(pods)
    )


def log_page(text: str | None, follow_link: str | None) -> str:
    follow = (
        f"<p><a href='{escape(follow_link)}'>follow</a> (stream it as it is written)</p>"
        if follow_link
        else ""
    )
    return f"{follow}<pre class='log'>{escape(text or '(empty)')}</pre>"
