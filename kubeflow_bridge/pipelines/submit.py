"""Run the compiled ``anomaly_pipeline`` on a KFP API and (optionally) wait for it.

    python -m kubeflow_bridge.pipelines.submit --param rows=5000 --param max_trials=2 --wait

The endpoint defaults to ``$KUBEFLOW_BRIDGE_KFP_ENDPOINT`` (what ``source .state/local/env`` sets
after ``kubeflow-bridge local up``). Prints the run id (last line), so scripts can hand it to
``kubeflow-bridge compare --kfp-run-id``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubeflow_bridge.pipelines.compile import COMPILED_PATH


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["rows=5000", "source=nab"]`` -> ``{"rows": "5000", "source": "nab"}`` (typed later by the spec).

    Raises:
        ValueError: A pair is not ``name=value``.
    """
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {pair!r}: write name=value, e.g. --param rows=5000")
        params[name.strip()] = value
    return params


def submit(
    host: str,
    params: dict[str, Any],
    *,
    package: Path = COMPILED_PATH,
    display_name: str = "anomaly-pipeline",
) -> str:
    """Validate ``params`` against the pipeline's inputs, create the run, return its id."""
    from kubeflow_bridge import workflow
    from kubeflow_bridge.clients.kfp import KfpClient
    from kubeflow_bridge.resources.kfp import build_run_request, parse_pipeline_yaml, validate_parameters

    spec = parse_pipeline_yaml(package.read_bytes())
    typed = validate_parameters(spec, params)  # errors name the parameter before anything is sent
    # The same ranges and cross-field rules as the DAG's trigger form, "" as an empty optional field.
    workflow.check_param_values({k: None if v == "" else v for k, v in typed.items()})
    workflow.check_params({**workflow.DEFAULTS, **typed})
    if not display_name.strip() or len(display_name) > 255:
        raise ValueError(f"--name must be 1 to 255 characters, not {len(display_name)}")
    body = build_run_request(display_name=display_name, pipeline_spec=spec, parameters=typed)
    return str(KfpClient(host).create_run(body)["run_id"])


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m kubeflow_bridge.pipelines.submit", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("KUBEFLOW_BRIDGE_KFP_ENDPOINT"), help="KFP API URL")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline input")
    parser.add_argument("--name", default="anomaly-pipeline", help="run display name")
    parser.add_argument("--wait", action="store_true", help="wait for the run to finish")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (with --wait)")
    args = parser.parse_args(argv)
    if not args.host:
        print(
            "no KFP endpoint: pass --host URL, or run `kubeflow-bridge local up` and `source .state/local/env`",
            file=sys.stderr,
        )
        return 2
    from kubeflow_bridge.clients.kfp import KfpApiError, KfpAuthError, KfpClient

    try:
        run_id = submit(args.host, parse_params(args.param), display_name=args.name)
    except ValueError as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return 2
    except (KfpApiError, KfpAuthError) as exc:  # unreachable, refused, unauthorised: no traceback
        print(f"submit: {exc}", file=sys.stderr)
        return 1
    if args.wait:
        outcome = KfpClient(args.host).wait_for_run(run_id, timeout=args.timeout)
        print(f"run {run_id}: {outcome.state}")
        if outcome.state != "succeeded":
            print(run_id)
            return 1
    print(run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
