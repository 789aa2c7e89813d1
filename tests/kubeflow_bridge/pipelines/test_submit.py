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


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["rows=-5"], "rows: -5 is less than the minimum of 1000"),
        (["rows=1000000000"], "rows: .* is greater than the maximum"),
        (["f_score_threshold=2.5"], "f_score_threshold: 2.5 is greater than the maximum of 1"),
        (["canary_percent=150"], "canary_percent: 150 is greater than the maximum of 100"),
        (["namespace=Bad_NS"], "namespace: 'Bad_NS' does not match"),
        (["service_name=Bad/Name"], "service_name: 'Bad/Name' does not match"),
        (["lr_min=0.1", "lr_max=0.01"], "need 0 < lr_min < lr_max"),
        (["latent_dim_min=8", "latent_dim_max=4"], "latent_dim_min < latent_dim_max"),
        (["max_trials=2", "parallel_trials=4"], "parallel_trials \\(4\\) exceeds max_trials \\(2\\)"),
        (["source=not a source"], "source: 'not a source' does not match"),
        (["lookback=forever"], "lookback: 'forever' does not match"),
        (["contamination=0"], "contamination: 0.0 is less than or equal to the minimum of 0"),
        (["no_labels_policy=sometimes"], "no_labels_policy: 'sometimes' is not one of"),
        (["window_end=yesterday"], "window_end 'yesterday' is not an ISO 8601 date-time"),
    ],
)
def test_out_of_range_params_are_refused_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str], params: list[str], message: str
) -> None:
    """The DAG's trigger form rules, for a run started from the command line (port 1: nothing listens)."""
    argv = ["--host", "http://127.0.0.1:1"]
    for pair in params:
        argv += ["--param", pair]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("submit: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_an_unreachable_host_is_a_message_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "http://127.0.0.1:1", "--param", "rows=2000"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "127.0.0.1:1" in err and err.startswith("submit: ")
