"""The submit command's input handling (the run itself is exercised by the e2e test's KFP API)."""

from __future__ import annotations

import pytest

from kubeflow_bridge.pipelines.submit import main, parse_params


def test_parse_params() -> None:
    assert parse_params(["rows=5000", "window_end=2026-01-01T00:00:00Z", "source="]) == {
        "rows": "5000",
        "window_end": "2026-01-01T00:00:00Z",
        "source": "",
    }
    with pytest.raises(ValueError, match="name=value"):
        parse_params(["rows"])


def test_bad_params_are_refused_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1: nothing listens; a request would fail differently from these messages.
    assert main(["--host", "http://127.0.0.1:1", "--param", "rows=many"]) == 2
    assert "rows" in capsys.readouterr().err
    assert main(["--host", "http://127.0.0.1:1", "--param", "no_such_input=1"]) == 2
    assert "no_such_input" in capsys.readouterr().err


def test_no_endpoint_names_the_runtime(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBEFLOW_BRIDGE_KFP_ENDPOINT", raising=False)
    assert main([]) == 2
    assert "kubeflow-bridge local up" in capsys.readouterr().err
