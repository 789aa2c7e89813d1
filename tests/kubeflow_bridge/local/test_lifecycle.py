"""`kubeflow-bridge local up|status|logs|down`, restart keeps state, nothing is left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from .conftest import processes_mentioning, python_pod, wait_for


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubeflow_bridge.cli", "local", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def authed(state: Path) -> httpx.Client:
    """A client of the runtime's Kubernetes API as a user with its kubeconfig is: its CA and token."""
    api = json.loads((state / "runtime.json").read_text())["api"]
    token = (state / "token").read_text().strip()
    return httpx.Client(
        base_url=api, headers={"Authorization": f"Bearer {token}"}, verify=str(state / "tls" / "ca.crt")
    )


def test_up_status_restart_keeps_state_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    try:
        up = cli("up", "--state-dir", str(state))
        assert up.returncode == 0, up.stderr + up.stdout
        assert "Kubernetes API : https://127.0.0.1:" in up.stdout
        info = json.loads((state / "runtime.json").read_text())
        # Safe to leave running: a token on both APIs, private files, loopback only.
        ca = str(state / "tls" / "ca.crt")
        assert httpx.get(f"{info['api']}/api/v1/namespaces", verify=ca).status_code == 401
        assert httpx.get(f"{info['kfp']}/apis/v2beta1/experiments").status_code == 401
        assert httpx.post(f"{info['api']}/_admin/tokens", json={}, verify=ca).status_code == 401
        for private in ("token", "state.db", "env", "kubeconfig"):
            assert oct((state / private).stat().st_mode & 0o777) == "0o600", private
        assert info["api"].startswith("https://127.0.0.1:") and info["kfp"].startswith("http://127.0.0.1:")
        kubeconfig = yaml.safe_load((state / "kubeconfig").read_text())
        assert kubeconfig["current-context"] == "kubeflow-bridge-local"
        assert kubeconfig["clusters"][0]["cluster"]["server"] == info["api"]
        env_text = (state / "env").read_text()
        assert f"export KUBECONFIG={state / 'kubeconfig'}" in env_text
        for var in (
            "AWS_ACCESS_KEY_ID",
            "AWS_ENDPOINT_URL_S3",
            "AIRFLOW_CONN_KUBEFLOW_DEFAULT",
            "KUBEFLOW_BRIDGE_KFP_ENDPOINT",
        ):
            assert f"export {var}=" in env_text
        assert oct((state / "env").stat().st_mode & 0o777) == "0o600"
        # The S3 server answers with the advertised credentials.
        import boto3

        env = dict(line[len("export ") :].split("=", 1) for line in env_text.splitlines())
        s3 = boto3.client(
            "s3",
            endpoint_url=info["s3"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        assert {"kubeflow-bridge", "mlpipeline"} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}
        conn = json.loads(json.loads(json.dumps(env["AIRFLOW_CONN_KUBERNETES_DEFAULT"].strip("'"))))
        assert conn["extra"] == {"kube_config_path": str(state / "kubeconfig"), "in_cluster": False}
        kubeflow = json.loads(env["AIRFLOW_CONN_KUBEFLOW_DEFAULT"].strip("'"))
        # This machine has no GPU: the connection says so, and operators refuse GPU requests up front.
        assert kubeflow["extra"]["gpus_available"] is False
        assert kubeflow["extra"]["kfp_endpoint"] == info["kfp"]
        # The KFP clients read the token as from a pipelines ServiceAccount token file (kfp.Client too).
        assert kubeflow["extra"]["auth_mode"] == "sa_token_file"
        assert env["KF_PIPELINES_SA_TOKEN_PATH"] == str(state / "token")
        token = (state / "token").read_text().strip()
        assert token not in env_text and token not in (state / "runtime.log").read_text()
        kfp_ok = httpx.get(
            f"{info['kfp']}/apis/v2beta1/experiments", headers={"Authorization": f"Bearer {token}"}
        )
        assert kfp_ok.status_code == 200
        assert cli("up", "--state-dir", str(state)).stdout.startswith("already running")
        c = authed(state)
        c.post(
            "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "keep"}, "data": {"k": "v"}}
        ).raise_for_status()
        c.post(
            "/api/v1/namespaces/default/pods",
            json=python_pod(
                "sleeper", "import time; print('up', flush=True); time.sleep(300)", restart="Always"
            ),
        ).raise_for_status()
        wait_for(lambda: c.get("/api/v1/namespaces/default/pods/sleeper/log").text == "up\n", timeout=30)
        rv_before = int(c.get("/api/v1/namespaces/default/configmaps").json()["metadata"]["resourceVersion"])
        status = cli("status", "--state-dir", str(state))
        assert (
            status.returncode == 0
            and "health         : ok" in status.stdout
            and "pod default/sleeper" in status.stdout
        )
        logs = cli("logs", "sleeper", "--state-dir", str(state))
        assert logs.stdout == "up\n"
        down = cli("down", "--state-dir", str(state))
        assert down.returncode == 0 and "stopped" in down.stdout
        assert processes_mentioning(str(state)) == []
        assert cli("status", "--state-dir", str(state)).returncode == 3
        # Restart: objects and the resourceVersion counter survive; the interrupted pod is reported.
        assert cli("up", "--state-dir", str(state), "--no-s3").returncode == 0
        c = authed(state)  # the same token after a restart: the kubeconfig and env stay valid
        cm = c.get("/api/v1/namespaces/default/configmaps/keep").json()
        assert cm["data"] == {"k": "v"} and int(cm["metadata"]["resourceVersion"]) <= rv_before
        new = c.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "after"}}).json()
        assert int(new["metadata"]["resourceVersion"]) > rv_before
        # restartPolicy Always: the pod is started again after the restart.
        wait_for(
            lambda: c.get("/api/v1/namespaces/default/pods/sleeper").json()["status"]["phase"] == "Running",
            timeout=30,
        )
        ns = {n["metadata"]["name"] for n in c.get("/api/v1/namespaces").json()["items"]}
        assert {"default", "kubeflow-user"} <= ns
    finally:
        cli("down", "--state-dir", str(state))
    assert processes_mentioning(str(state)) == []
    assert not (state / "runtime.pid").exists()


def test_down_after_daemon_was_killed_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    try:
        assert cli("up", "--state-dir", str(state), "--no-s3", "--no-auth").returncode == 0
        api = json.loads((state / "runtime.json").read_text())["api"]
        httpx.post(
            f"{api}/api/v1/namespaces/default/pods",
            json=python_pod("orphan", "import time; print('x', flush=True); time.sleep(300)"),
        ).raise_for_status()
        wait_for(
            lambda: httpx.get(f"{api}/api/v1/namespaces/default/pods/orphan/log").text == "x\n", timeout=30
        )
        # A process the runtime started outside the pod controller (as the KFP API starts runs): marked only.
        stray = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(300)  # stray-run"],
            env={**os.environ, "KUBEFLOW_BRIDGE_LOCAL_RUNTIME": str(state.resolve())},
            start_new_session=True,
        )
        pid = int((state / "runtime.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        assert any("time.sleep(300)" in cmd for _, cmd in processes_mentioning("time.sleep(300)"))
        out = cli("down", "--state-dir", str(state))
        assert out.returncode == 0
        wait_for(
            lambda: not [p for p in processes_mentioning("print('x', flush=True)")],
            timeout=10,
            what="pod process killed",
        )
        assert stray.wait(timeout=10) == -signal.SIGKILL
    finally:
        cli("down", "--state-dir", str(state))


def test_auth_at_start_serves_https_with_a_token_kubeconfig(tmp_path: Path) -> None:
    import shutil

    from kubernetes import client, config

    from .conftest import start_runtime, stop_runtime

    faults = json.dumps({"auth": True, "static_token": "tok-" + "x" * 20})
    rt = start_runtime(tmp_path / "state", "--no-s3", "--faults", faults)
    try:
        kc = yaml.safe_load(rt.kubeconfig.read_text())
        assert kc["users"][0]["user"]["token"] == "tok-" + "x" * 20
        assert rt.api.startswith("https://") and kc["clusters"][0]["cluster"]["certificate-authority-data"]
        ca = str(rt.state_dir / "tls" / "ca.crt")
        assert httpx.get(f"{rt.api}/api/v1/namespaces", verify=ca).status_code == 401
        # kubectl sends its token only over HTTPS: this is why auth turns TLS on.
        kubectl = shutil.which("kubectl")
        if kubectl:
            out = subprocess.run(
                [kubectl, "get", "namespaces"],
                capture_output=True,
                text=True,
                env={**os.environ, "KUBECONFIG": str(rt.kubeconfig)},
                timeout=60,
            )
            assert out.returncode == 0 and "kubeflow-user" in out.stdout, out.stderr
        api = config.new_client_from_config(config_file=str(rt.kubeconfig))
        names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
        assert "kubeflow-user" in names
        assert "tok-" not in (rt.state_dir / "runtime.log").read_text()
    finally:
        stop_runtime(rt)


def test_ports_survive_a_restart_and_a_taken_port_is_named(tmp_path: Path) -> None:
    import socket

    state = tmp_path / "state"
    try:
        assert cli("up", "--state-dir", str(state), "--no-s3").returncode == 0
        first = json.loads((state / "runtime.json").read_text())
        env_before = (state / "env").read_text()
        assert cli("down", "--state-dir", str(state)).returncode == 0
        assert cli("up", "--state-dir", str(state), "--no-s3").returncode == 0
        again = json.loads((state / "runtime.json").read_text())
        # Same endpoints after down/up: the env file (and Airflow's connections) stay valid.
        assert (again["api"], again["kfp"]) == (first["api"], first["kfp"]) and not again["moved"]
        assert (state / "env").read_text() == env_before
        assert cli("down", "--state-dir", str(state)).returncode == 0

        # Another process takes the API port: up moves the API and says who holds the old port.
        api_port = int(first["api"].rsplit(":", 1)[1])
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", api_port))
        squatter.listen(1)
        try:
            moved = cli("up", "--state-dir", str(state), "--no-s3")
            assert moved.returncode == 0, moved.stderr
            assert f"the api port {api_port} is taken by pid {os.getpid()}" in moved.stdout
            assert f"Source {state / 'env'} again" in moved.stdout
            info = json.loads((state / "runtime.json").read_text())
            kubeconfig = yaml.safe_load((state / "kubeconfig").read_text())
            assert (
                info["api"] != first["api"] and kubeconfig["clusters"][0]["cluster"]["server"] == info["api"]
            )
            assert cli("down", "--state-dir", str(state)).returncode == 0
            # A port asked for on the command line is a promise: up fails and names the holder.
            refused = cli("up", "--state-dir", str(state), "--no-s3", "--api-port", str(api_port))
            assert refused.returncode == 1
            assert f"port {api_port} for the api is taken by pid {os.getpid()}" in refused.stderr
        finally:
            squatter.close()
    finally:
        cli("down", "--state-dir", str(state))
