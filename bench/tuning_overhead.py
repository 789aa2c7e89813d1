"""Benchmark: Katib tuning overhead of the local runtime (suggestion process + trial Jobs as pods).

An Experiment of ``--trials`` (8) trials, ``--parallel`` (2) at a time, each a Job whose pod sleeps
``--duration`` seconds (printing its objective once per second) under random search. Ideal wall time is
``ceil(trials / parallel) * duration``; the overhead ratio is ``wall / ideal``. Also reported: time to
the first trial's creation (suggestion process start, seen by polling the API) and the overhead per
round of ``parallel`` trials once trials run (``(wall - time_to_first_trial - ideal) / rounds``).

It starts its own runtime (``python -m kubeflow_bridge.local.daemon``, no S3) in a temp folder.

    .venv-trainer/bin/python bench/tuning_overhead.py [--trials 8] [--parallel 2] [--duration 5] [--quick]

Prints the figures and writes bench/results/tuning_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR  # bench/ is on sys.path when a bench runs as a script

from kubeflow_bridge.local.testing import local_runtime

ROOT = Path(__file__).resolve().parent.parent
GROUP, VERSION = "kubeflow.org", "v1beta1"
SCRIPT = (
    "import sys, time\n"
    "x, duration = float(sys.argv[1]), float(sys.argv[2])\n"
    "start = time.monotonic()\n"
    "step = 0\n"
    "while time.monotonic() - start < duration:\n"
    "    time.sleep(min(1.0, duration - (time.monotonic() - start)))\n"
    "    print(f'step={step} loss={(x - 0.3) ** 2 + 1 / (step + 1):.5f}', flush=True)\n"
    "    step += 1\n"
)


def experiment(name: str, trials: int, parallel: int, duration: float) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel,
            "maxTrialCount": trials,
            "maxFailedTrialCount": 1,
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {
                                        "name": "main",
                                        "image": "python:3.11",
                                        "command": [
                                            "python",
                                            "-c",
                                            SCRIPT,
                                            "${trialParameters.x}",
                                            str(duration),
                                        ],
                                    }
                                ],
                            }
                        },
                    },
                },
            },
        },
    }


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="4 trials of 2 s (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.duration = 4, 2.0
    from kubernetes import client, config

    with tempfile.TemporaryDirectory(prefix="kb-bench-tuning-") as tmp:
        state = Path(tmp) / "state"
        with local_runtime(state, "--no-s3") as rt:
            custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(rt.kubeconfig)))
            started = time.time()
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                "default",
                "experiments",
                experiment("bench", args.trials, args.parallel, args.duration),
            )
            first_trial = None
            while True:
                if (
                    first_trial is None
                    and custom.list_namespaced_custom_object(GROUP, VERSION, "default", "trials")["items"]
                ):
                    first_trial = time.time() - started
                exp = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "experiments", "bench")
                conds = (exp.get("status") or {}).get("conditions") or []
                if conds and conds[-1]["type"] in ("Succeeded", "Failed") and conds[-1]["status"] == "True":
                    break
                if time.time() - started > 60 + 4 * args.trials * args.duration:
                    raise SystemExit(f"experiment did not finish: {exp.get('status')}")
                time.sleep(0.05 if first_trial is None else 0.2)
            wall = time.time() - started
            trials = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "trials")["items"]
    if first_trial is None:
        raise SystemExit("the experiment finished without a trial")
    durations = [_ts(t["status"]["completionTime"]) - _ts(t["status"]["startTime"]) for t in trials]
    ideal = math.ceil(args.trials / args.parallel) * args.duration
    result = {
        "benchmark": "tuning_overhead",
        "trials": args.trials,
        "parallel": args.parallel,
        "trial_duration_s": args.duration,
        "outcome": conds[-1]["reason"],
        "trials_succeeded": exp["status"].get("trialsSucceeded", 0),
        "wall_s": round(wall, 2),
        "ideal_s": ideal,
        "overhead_ratio": round(wall / ideal, 3),
        "overhead_s": round(wall - ideal, 2),
        "time_to_first_trial_s": round(first_trial, 2),
        "mean_trial_wall_s_1s_resolution": round(sum(durations) / len(durations), 2),
        "steady_overhead_per_round_s": round(
            (wall - first_trial - ideal) / math.ceil(args.trials / args.parallel), 2
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(result, indent=2))
    out = RESULTS_DIR / "tuning_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
