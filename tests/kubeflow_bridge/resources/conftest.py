"""Shared helpers for the resources tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kubeflow_bridge.resources.errors import ValidationError


def rejects(validate: Callable[[Any], None], obj: Any) -> dict[str, str]:
    """Run ``validate`` expecting a ValidationError; return ``{field: message}`` of its causes."""
    with pytest.raises(ValidationError) as info:
        validate(obj)
    causes = info.value.causes
    assert causes, "a ValidationError must carry causes"
    out: dict[str, str] = {}
    for cause in causes:
        out[cause.field] = (out[cause.field] + " | " if cause.field in out else "") + cause.message
    return out


@pytest.fixture
def expect_rejection() -> Callable[..., dict[str, str]]:
    return rejects
