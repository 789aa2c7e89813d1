"""The operators' how-to as a page of the Airflow UI (the provider's documentation URL points here).

``plugins/kubeflow_bridge_plugin.py`` mounts :func:`docs_app` under ``/kubeflow-bridge``, so
``/kubeflow-bridge/docs`` on the Airflow host renders ``docs/operators.md`` (read on each request).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

#: Where the page is mounted in the Airflow API server.
URL_PREFIX = "/kubeflow-bridge"


def render(markdown: str) -> str:
    """The how-to as a standalone HTML page (no scripts, no external assets)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").render(markdown)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"
        "pre{background:#f4f4f4;padding:.8rem;overflow-x:auto}code{font-size:.92em}"
    )
    title = html.escape(markdown.splitlines()[0].lstrip("# ").strip() if markdown else "kubeflow-bridge")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head><body>{body}</body></html>"


def docs_app(docs_file: Path) -> Any:
    """A FastAPI app serving ``GET /docs`` from ``docs_file`` (a clear 404 when the file is missing)."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="kubeflow-bridge docs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/docs", response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        if not docs_file.is_file():
            return HTMLResponse(
                f"kubeflow-bridge: no how-to at {html.escape(str(docs_file))}", status_code=404
            )
        return HTMLResponse(render(docs_file.read_text(encoding="utf-8")))

    return app
