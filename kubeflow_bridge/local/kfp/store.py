"""SQLite persistence of the local KFP API's objects (one JSON document per row)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from kubeflow_bridge.local.paths import make_private

TABLES = ("experiments", "pipelines", "versions", "runs", "recurring_runs")


class Store:
    """Keeps API objects by kind and id; `_`-prefixed keys are internal and never served."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        make_private(path)  # it holds Secrets and env values
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        for table in TABLES:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL)"
            )

    def close(self) -> None:
        self._db.close()

    def put(self, table: str, ident: str, obj: dict[str, Any]) -> None:
        row = self._db.execute(f"SELECT seq FROM {table} WHERE id = ?", (ident,)).fetchone()
        if row is None:
            seq = self._db.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}").fetchone()[0]
        else:
            seq = row[0]
        obj["_seq"] = seq
        self._db.execute(
            f"INSERT OR REPLACE INTO {table} (id, seq, body) VALUES (?, ?, ?)", (ident, seq, json.dumps(obj))
        )

    def get(self, table: str, ident: str) -> dict[str, Any] | None:
        row = self._db.execute(f"SELECT body FROM {table} WHERE id = ?", (ident,)).fetchone()
        return json.loads(row[0]) if row else None

    def all(self, table: str) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._db.execute(f"SELECT body FROM {table} ORDER BY seq")]

    def delete(self, table: str, ident: str) -> bool:
        return self._db.execute(f"DELETE FROM {table} WHERE id = ?", (ident,)).rowcount > 0


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as served: internal keys dropped."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}
