"""``kubeflow-bridge compare``: collect both orchestrators' runs and write the comparison report.

Examples::

    kubeflow-bridge compare --airflow-dag-id anomaly_retraining --kfp-run-id RUN_ID
    kubeflow-bridge compare --airflow-api-url http://airflow:8080 --airflow-dag-id anomaly_retraining
    kubeflow-bridge compare --input runs.json --out reports      # re-render recorded runs

Sources: Airflow's metadata DB (AIRFLOW_HOME/AIRFLOW_CONFIG) or its REST API (``--airflow-api-url``),
the KFP API at ``--kfp-host`` (default ``$KFP_HOST`` or ``$KUBEFLOW_BRIDGE_KFP_ENDPOINT``, which the local
runtime's env file exports), or JSON files holding recorded runs (a run, a list of runs, or a previous
``comparison.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubeflow_bridge.compare.model import OrchestratorRun


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``compare`` arguments (pass a subparser to mount them under another command)."""
    parser = parser or argparse.ArgumentParser(
        prog="kubeflow-bridge compare", description="Compare one workflow run by Airflow and by KFP."
    )
    parser.add_argument("--airflow-dag-id", help="DAG whose run to collect from Airflow's metadata DB")
    parser.add_argument("--airflow-run-id", help="DAG run id (default: the DAG's latest run)")
    parser.add_argument(
        "--airflow-api-url",
        default=os.environ.get("AIRFLOW_API_URL"),
        help="read the DAG run from this Airflow API server (e.g. http://localhost:8080) instead of the "
        "metadata DB (default: $AIRFLOW_API_URL); auth: $AIRFLOW_API_TOKEN, or --airflow-username with "
        "$AIRFLOW_API_PASSWORD",
    )
    parser.add_argument(
        "--airflow-username", default=None, help="Airflow API user (default: $AIRFLOW_API_USERNAME)"
    )
    parser.add_argument("--kfp-run-id", help="KFP run id to collect from the KFP API")
    parser.add_argument(
        "--kfp-host",
        default=os.environ.get("KFP_HOST") or os.environ.get("KUBEFLOW_BRIDGE_KFP_ENDPOINT"),
        help="KFP API endpoint (default: $KFP_HOST or $KUBEFLOW_BRIDGE_KFP_ENDPOINT)",
    )
    parser.add_argument("--kfp-namespace", default=None, help="KFP namespace (multi-user deployments)")
    parser.add_argument(
        "--airflow-ui-url",
        default=None,
        help="the Airflow UI the report links the DAG run's grid on (default: --airflow-api-url, else "
        "$AIRFLOW__API__BASE_URL, else http://127.0.0.1:8080 as airflow.cfg serves it)",
    )
    parser.add_argument(
        "--kfp-ui-url",
        default=None,
        help="the Kubeflow dashboard the report links the KFP run's page on (default: --kfp-host, which "
        "is the dashboard URL of the local runtime)",
    )
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON file with recorded runs (a run, a list, or a comparison.json); repeatable",
    )
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    parser.add_argument(
        "--mlflow-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", ""),
        help="log the comparison to this MLflow server and show the history of comparisons and each "
        "side's MLflow run (default: $MLFLOW_TRACKING_URI; credentials: $MLFLOW_TRACKING_TOKEN, or "
        "$MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD)",
    )
    parser.add_argument(
        "--rel-tol", type=float, default=1e-6, help="relative tolerance when comparing numbers (default 1e-6)"
    )
    return parser


def load_runs(path: str | os.PathLike[str]) -> list[OrchestratorRun]:
    """Read recorded runs from a JSON file: one run, a list of runs, or a comparison document."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"--input {path}: no such file") from exc
    except ValueError as exc:
        raise ValueError(f"--input {path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and "inputs" in data:
        data = data["inputs"]
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise ValueError(f"--input {path}: expected a run object or a list of them")
    return [OrchestratorRun.from_dict(item) for item in items]


def collect(args: argparse.Namespace) -> list[OrchestratorRun]:
    """Gather the runs the arguments name (recorded inputs first, then Airflow, then KFP)."""
    runs: list[OrchestratorRun] = []
    for path in args.input:
        runs.extend(load_runs(path))
    if args.airflow_dag_id and args.airflow_api_url:
        from kubeflow_bridge.compare.airflow_api import AirflowApiAuth, collect_airflow_run_api

        auth = AirflowApiAuth.from_env(args.airflow_username)
        runs.append(
            collect_airflow_run_api(args.airflow_api_url, args.airflow_dag_id, args.airflow_run_id, auth=auth)
        )
    elif args.airflow_dag_id:
        from kubeflow_bridge.compare.airflow_collector import collect_airflow_run

        runs.append(collect_airflow_run(args.airflow_dag_id, args.airflow_run_id))
    if args.kfp_run_id:
        if not args.kfp_host:
            raise ValueError(
                "--kfp-run-id needs the KFP API endpoint: pass --kfp-host URL or set KFP_HOST "
                "(`source .state/local/env` after `kubeflow-bridge local up` sets it for the local runtime)"
            )
        from kubeflow_bridge.compare.kfp_collector import collect_kfp_run

        runs.append(collect_kfp_run(args.kfp_host, args.kfp_run_id, namespace=args.kfp_namespace))
    if not runs:
        raise ValueError("nothing to compare: give --airflow-dag-id, --kfp-run-id and/or --input FILE")
    return runs


def run_links(args: argparse.Namespace, runs: list[OrchestratorRun]) -> dict[str, str]:
    """Each collected run's page: the Airflow DAG run's grid, the KFP run's page on the dashboard."""
    from urllib.parse import quote

    airflow_ui = (
        args.airflow_ui_url
        or args.airflow_api_url
        or os.environ.get("AIRFLOW__API__BASE_URL")
        or "http://127.0.0.1:8080"
    ).rstrip("/")
    kfp_ui = (args.kfp_ui_url or args.kfp_host or "").rstrip("/")
    links = {}
    for collected in runs:
        if collected.orchestrator == "airflow" and args.airflow_dag_id:
            links["airflow"] = (
                f"{airflow_ui}/dags/{quote(args.airflow_dag_id)}/runs/{quote(collected.run_id)}"
            )
        elif collected.orchestrator == "kfp" and kfp_ui:
            links["kfp"] = f"{kfp_ui}/_/pipeline/#/runs/details/{quote(collected.run_id)}"
    return links


def run(args: argparse.Namespace) -> int:
    """Execute parsed ``compare`` arguments; print where the report went. Returns the exit code."""
    from kubeflow_bridge.clients.kfp import KfpApiError, KfpAuthError
    from kubeflow_bridge.compare.report import write_report

    out = Path(args.out)
    try:
        if out.exists() and not out.is_dir():
            raise ValueError(
                f"--out {out} is a file: give a folder for the report (it is created if missing)"
            )
        runs = collect(args)
        mlflow = None
        if args.mlflow_uri:
            from kubeflow_bridge.workflow.tracking import MlflowRest, auth_headers

            mlflow = MlflowRest(args.mlflow_uri, auth_headers())
        paths, comparison = write_report(
            runs, args.out, rel_tol=args.rel_tol, mlflow=mlflow, links=run_links(args, runs)
        )
    except (ValueError, LookupError) as exc:
        print(f"kubeflow-bridge compare: {exc}", file=sys.stderr)
        return 2
    except (KfpApiError, KfpAuthError, OSError) as exc:  # unreachable KFP, unwritable --out
        print(f"kubeflow-bridge compare: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):  # no metadata DB, or not migrated
            print(
                f"kubeflow-bridge compare: cannot read Airflow's metadata DB ({type(exc).__name__}): run "
                "`airflow db migrate` in this AIRFLOW_HOME, or read the run over the API with --airflow-api-url",
                file=sys.stderr,
            )
            return 1
        raise
    for summary in comparison["runs"]:
        wall = summary["wall_seconds"]
        overhead = summary["overhead_seconds"]
        print(
            f"{summary['orchestrator']}: run {summary['run_id']} {summary['state']}, wall "
            f"{'?' if wall is None else f'{wall:.1f}s'}, overhead {'?' if overhead is None else f'{overhead:.1f}s'}"
        )
    equal = comparison["outcome_equality"]["equal"]
    verdict = "one run only" if equal is None else "same outcome" if equal else "outcomes differ"
    tracked = comparison.get("mlflow")
    if tracked and tracked.get("error"):
        print(f"MLflow: the comparison was not logged ({tracked['error']})", file=sys.stderr)
    elif tracked:
        print(f"MLflow: logged; {len(tracked['history'])} comparison(s) in the history at {tracked['uri']}")
    print(f"{verdict}; report: {paths.html_path} and {paths.json_path}")  # last: a bash task's XCom
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m kubeflow_bridge.compare.cli ...``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
