"""``kubeflow-bridge airflow``: Airflow's UI on this machine, set up for this checkout and the local runtime.

Runs ``airflow standalone`` (scheduler, triggerer, DAG processor and the API server with the UI) with:

- the checkout as ``AIRFLOW_HOME`` and its ``airflow.cfg`` (an ``AIRFLOW_HOME``/``AIRFLOW_CONFIG`` already
  in the environment wins), so ``dags/`` and ``plugins/`` are the repository's;
- this environment's ``bin`` first on ``PATH``: standalone starts each part as ``airflow ...``;
- one JWT secret for every part, kept in ``<state>/jwt_secret`` (mode 0600): the API server signs the
  tokens the tasks call it with, and parts that each made their own secret reject each other's tokens;
- DAGs paused at creation: nothing runs until you trigger a DAG (the trigger form unpauses it) or unpause
  it, and the daily DAG does not start a run of its own on start-up;
- the local runtime's connections and settings from its env file (``KUBECONFIG``, ``AIRFLOW_CONN_*``,
  ``AWS_*``, the KFP endpoint), as if ``source .state/local/env`` had been run in this shell.

``exec`` keeps the process id, so stopping this command (Ctrl-C, or a signal to its process group) stops
Airflow.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path


def checkout_home() -> Path:
    """``$KUBEFLOW_BRIDGE_HOME``, else the checkout this package runs from."""
    return Path(os.environ.get("KUBEFLOW_BRIDGE_HOME") or Path(__file__).resolve().parents[1])


def jwt_secret(state_dir: Path) -> str:
    """The JWT secret of this machine's Airflow, created once (0600) and reused on every start."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "jwt_secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64))  # 64 bytes: what JWT's HS512 asks for
    return path.read_text().strip()


def standalone_env(
    base: dict[str, str], *, home: Path, state_dir: Path, runtime_env: dict[str, str], port: int
) -> dict[str, str]:
    """The environment ``airflow standalone`` runs with (see the module docstring)."""
    env = {**base, **runtime_env}
    env.setdefault("AIRFLOW_HOME", str(home))
    env.setdefault("AIRFLOW_CONFIG", str(Path(env["AIRFLOW_HOME"]) / "airflow.cfg"))
    env.setdefault("KUBEFLOW_BRIDGE_HOME", str(home))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = jwt_secret(state_dir)
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
    env["AIRFLOW__API__HOST"] = "127.0.0.1"
    env["AIRFLOW__API__PORT"] = str(port)
    env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{port}"
    return env


def main(argv: list[str] | None = None) -> int:
    home = checkout_home()
    parser = argparse.ArgumentParser(prog="kubeflow-bridge airflow", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="the UI's port (default 8080)")
    parser.add_argument(
        "--state-dir", type=Path, default=home / ".state" / "airflow", help="where the JWT secret is kept"
    )
    parser.add_argument(
        "--runtime-state",
        type=Path,
        default=home / ".state" / "local",
        help="the local runtime's state folder, whose env file holds the connections",
    )
    parser.add_argument(
        "--no-runtime", action="store_true", help="use the connections of this environment as they are"
    )
    args = parser.parse_args(argv)
    airflow = Path(sys.executable).with_name("airflow")
    if not airflow.exists():
        print(
            f"no `airflow` beside {sys.executable}: run this from the control-plane environment "
            "(`.venv/bin/kubeflow-bridge airflow`, or `make airflow`)",
            file=sys.stderr,
        )
        return 2
    runtime_env: dict[str, str] = {}
    if not args.no_runtime:
        from kubeflow_bridge.local.paths import StatePaths, read_env_file

        env_file = StatePaths(args.runtime_state.resolve()).env_file
        if not env_file.exists():
            print(
                f"the local runtime has no env file at {env_file}: start it first with "
                "`.venv-trainer/bin/kubeflow-bridge local up` (or `make airflow`, which does both), or "
                "pass --no-runtime to use the connections set in this environment",
                file=sys.stderr,
            )
            return 2
        runtime_env = read_env_file(env_file)
    env = standalone_env(
        dict(os.environ), home=home, state_dir=args.state_dir, runtime_env=runtime_env, port=args.port
    )
    print(f"Airflow UI: http://127.0.0.1:{args.port} (AIRFLOW_HOME={env['AIRFLOW_HOME']}); Ctrl-C stops it")
    sys.stdout.flush()
    os.chdir(env["AIRFLOW_HOME"])
    os.execve(str(airflow), [str(airflow), "standalone"], env)
    return 0  # pragma: no cover - exec does not return


if __name__ == "__main__":
    sys.exit(main())
