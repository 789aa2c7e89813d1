"""Collect one Airflow DAG run over Airflow's REST API v2, for a deployment whose metadata DB you cannot
read (remote workers, a managed Airflow). It reads what :mod:`kubeflow_bridge.compare.airflow_collector`
reads from the DB: the run, its task instances, each task's ``return_value`` XCom and the DAG's edges,
and builds the same :class:`OrchestratorRun`. Read access is enough (Airflow's ``viewer`` role).

Auth: a JWT in ``$AIRFLOW_API_TOKEN``, or a username with the password in ``$AIRFLOW_API_PASSWORD``
(exchanged at ``POST /auth/token``, which Airflow's simple and FAB auth managers serve), or none (an
Airflow whose simple auth manager lets everyone in).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kubeflow_bridge.compare.airflow_collector import airflow_run_from_rows, fill_from_cluster

if TYPE_CHECKING:
    import httpx

    from kubeflow_bridge.compare.model import OrchestratorRun

TOKEN_ENV = "AIRFLOW_API_TOKEN"
USERNAME_ENV = "AIRFLOW_API_USERNAME"
PASSWORD_ENV = "AIRFLOW_API_PASSWORD"
_PAGE = 100  # the API's default maximum page size


@dataclass(frozen=True, kw_only=True)
class AirflowApiAuth:
    """How to authenticate to Airflow's API.

    Args:
        token: A JWT sent as ``Authorization: Bearer``.
        username: A user whose password is exchanged for a JWT at ``/auth/token``.
        password: That user's password (never printed).
    """

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, username: str | None = None) -> AirflowApiAuth:
        """``$AIRFLOW_API_TOKEN``, else ``username`` (or ``$AIRFLOW_API_USERNAME``) with
        ``$AIRFLOW_API_PASSWORD``; passwords come only from the environment, never from argv."""
        token = os.environ.get(TOKEN_ENV) or None
        username = username or os.environ.get(USERNAME_ENV) or None
        password = os.environ.get(PASSWORD_ENV)
        if token is None and username is not None and not password:
            raise ValueError(f"Airflow API user {username!r} needs its password in ${PASSWORD_ENV}")
        return cls(token=token, username=username, password=password)


def _check(response: httpx.Response, what: str) -> Any:
    """The JSON of a 2xx response; a 401/403/404 or other error becomes a message that says the fix."""
    if response.is_success:
        return response.json()
    url = response.request.url
    if response.status_code == 401:
        raise ValueError(
            f"Airflow's API refused the credentials (401 at {url}): set ${TOKEN_ENV}, or "
            f"--airflow-username with ${PASSWORD_ENV}"
        )
    if response.status_code == 403:
        raise ValueError(f"the Airflow API user may not read {what} (403 at {url}): give it read access")
    if response.status_code == 404:
        raise LookupError(f"Airflow's API has no {what} (404 at {url})")
    raise ValueError(
        f"Airflow's API failed reading {what}: HTTP {response.status_code} {response.text[:300]}"
    )


def _login(client: httpx.Client, auth: AirflowApiAuth) -> None:
    token = auth.token
    if token is None and auth.username is not None:
        body = {"username": auth.username, "password": auth.password or ""}
        login = client.post("/auth/token", json=body)
        token = _check(login, f"/auth/token login (user {auth.username!r})")["access_token"]
    if token is not None:
        client.headers["Authorization"] = f"Bearer {token}"


def _pages(client: httpx.Client, path: str, items: str, what: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list endpoint (``limit``/``offset``, ``total_entries``)."""
    found: list[dict[str, Any]] = []
    while True:
        page = _check(client.get(path, params={**params, "limit": _PAGE, "offset": len(found)}), what)
        found.extend(page[items])
        if not page[items] or len(found) >= page["total_entries"]:
            return found


def collect_airflow_run_api(
    base_url: str,
    dag_id: str,
    run_id: str | None = None,
    *,
    auth: AirflowApiAuth | None = None,
    step_names: Mapping[str, str] | None = None,
    from_cluster: bool = True,
    timeout: float = 30.0,
) -> OrchestratorRun:
    """Read a DAG run (default: the latest by start date) from Airflow's API server at ``base_url``.

    With ``from_cluster`` and ``$KUBECONFIG`` set, the tune and train steps' compute seconds are read
    from the Kubeflow objects they created, as :func:`~kubeflow_bridge.compare.airflow_collector.collect_airflow_run` does.

    Raises:
        LookupError: The DAG or the run does not exist.
        ValueError: The API cannot be reached, refuses the credentials, or fails.
    """
    import httpx

    dag = quote(dag_id, safe="")
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout) as client:
        try:
            _login(client, auth or AirflowApiAuth())
            if run_id is None:
                latest = _check(
                    client.get(f"/api/v2/dags/{dag}/dagRuns", params={"order_by": "-start_date", "limit": 1}),
                    f"DAG {dag_id!r}",
                )["dag_runs"]
                if not latest:
                    raise LookupError(
                        f"Airflow's API at {base_url} lists no run of DAG {dag_id!r}; trigger one first"
                    )
                run = latest[0]
            else:
                run = _check(
                    client.get(f"/api/v2/dags/{dag}/dagRuns/{quote(run_id, safe='')}"),
                    f"run {run_id!r} of DAG {dag_id!r}",
                )
            run_path = f"/api/v2/dags/{dag}/dagRuns/{quote(run['dag_run_id'], safe='')}"
            rows = _pages(client, f"{run_path}/taskInstances", "task_instances", "task instances of that run")
            entries = _pages(
                client, f"{run_path}/taskInstances/~/xcomEntries", "xcom_entries", "XComs of that run",
                xcom_key="return_value",
            )  # fmt: skip
            outputs: dict[str, Any] = {}
            for entry in entries:
                path = f"{run_path}/taskInstances/{quote(entry['task_id'], safe='')}/xcomEntries/return_value"
                params = {"map_index": entry["map_index"], "deserialize": True, "stringify": False}
                outputs[entry["task_id"]] = _check(
                    client.get(path, params=params), f"the return_value XCom of task {entry['task_id']!r}"
                )["value"]
            tasks = _check(client.get(f"/api/v2/dags/{dag}/tasks"), f"tasks of DAG {dag_id!r}")["tasks"]
        except httpx.TransportError as exc:
            raise ValueError(
                f"cannot reach Airflow's API at {base_url}: {exc}; check --airflow-api-url"
            ) from exc
    upstream: dict[str, list[str]] = {t["task_id"]: [] for t in tasks}
    for task in tasks:
        for downstream in task.get("downstream_task_ids") or []:
            upstream.setdefault(downstream, []).append(task["task_id"])
    result = airflow_run_from_rows(
        dag_id=dag_id,
        run_id=run["dag_run_id"],
        task_instances=rows,
        outputs=outputs,
        upstream={task_id: sorted(ups) for task_id, ups in upstream.items()},
        run_start=run.get("start_date"),
        run_end=run.get("end_date"),
        run_state=run.get("state"),
        step_names=step_names,
        params=run.get("conf") or {},
    )
    if from_cluster:
        result = fill_from_cluster(result, {(step_names or {}).get(k, k): v for k, v in outputs.items()})
    return result
