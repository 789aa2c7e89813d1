"""``kubeflow-bridge demo`` (what ``make demo`` runs): the retraining workflow on both orchestrators.

1. ``kubeflow-bridge local up`` (reuses a running runtime) and its ``<state>/env`` for the next steps;
2. the retraining DAG with ``airflow dags test anomaly_retraining --conf ...``, then its run's state
   from Airflow's metadata DB (``dags test`` may exit 0 although a task failed);
3. the same workflow as the KFP pipeline through the runtime's KFP API (in the trainer environment);
4. ``kubeflow-bridge compare`` of the two runs -> ``<out>/comparison.html`` and ``.json``;
5. the deployed models' URLs and a sample prediction. The runtime stays up.

Each subprocess writes its output to ``<out>/logs/<step>.log``; a failing step names itself and its log.
A failed workflow run does not stop the demo: the comparison still shows it, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubeflow_bridge import workflow
from kubeflow_bridge.local.paths import read_env_file

DAG_ID = "anomaly_retraining"
#: Small inputs that finish in minutes on 2 cores; both orchestrators get the same ones.
DEMO_PARAMS: dict[str, Any] = {
    "rows": 5000,
    "max_trials": 2,
    "parallel_trials": 2,
    "tune_epochs": 1,
    "epochs": 2,
    "window_end": "2026-02-01T00:00:00Z",
}
#: One InferenceService per orchestrator, so each run's gate judges its own serving model.
SERVICES = {"airflow": "anomaly-vae-airflow", "kfp": "anomaly-vae-kfp"}
#: And one MLflow registered model each, so each gate's champion is its own side's.
REGISTERED_MODELS = {"airflow": "anomaly-detector-airflow", "kfp": "anomaly-detector-kfp"}
MODEL_NAME = "anomaly-vae"
STEPS_TOTAL = 5

#: ``runner(argv, env, log_path) -> exit code``: runs a command with its output in ``log_path``.
Runner = Callable[[Sequence[str], Mapping[str, str], Path], int]


class StepFailed(RuntimeError):
    """A demo step failed; the message names the step, why, and where its log is."""

    def __init__(self, step: str, reason: str, log_path: Path | None = None, tail: str = "") -> None:
        self.step = step
        self.log_path = log_path
        where = f"; log: {log_path}" if log_path is not None else ""
        detail = f"\n--- last lines of the log ---\n{tail}" if tail else ""
        super().__init__(f"demo step '{step}' failed: {reason}{where}{detail}")


def run_logged(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> int:
    """Run ``argv`` with ``env``; stdout and stderr go to ``log_path``. Returns the exit code."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        return subprocess.run(
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        ).returncode


def _migrated(db: Path) -> bool:
    """Whether Airflow's SQLite database exists and has been migrated (an empty file, which a bare
    ``airflow`` command leaves, has not)."""
    import sqlite3

    if not db.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT version_num FROM alembic_version").fetchone() is not None
    except sqlite3.Error:
        return False


def _side(side: str) -> dict[str, Any]:
    """One side's own names, and the runtime's MLflow server (from its env file) for both sides."""
    tracking = (
        {"tracking_uri": os.environ["MLFLOW_TRACKING_URI"]} if os.environ.get("MLFLOW_TRACKING_URI") else {}
    )
    return {**tracking, "service_name": SERVICES[side], "registered_model": REGISTERED_MODELS[side]}


def airflow_conf(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The DAG run's ``--conf``: the demo params and the Airflow run's service and registered model."""
    return {**DEMO_PARAMS, **(params or {}), **_side("airflow")}


def kfp_param_args(params: Mapping[str, Any] | None = None) -> list[str]:
    """``--param name=value`` arguments for the pipeline submit: same inputs, the KFP run's own names."""
    merged = {**DEMO_PARAMS, **(params or {}), **_side("kfp")}
    args: list[str] = []
    for name, value in merged.items():
        args += ["--param", f"{name}={value}"]
    return args


def sample_payload(source: str = "synthetic", rows: int = 5) -> dict[str, Any]:
    """A V1 predict request of ``rows`` flat raw-channel rows (when no recorded telemetry is at hand)."""
    return workflow.smoke_payload(source, rows=rows)


def spiked_payload(
    rows: Sequence[Sequence[float]], std: Sequence[float], sigmas: float = 6.0
) -> dict[str, Any]:
    """A V1 predict request: recorded normal rows, then a copy of the last one ``sigmas`` std higher.

    The rows are consecutive time steps (the model computes its rolling features over them), so the
    last prediction is the spike's.

    Raises:
        ValueError: No rows, or rows and ``std`` differ in width.
    """
    if not rows:
        raise ValueError("need at least one recorded row to build a sample request")
    widths = {len(row) for row in rows}
    if widths != {len(std)}:
        raise ValueError(f"rows have widths {sorted(widths)} but std has {len(std)} channels")
    spike = [float(v) + sigmas * float(s) for v, s in zip(rows[-1], std, strict=True)]
    return {"instances": [[float(v) for v in row] for row in rows] + [spike]}


#: Run in the trainer environment (pandas, S3): the last normal rows of a run's ingested telemetry.
SAMPLE_ROWS_SCRIPT = """
import glob, json, os, sys
import pandas as pd
from trainer.io import local_input_dir
with local_input_dir(sys.argv[1], arg="dataset") as d:
    channels = json.load(open(os.path.join(d, "metadata.json")))["channels"]
    parts = sorted(glob.glob(os.path.join(d, "month=*", "*.parquet")))
    df = pd.concat(pd.read_parquet(p) for p in parts).sort_values("timestamp")
normal = df[df["label"] == 0][channels].tail(int(sys.argv[2]))
print(json.dumps({"rows": normal.to_numpy().tolist(), "std": df[channels].std().tolist()}))
"""


def last_line(text: str) -> str:
    """The last non-blank line of ``text`` ('' if none)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log ('' if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def trainer_python() -> str:
    """The trainer environment's interpreter (kfp lives there).

    Raises:
        StepFailed: The environment is missing.
    """
    from kubeflow_bridge.local.images import TRAINER_IMAGE, ImageMap, UnknownImage

    try:
        return ImageMap().resolve(TRAINER_IMAGE)[0]
    except UnknownImage as exc:
        raise StepFailed("kfp pipeline", f"{exc}; run `make setup` first") from exc


@dataclass
class Demo:
    """The demo's state: where things go, the environment the steps share, what failed.

    Attributes:
        state_dir: The local runtime's state folder.
        out: The report folder (logs go to ``<out>/logs``).
        runner: Runs a command into a log (the seam tests replace).
        env: The environment of every step (os.environ plus the runtime's env file).
        failures: Workflow runs that failed (the demo goes on to show them in the report).
    """

    state_dir: Path
    out: Path
    runner: Runner = run_logged
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    failures: list[str] = field(default_factory=list)

    def run_step(self, title: str, argv: Sequence[str], log_name: str) -> Path:
        """Run one command into ``<out>/logs/<log_name>.log``.

        Raises:
            StepFailed: It exited non-zero.
        """
        log_path = self.out / "logs" / f"{log_name}.log"
        code = self.runner(argv, self.env, log_path)
        if code != 0:
            raise StepFailed(
                title, f"`{shlex.join(argv)}` exited with code {code}", log_path, log_tail(log_path)
            )
        return log_path

    # -- steps --------------------------------------------------------------------------------------
    def local_up(self) -> None:
        """Start (or reuse) the runtime; load its env file into the steps' environment."""
        argv = [
            sys.executable,
            "-m",
            "kubeflow_bridge.cli",
            "local",
            "up",
            "--state-dir",
            str(self.state_dir),
        ]
        log = self.run_step("local runtime", argv, "local-up")
        env_file = self.state_dir / "env"
        try:
            loaded = read_env_file(env_file)
        except (FileNotFoundError, ValueError) as exc:
            raise StepFailed("local runtime", f"cannot read {env_file}: {exc}", log) from exc
        self.env.update(loaded)
        os.environ.update(loaded)  # in-process steps (collectors, clients) read it too
        print(f"      runtime up; environment from {env_file} ({len(loaded)} variables)")

    def airflow_run(self) -> str | None:
        """``airflow dags test`` the retraining DAG; return its run id (None when it failed)."""
        airflow = str(Path(sys.executable).with_name("airflow"))
        home = Path(self.env["AIRFLOW_HOME"])
        if not _migrated(home / "airflow.db"):
            print(f"      no migrated Airflow DB under {home}: airflow db migrate")
            self.run_step("airflow db migrate", [airflow, "db", "migrate"], "airflow-db-migrate")
        started = datetime.now(UTC)
        conf = json.dumps(airflow_conf())
        argv = [airflow, "dags", "test", DAG_ID, "--conf", conf]
        log = self.run_step("airflow dag", argv, "airflow-dags-test")
        from airflow.models.trigger import Trigger

        from kubeflow_bridge.compare.airflow_collector import collect_airflow_run

        # `dags test` ran its triggers in this process and left their rows; drop them, as a triggerer's
        # clean-up would, so a triggerer started later (`make airflow`) never picks them up.
        Trigger.clean_unused()
        try:
            run = collect_airflow_run(DAG_ID, from_cluster=False)
        except LookupError as exc:
            raise StepFailed("airflow dag", str(exc), log) from exc
        if run.start is None or run.start < started - timedelta(seconds=5):
            raise StepFailed("airflow dag", "`airflow dags test` recorded no new DAG run", log, log_tail(log))
        for step in run.steps:
            took = step.duration_seconds
            print(f"        {step.step:<11} {step.state:<15} {'' if took is None else f'{took:6.1f}s'}")
        if run.state != "succeeded":
            failed = [s.step for s in run.steps if s.state in ("failed", "upstream_failed")]
            task_logs = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run.run_id}"
            self.failures.append(
                f"Airflow run {run.run_id} ended {run.state}; failed tasks {failed}; "
                f"task logs under {task_logs}; dags test log {log}"
            )
            print(f"      Airflow run {run.run_id}: {run.state} (failed tasks: {', '.join(failed) or '?'})")
        else:
            print(f"      Airflow run {run.run_id}: succeeded")
        deploy = run.step("deploy")
        if deploy is not None and deploy.state == "skipped":
            print(
                "      (the gate kept the serving model: the new one did not clear the threshold, beat the "
                "baselines or beat the serving model's F-score; a re-run with the same params scores the same)"
            )
        return run.run_id

    def kfp_run(self) -> str:
        """Submit the KFP pipeline to the runtime's KFP API and wait; return the run id."""
        argv = [trainer_python(), "-m", "kubeflow_bridge.pipelines.submit", *kfp_param_args(), "--wait"]
        log_path = self.out / "logs" / "kfp-submit.log"
        code = self.runner(argv, self.env, log_path)
        text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
        run_id = last_line(text)
        if code == 1 and run_id and " " not in run_id:
            self.failures.append(f"KFP run {run_id} did not succeed; log {log_path}")
            print(f"      KFP run {run_id}: did not succeed")
            return run_id
        if code != 0 or not run_id or " " in run_id:
            raise StepFailed("kfp pipeline", f"submit exited with code {code}", log_path, log_tail(log_path))
        print(f"      KFP run {run_id}: succeeded")
        return run_id

    def compare(self, airflow_run_id: str | None, kfp_run_id: str) -> None:
        """Write the comparison report of the two runs."""
        from kubeflow_bridge.compare import cli as compare_cli

        argv = ["--airflow-dag-id", DAG_ID, "--kfp-run-id", kfp_run_id, "--out", str(self.out)]
        if airflow_run_id:
            argv += ["--airflow-run-id", airflow_run_id]
        kfp_host = self.env.get("KUBEFLOW_BRIDGE_KFP_ENDPOINT") or self.env.get("KFP_HOST")
        if kfp_host:
            argv += ["--kfp-host", kfp_host]
        if compare_cli.main(argv) != 0:
            raise StepFailed("comparison", "kubeflow-bridge compare failed (its error is above)")

    def sample_request(self, airflow_run_id: str | None, rows: int = 24) -> tuple[dict[str, Any], str]:
        """Recorded telemetry of the Airflow run plus a spike (flat zeros if that cannot be read)."""
        if airflow_run_id:
            prefix = workflow.run_prefix(str(workflow.DEFAULTS["artifact_root"]), airflow_run_id)
            dataset = workflow.uri(prefix, "dataset")
            argv = [trainer_python(), "-c", SAMPLE_ROWS_SCRIPT, dataset, str(rows - 1)]
            log_path = self.out / "logs" / "sample-rows.log"
            if self.runner(argv, self.env, log_path) == 0:
                try:
                    recorded = json.loads(last_line(log_path.read_text(encoding="utf-8")))
                    payload = spiked_payload(recorded["rows"], recorded["std"])
                    n = len(payload["instances"])
                    return payload, f"{n - 1} recorded normal rows of {dataset}, then the last one +6 std"
                except (ValueError, KeyError, TypeError):
                    pass
            print(f"      (could not read recorded rows, see {log_path}; sending flat rows)")
        return sample_payload(rows=5), "5 flat rows"

    def show_models(self, airflow_run_id: str | None = None) -> None:
        """Print each deployed model's URL and one sample prediction."""
        import httpx

        from kubeflow_bridge.clients.kube import INFERENCESERVICE, KubeflowObjectClient
        from kubeflow_bridge.clients.kube.results import isvc_endpoint

        namespace = str(workflow.DEFAULTS["namespace"])
        predicted = False
        with KubeflowObjectClient.from_kubeconfig(self.env.get("KUBECONFIG")) as client:
            endpoints = {}
            for orchestrator, name in SERVICES.items():
                isvc = client.get(INFERENCESERVICE, name, namespace=namespace)
                if isvc is None:
                    print(
                        f"      {orchestrator}: no InferenceService {namespace}/{name} (the gate did not deploy)"
                    )
                    continue
                endpoints[orchestrator] = endpoint = isvc_endpoint(isvc)
                print(f"      {orchestrator}: {namespace}/{name} at {endpoint.url} (ready: {endpoint.ready})")
        for endpoint in endpoints.values():
            if not endpoint.url or not endpoint.ready:
                continue
            payload, what = self.sample_request(airflow_run_id)
            url = f"{endpoint.url}/v1/models/{MODEL_NAME}:predict"
            try:
                answer = httpx.post(url, json=payload, timeout=30)
            except httpx.HTTPError as exc:
                raise StepFailed("sample prediction", f"POST {url}: {exc}") from exc
            if answer.status_code != 200:
                raise StepFailed("sample prediction", f"POST {url}: HTTP {answer.status_code} {answer.text}")
            print(f"      sample prediction: POST {url} with {what}")
            body = answer.json()
            for number, prediction in list(enumerate(body.get("predictions") or [], 1))[-4:]:
                print(f"        row {number:>2}: {json.dumps(prediction)}")
            print(f"        (threshold {body.get('threshold')}; rows above it are flagged anomalous)")
            predicted = True
            break
        if not predicted:
            self.failures.append("no deployed model answered a sample prediction")


def _heading(number: int, title: str) -> float:
    print(f"[{number}/{STEPS_TOTAL}] {title}", flush=True)
    return time.perf_counter()


def _done(t0: float) -> None:
    print(f"      done in {time.perf_counter() - t0:.1f}s", flush=True)


def run_demo(demo: Demo) -> int:
    """Run the five steps; print progress, results and how to stop the runtime. Returns the exit code."""
    t_start = time.perf_counter()
    demo.env.setdefault("AIRFLOW_HOME", os.environ.get("KUBEFLOW_BRIDGE_HOME") or os.getcwd())
    if "AIRFLOW_CONFIG" not in demo.env and (Path(demo.env["AIRFLOW_HOME"]) / "airflow.cfg").exists():
        demo.env["AIRFLOW_CONFIG"] = str(Path(demo.env["AIRFLOW_HOME"]) / "airflow.cfg")
    os.environ.update({k: demo.env[k] for k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG") if k in demo.env})
    try:
        t0 = _heading(1, f"local runtime: kubeflow-bridge local up --state-dir {demo.state_dir}")
        demo.local_up()
        _done(t0)
        t0 = _heading(2, f"Airflow: airflow dags test {DAG_ID} (params {json.dumps(airflow_conf())})")
        airflow_run_id = demo.airflow_run()
        _done(t0)
        t0 = _heading(3, "KFP: the same workflow as a pipeline run on the runtime's KFP API")
        kfp_run_id = demo.kfp_run()
        _done(t0)
        t0 = _heading(4, f"comparison: kubeflow-bridge compare --out {demo.out}")
        demo.compare(airflow_run_id, kfp_run_id)
        _done(t0)
        t0 = _heading(5, "deployed models")
        demo.show_models(airflow_run_id)
        _done(t0)
    except StepFailed as exc:
        print(f"\n{exc}", file=sys.stderr)
        print(f"demo failed after {time.perf_counter() - t_start:.0f}s", file=sys.stderr)
        _print_runtime_line(demo.state_dir)
        return 1
    print(f"\nreport: {demo.out / 'comparison.html'} and {demo.out / 'comparison.json'}")
    print(f"step logs: {demo.out / 'logs'}")
    if demo.env.get("MLFLOW_TRACKING_URI"):
        print(f"MLflow (runs of both sides, registered champions): {demo.env['MLFLOW_TRACKING_URI']}")
    print(f"demo time: {time.perf_counter() - t_start:.0f}s")
    code = 0
    if demo.failures:
        print("\nthe demo finished, but:", file=sys.stderr)
        for failure in demo.failures:
            print(f"  - {failure}", file=sys.stderr)
        code = 1
    _print_runtime_line(demo.state_dir)
    return code


def _print_runtime_line(state_dir: Path) -> None:
    print(
        f"The local runtime is still up (state {state_dir}); stop it with: "
        f"kubeflow-bridge local down --state-dir {state_dir}"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``demo`` arguments."""
    parser = argparse.ArgumentParser(
        prog="kubeflow-bridge demo",
        description="Run the retraining workflow with Airflow and with KFP on the local runtime and compare.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="local runtime state folder (default: $KUBEFLOW_BRIDGE_HOME/.state/local)",
    )
    parser.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``kubeflow-bridge demo`` / ``python -m kubeflow_bridge.compare.demo``."""
    args = build_parser().parse_args(argv)
    home = Path(os.environ.get("KUBEFLOW_BRIDGE_HOME") or os.getcwd())
    state_dir = (args.state_dir or home / ".state" / "local").resolve()
    return run_demo(Demo(state_dir=state_dir, out=args.out.resolve()))


if __name__ == "__main__":
    raise SystemExit(main())
