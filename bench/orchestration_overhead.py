"""Orchestration overhead: the workflow as bare trainer steps, through Airflow, and through KFP.

Runs (1) the bare trainer steps in sequence by a script (ingest, preprocess, train with fixed
hyperparameters, evaluate) on the same parameters the DAG and the pipeline use, (2) DAG parse time per
DAG file against a DAG file that only imports airflow.sdk, and, when the local runtime is up (its env
file sourced: KUBECONFIG and KUBEFLOW_BRIDGE_KFP_ENDPOINT set) and ``--orchestrators`` is given,
(3) ``airflow dags test anomaly_retraining`` twice, with the trigger hold on (``[kubeflow_bridge]
trigger_fire_delay``'s default) and off (0), and (4) the KFP pipeline through the runtime's KFP API.
Each orchestrated run is read back by the comparison (``kubeflow-bridge compare``), which splits every
step into compute (the trainer's ``compute_seconds``, Katib's trial span...) and orchestration overhead.
Prints each wall time, the ratios to the bare steps, the overhead per step, the run's wall/compute ratio
and the compute a run would need for that ratio to be 1.10 (ten times its overhead); writes
bench/results/orchestration_overhead.json.

    .venv-trainer/bin/python bench/orchestration_overhead.py [--rows 20000] [--orchestrators]

Note: the orchestrated runs also tune (Katib trials) and deploy, which the bare script does not; the
report's per-step compute columns (reports/comparison.json) separate that out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubeflow_bridge import workflow  # noqa: E402

CONTROL_PYTHON = ROOT / ".venv" / "bin" / "python"
RESULTS = RESULTS_DIR / "orchestration_overhead.json"

_PARSE_PROBE = """
import importlib.util, sys, time
import airflow.sdk  # noqa: F401  (every DAG file pays this; measured separately)
t = time.perf_counter()
spec = importlib.util.spec_from_file_location("probe", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(time.perf_counter() - t)
"""
_BASELINE_DAG = "from airflow.sdk import DAG\nwith DAG(dag_id='baseline', schedule=None):\n    pass\n"


def bare_steps(rows: int, workdir: Path) -> dict[str, Any]:
    """Run the trainer steps in sequence as a plain script would; wall and compute per step."""
    prefix = str(workdir / "bare")
    params = {**workflow.DEFAULTS, "rows": rows}
    best = {"lr": 0.001, "latent_dim": 8}
    plan = [
        workflow.ingest_args(prefix, source=params["source"], rows=rows, seed=params["seed"]),
        workflow.preprocess_args(prefix),
        workflow.train_args(prefix, epochs=params["epochs"], seed=params["seed"], best_params=best),
        workflow.evaluate_args(prefix),
    ]
    steps: dict[str, Any] = {}
    started = time.perf_counter()
    for argv in plan:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "trainer", *argv], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"bare {argv[0]} failed:\n{proc.stderr[-3000:]}")
        summary = workflow.parse_trainer_summary(proc.stdout)
        steps[argv[0]] = {
            "wall_seconds": time.perf_counter() - t0,
            "compute_seconds": summary["compute_seconds"],
        }
    return {"wall_seconds": time.perf_counter() - started, "steps": steps}


def dag_parse_times(repeats: int = 3) -> dict[str, Any]:
    """Seconds to import each DAG file (beyond airflow.sdk), best of ``repeats``, in fresh interpreters."""
    if not CONTROL_PYTHON.exists():
        return {"skipped": f"{CONTROL_PYTHON} not found (run `make setup`)"}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "baseline_dag.py"
        baseline.write_text(_BASELINE_DAG)
        files = [baseline, *sorted((ROOT / "dags").glob("*.py"))]
        times: dict[str, float] = {}
        for path in files:
            best = float("inf")
            for _ in range(repeats):
                out = subprocess.run(
                    [str(CONTROL_PYTHON), "-c", _PARSE_PROBE, str(path)],
                    capture_output=True, text=True, check=True, cwd=ROOT,
                )  # fmt: skip
                best = min(best, float(out.stdout.strip().splitlines()[-1]))
            times[path.name] = best
    return times


def _runtime_ready() -> str | None:
    missing = [v for v in ("KUBECONFIG", "KUBEFLOW_BRIDGE_KFP_ENDPOINT") if not os.environ.get(v)]
    if missing:
        return (
            f"the local runtime's env is not loaded ({', '.join(missing)} unset): `kubeflow-bridge local up`"
        )
    return None


def comparison_of(argv: list[str]) -> dict[str, Any]:
    """The comparison's view of one run (``kubeflow-bridge compare ARGV``): per-step compute and overhead."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [str(CONTROL_PYTHON), "-m", "kubeflow_bridge.compare.cli", *argv, "--out", out],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        report = Path(out) / "comparison.json"
        if proc.returncode != 0 or not report.exists():
            return {"error": (proc.stderr or proc.stdout)[-2000:]}
        run: dict[str, Any] = json.loads(report.read_text())["runs"][0]
    return overhead_figures(run)


def overhead_figures(run: dict[str, Any]) -> dict[str, Any]:
    """Overhead per step (steps whose compute is known), the run's wall/compute and the 1.10 size."""
    per_step = {
        s["step"]: round(s["overhead_seconds"], 2)
        for s in run["steps"]
        if s.get("overhead_seconds") is not None
    }
    wall, overhead = run.get("wall_seconds"), run.get("overhead_seconds")
    figures: dict[str, Any] = {"state": run.get("state"), "step_overhead_seconds": per_step}
    if per_step:
        figures["mean_step_overhead_seconds"] = round(sum(per_step.values()) / len(per_step), 2)
    if wall and overhead is not None and wall > overhead:
        figures["wall_over_compute"] = round(wall / (wall - overhead), 2)
        figures["overhead_seconds"] = round(overhead, 1)
        figures["compute_for_1_10_seconds"] = round(10 * overhead, 0)  # (C + O) / C = 1.10 at C = 10 O
    return figures


def airflow_run(rows: int, *, hold: bool = True) -> dict[str, Any]:
    """``airflow dags test anomaly_retraining`` with the bench's rows (trigger hold on or off); wall time."""
    conf = json.dumps({"rows": rows, "artifact_root": workflow.DEFAULTS["artifact_root"]})
    env = dict(os.environ)
    if not hold:
        env["AIRFLOW__KUBEFLOW_BRIDGE__TRIGGER_FIRE_DELAY"] = "0"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "airflow"), "dags", "test", "anomaly_retraining", "--conf", conf],
        capture_output=True, text=True, check=False, cwd=ROOT, env=env,
    )  # fmt: skip
    result = {"wall_seconds": time.perf_counter() - t0, "exit_code": proc.returncode}
    return {**result, **comparison_of(["--airflow-dag-id", "anomaly_retraining"])}


def kfp_run(rows: int) -> dict[str, Any]:
    """The compiled pipeline through the runtime's KFP API (bridge KFP client); wall time."""
    from kubeflow_bridge.clients.kfp import KfpClient
    from kubeflow_bridge.resources.kfp import build_run_request, parse_pipeline_yaml

    spec = parse_pipeline_yaml(
        (ROOT / "kubeflow_bridge" / "pipelines" / "anomaly_pipeline.yaml").read_bytes()
    )
    client = KfpClient(os.environ["KUBEFLOW_BRIDGE_KFP_ENDPOINT"])
    t0 = time.perf_counter()
    body = build_run_request(display_name="bench-overhead", pipeline_spec=spec, parameters={"rows": rows})
    run = client.create_run(body)
    outcome = client.wait_for_run(run["run_id"], timeout=3600)
    result = {"wall_seconds": time.perf_counter() - t0, "final": getattr(outcome, "state", str(outcome))}
    host = os.environ["KUBEFLOW_BRIDGE_KFP_ENDPOINT"]
    return {**result, **comparison_of(["--kfp-run-id", run["run_id"], "--kfp-host", host])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=workflow.DEFAULTS["rows"])
    parser.add_argument("--orchestrators", action="store_true", help="also run Airflow and KFP (runtime up)")
    parser.add_argument("--quick", action="store_true", help="2,000 rows (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 2000
    result: dict[str, Any] = {"rows": args.rows}
    with tempfile.TemporaryDirectory() as tmp:
        result["bare"] = bare_steps(args.rows, Path(tmp))
    bare = result["bare"]["wall_seconds"]
    print(f"bare trainer steps: {bare:.1f}s  " + ", ".join(
        f"{k} {v['wall_seconds']:.1f}s (compute {v['compute_seconds']:.1f}s)" for k, v in result["bare"]["steps"].items()
    ))  # fmt: skip
    result["dag_parse_seconds"] = dag_parse_times()
    for name, seconds in result["dag_parse_seconds"].items():
        print(f"DAG parse {name}: {seconds if isinstance(seconds, str) else f'{seconds * 1000:.0f} ms'}")
    why_not = _runtime_ready() if args.orchestrators else "pass --orchestrators to run Airflow and KFP"
    if why_not:
        result["orchestrated"] = {"skipped": why_not}
        print(f"orchestrated runs skipped: {why_not}")
    else:
        result["airflow"] = airflow_run(args.rows)
        result["airflow_hold_off"] = airflow_run(args.rows, hold=False)
        result["kfp"] = kfp_run(args.rows)
        for side in ("airflow", "airflow_hold_off", "kfp"):
            figures = result[side]
            wall = figures["wall_seconds"]
            figures["ratio_to_bare"] = wall / bare
            print(f"{side}: {wall:.1f}s, {wall / bare:.2f}x bare", end="")
            if "mean_step_overhead_seconds" in figures:
                print(
                    f"; overhead per step {figures['mean_step_overhead_seconds']:.2f}s "
                    f"({', '.join(f'{k} {v:.1f}' for k, v in figures['step_overhead_seconds'].items())})"
                    f"; wall/compute {figures.get('wall_over_compute')}; 1.10 at "
                    f"{figures.get('compute_for_1_10_seconds')}s of compute per run"
                )
            else:
                print(f"; no comparison: {figures.get('error', '')[-300:]}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
