"""JSON encoding for hot paths: orjson when installed (it is in the trainer env), else the stdlib."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def loads(data: bytes | str) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - the stdlib path

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(data: bytes | str) -> Any:
        return json.loads(data)


def clone(obj: Any) -> Any:
    """A deep copy of a JSON-shaped value (a serialization round trip: much faster than copy.deepcopy)."""
    return loads(dumps(obj))
