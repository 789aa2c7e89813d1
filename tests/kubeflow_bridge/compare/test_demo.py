"""``kubeflow-bridge demo``: its pure parts and its errors (the whole demo is `make demo`; the DAG and
pipeline runs it chains have their own end-to-end tests)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from kubeflow_bridge import workflow
from kubeflow_bridge.compare import demo
from kubeflow_bridge.local.paths import S3Info, StatePaths, parse_env_file, write_client_files
from kubeflow_bridge.pipelines.submit import parse_params


def test_env_file_written_by_the_runtime_reads_back_exactly(tmp_path: Path) -> None:
    s3 = S3Info(endpoint="http://127.0.0.1:9001", access_key="AK 'quoted'", secret_key="s3cr$t")
    written = write_client_files(
        StatePaths(tmp_path), "http://127.0.0.1:6443", s3, kfp_url="http://127.0.0.1:8888"
    )
    parsed = parse_env_file((tmp_path / "env").read_text())
    assert parsed == written
    assert json.loads(parsed["AIRFLOW_CONN_AWS_DEFAULT"])["password"] == "s3cr$t"


def test_env_file_with_a_bad_line_names_it() -> None:
    with pytest.raises(ValueError, match=r"line 2 is not `export KEY=VALUE`"):
        parse_env_file("export A=1\nrm -rf /\n")
    assert parse_env_file("# comment\n\nexport B=''\n") == {"B": ""}


def test_both_orchestrators_get_the_same_valid_inputs_and_their_own_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")  # the runtime's, from its env file
    conf = demo.airflow_conf()
    args = demo.kfp_param_args()
    assert args[::2] == ["--param"] * (len(args) // 2)
    kfp = parse_params(args[1::2])
    assert conf["service_name"] == "anomaly-vae-airflow" and kfp["service_name"] == "anomaly-vae-kfp"
    assert conf["registered_model"] != kfp["registered_model"]
    own = ("service_name", "registered_model")
    assert {k: str(v) for k, v in conf.items() if k not in own} == {
        k: v for k, v in kfp.items() if k not in own
    }
    assert conf["tracking_uri"] == kfp["tracking_uri"] == "http://127.0.0.1:5999"
    assert set(conf) <= set(workflow.DEFAULTS)  # names the DAG's Params and the pipeline's inputs know
    workflow.check_params({**workflow.DEFAULTS, **conf})
    assert conf["rows"] < workflow.DEFAULTS["rows"] and conf["max_trials"] < workflow.DEFAULTS["max_trials"]


def test_sample_payload_has_one_value_per_raw_channel() -> None:
    payload = demo.sample_payload("synthetic", rows=5)
    assert len(payload["instances"]) == 5
    assert {len(row) for row in payload["instances"]} == {workflow.CHANNELS_PER_SOURCE["synthetic"]}
    with pytest.raises(ValueError, match="source"):
        demo.sample_payload("csv")


class FakeRunner:
    """The subprocess seam: records commands, writes ``output`` to the log, returns ``code``."""

    def __init__(self, code: int, output: str) -> None:
        self.code, self.output = code, output
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> int:
        self.calls.append(list(argv))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(self.output)
        return self.code


def test_a_failing_step_names_itself_its_log_and_its_last_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = FakeRunner(1, "starting\nthe runtime exited with code 3; see runtime.log\n")
    state = tmp_path / "state"
    code = demo.run_demo(demo.Demo(state_dir=state, out=tmp_path / "out", runner=runner, env={}))
    err = capsys.readouterr()
    assert code == 1
    assert runner.calls[0][-4:] == ["local", "up", "--state-dir", str(state)]
    log = tmp_path / "out" / "logs" / "local-up.log"
    assert f"demo step 'local runtime' failed: `{runner.calls[0][0]}" in err.err
    assert f"log: {log}" in err.err and "the runtime exited with code 3" in err.err
    assert "[2/5]" not in err.out  # nothing after the failed step ran
    assert f"kubeflow-bridge local down --state-dir {state}" in err.out


def test_runtime_up_without_an_env_file_is_a_clear_error(tmp_path: Path) -> None:
    d = demo.Demo(state_dir=tmp_path / "state", out=tmp_path / "out", runner=FakeRunner(0, "ok\n"), env={})
    with pytest.raises(demo.StepFailed, match=r"'local runtime' failed: cannot read .*state/env"):
        d.local_up()


def test_kfp_run_that_fails_is_recorded_and_a_submit_error_stops_the_demo(tmp_path: Path) -> None:
    d = demo.Demo(
        state_dir=tmp_path,
        out=tmp_path / "out",
        runner=FakeRunner(1, "run abc-123: failed\nabc-123\n"),
        env={},
    )
    assert d.kfp_run() == "abc-123"
    assert d.failures and "KFP run abc-123 did not succeed" in d.failures[0]
    assert "--wait" in d.runner.calls[0] and "service_name=anomaly-vae-kfp" in d.runner.calls[0]  # type: ignore[attr-defined]

    bad = demo.Demo(
        state_dir=tmp_path, out=tmp_path / "out", runner=FakeRunner(2, "submit: rows: below 1000\n"), env={}
    )
    with pytest.raises(demo.StepFailed, match=r"'kfp pipeline' failed: submit exited with code 2") as info:
        bad.kfp_run()
    assert "rows: below 1000" in str(info.value)


def test_demo_is_a_subcommand_of_the_console_script(capsys: pytest.CaptureFixture[str]) -> None:
    from kubeflow_bridge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "--state-dir" in capsys.readouterr().out


def test_spiked_payload_appends_the_last_row_raised_by_sigmas() -> None:
    payload = demo.spiked_payload([[1.0, 10.0], [2.0, 20.0]], [0.5, 2.0], sigmas=6.0)
    assert payload == {"instances": [[1.0, 10.0], [2.0, 20.0], [5.0, 32.0]]}
    with pytest.raises(ValueError, match="widths"):
        demo.spiked_payload([[1.0, 2.0, 3.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match="at least one"):
        demo.spiked_payload([], [1.0])


def test_sample_request_falls_back_to_flat_rows_when_the_telemetry_cannot_be_read(tmp_path: Path) -> None:
    runner = FakeRunner(1, "UriError: nothing under that S3 prefix\n")
    d = demo.Demo(state_dir=tmp_path, out=tmp_path / "out", runner=runner, env={})
    payload, what = d.sample_request("manual__2026-01-01T00:00:00+00:00")
    assert payload == demo.sample_payload(rows=5) and what == "5 flat rows"
    assert runner.calls[0][-2] == "s3://kubeflow-bridge/runs/manual__2026-01-01T00-00-00-00-00/raw"

    ok = FakeRunner(0, 'noise\n{"rows": [[1.0], [2.0]], "std": [1.0]}\n')
    d = demo.Demo(state_dir=tmp_path, out=tmp_path / "out", runner=ok, env={})
    payload, what = d.sample_request("run-1")
    assert payload == {"instances": [[1.0], [2.0], [8.0]]} and what.startswith("2 recorded normal rows")


def test_the_demo_migrates_a_missing_or_empty_airflow_database(tmp_path: Path) -> None:
    import sqlite3

    from kubeflow_bridge.compare.demo import _migrated

    db = tmp_path / "airflow.db"
    assert not _migrated(db)
    sqlite3.connect(db).close()  # what a bare `airflow` command leaves: a file with no tables
    assert not _migrated(db)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('a1b2c3')")
    assert _migrated(db)
