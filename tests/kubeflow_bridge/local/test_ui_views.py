"""The local UI's KFP artifact views, clone-run (with its login and write guards) and live log follow, on a
runtime started as `local up` starts it (token auth on), over HTTP and in headless Chromium."""

# No `from __future__ import annotations` here: kfp reads the components' annotations as types.
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kfp import compiler, dsl

from kubeflow_bridge.local.testing import RuntimeHandle, start_runtime

from . import kfp_fixtures as fx
from .conftest import stop_runtime

IMAGE = "kubeflow-bridge/trainer:latest"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def score(
    scale: int,
    label: str,
    metrics: dsl.Output[dsl.Metrics],
    classes: dsl.Output[dsl.ClassificationMetrics],
    notes: dsl.Output[dsl.Markdown],
) -> int:
    metrics.log_metric("accuracy", 0.125 * scale)
    metrics.log_metric("scale", scale)
    classes.log_confusion_matrix(["normal", "anomaly"], [[7, 1], [2, 5]])
    classes.log_roc_curve([0.0, 0.25, 1.0], [0.0, 0.75, 1.0], [1.0, 0.5, 0.0])
    with open(notes.path, "w") as fh:
        fh.write(f"# notes for {label}")
    return scale * 2


@dsl.pipeline(name="ui-views")
def ui_pipeline(scale: int = 1, label: str = "first") -> None:
    score(scale=scale, label=label)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeHandle]:
    """A runtime with token auth, as `local up` starts one."""
    rt = start_runtime(
        tmp_path_factory.mktemp("kb-ui") / "state", auth=True, env={"KUBEFLOW_BRIDGE_GPUS": "0"}
    )
    try:
        yield rt
    finally:
        stop_runtime(rt)


@pytest.fixture(scope="module")
def finished_run(secured: RuntimeHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    package = tmp_path_factory.mktemp("ui-pkg") / "ui.yaml"
    compiler.Compiler().compile(ui_pipeline, str(package))
    body = {
        "display_name": "ui views",
        "pipeline_spec": yaml.safe_load(package.read_text()),
        "runtime_config": {"parameters": {"scale": 3}},
    }
    with _api(secured) as api:
        run = api.post("/apis/v2beta1/runs", json=body)
        assert run.status_code == 200, run.text
        done = fx.wait_run(api, run.json()["run_id"], timeout=120)
    assert done["state"] == "SUCCEEDED", done
    return done


def _api(rt: RuntimeHandle) -> httpx.Client:
    assert rt.kfp is not None and rt.own_token
    return httpx.Client(base_url=rt.kfp, timeout=30, headers={"Authorization": f"Bearer {rt.own_token}"})


def _browser(rt: RuntimeHandle) -> httpx.Client:
    """What a browser on the UI's own page sends: no token, its own origin."""
    assert rt.kfp is not None
    return httpx.Client(base_url=rt.kfp, timeout=30, headers={"Origin": rt.kfp})


def _runs(rt: RuntimeHandle) -> int:
    with _api(rt) as api:
        return len(api.get("/apis/v2beta1/runs", params={"page_size": 200}).json().get("runs") or [])


def test_a_run_page_shows_metrics_classification_and_markdown_as_the_kfp_ui_does(
    secured: RuntimeHandle, finished_run: dict[str, Any]
) -> None:
    task = fx.tasks_by_name(finished_run)["score"]
    # the artifacts' types and metadata travel with the run (what MLMD holds on KFP)
    details = task["output_artifact_metadata"]
    assert details["metrics"] == {
        "schema_title": "system.Metrics",
        "metadata": {"accuracy": 0.375, "scale": 3.0},
    }
    assert details["classes"]["schema_title"] == "system.ClassificationMetrics"
    with _browser(secured) as ui:
        page = ui.get(f"/_/pipeline/runs/details/{finished_run['run_id']}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<td>accuracy</td><td>0.375</td>" in html and "<td>scale</td><td>3.0</td>" in html
    matrix = html[html.index("Confusion matrix") :]
    assert (
        "<th>normal</th><th>anomaly</th>" in matrix
        and "<td><b>anomaly</b></td><td>2</td><td>5</td>" in matrix
    )
    assert re.search(r"<polyline [^>]*data-points='3'", html)  # the ROC curve
    # the Markdown artifact renders in a frame from the artifact endpoint
    frame = re.search(r"score: notes</h2><iframe class='viz' src='([^']+)'", html)
    assert frame, html[-3000:]
    with _browser(secured) as ui:
        assert ui.get(frame.group(1).replace("&amp;", "&")).text == "# notes for first"


def test_clone_needs_a_login_and_the_uis_own_form_and_refuses_bad_input_before_creating(
    secured: RuntimeHandle, finished_run: dict[str, Any]
) -> None:
    run_id = finished_run["run_id"]
    clone = f"/_/pipeline/runs/clone/{run_id}"
    before = _runs(secured)
    with _browser(secured) as ui:
        page = ui.get(clone)
        assert page.status_code == 303 and page.headers["location"].startswith("/_/login?next=")
        wrong = ui.post("/_/login", data={"token": "not-it", "next": clone})
        assert wrong.status_code == 403 and "wrong token" in wrong.text
        # a login form posted from another site, or through another host name, is refused
        for other in ({"Origin": "http://evil.test"}, {"Host": "evil.test"}):
            assert ui.post("/_/login", data={"token": secured.own_token}, headers=other).status_code == 403
        login = ui.post("/_/login", data={"token": secured.own_token, "next": clone})
        assert login.status_code == 303 and login.headers["location"] == clone
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        form = ui.get(clone)
        assert form.status_code == 200
        token = re.search(r"name='form_token' value='([0-9a-f]+)'", form.text)
        assert token and "value='3'" in form.text  # prefilled from the run
        fields = {
            "form_token": token.group(1),
            "display_name": "bigger",
            "param.scale": "5",
            "param.label": "x",
        }
        # not the UI's form: another origin, or no form token
        assert ui.post(clone, data=fields, headers={"Origin": "http://evil.test"}).status_code == 403
        assert ui.post(clone, data={**fields, "form_token": "0" * 64}).status_code == 403
        # bad input: the form again, saying what to fix
        bad = ui.post(clone, data={**fields, "param.scale": "five"})
        assert bad.status_code == 400 and "must be an integer" in bad.text and "parameters.scale" in bad.text
        nameless = ui.post(clone, data={**fields, "display_name": " "})
        assert nameless.status_code == 400 and "give the run a name" in nameless.text
        assert _runs(secured) == before  # nothing was created
        made = ui.post(clone, data=fields)
    assert made.status_code == 303, made.text
    new_id = made.headers["location"].rsplit("/", 1)[1]
    with _api(secured) as api:
        new = fx.wait_run(api, new_id, timeout=120)
    assert new["display_name"] == "bigger" and new["experiment_id"] == finished_run["experiment_id"]
    assert new["runtime_config"]["parameters"] == {"scale": 5, "label": "x"}
    assert new["state"] == "SUCCEEDED"
    assert fx.tasks_by_name(new)["score"]["output_parameters"]["Output"] == 10


def test_a_run_of_an_uploaded_pipeline_shows_its_graph_and_clones_to_the_same_version(
    secured: RuntimeHandle, tmp_path: Path
) -> None:
    """A run made from a pipeline version carries no spec: the page reads the version's, as the KFP UI does."""
    package = tmp_path / "ui.yaml"
    compiler.Compiler().compile(ui_pipeline, str(package))
    with _api(secured) as api:
        uploaded = api.post(
            "/apis/v2beta1/pipelines/upload",
            params={"name": "ui-views-uploaded"},
            files={"uploadfile": ("ui.yaml", package.read_bytes())},
        )
        assert uploaded.status_code == 200, uploaded.text
        pid = uploaded.json()["pipeline_id"]
        (version,) = api.get(f"/apis/v2beta1/pipelines/{pid}/versions").json()["pipeline_versions"]
        ref = {"pipeline_id": pid, "pipeline_version_id": version["pipeline_version_id"]}
        made = api.post(
            "/apis/v2beta1/runs", json={"display_name": "from a version", "pipeline_version_reference": ref}
        )
        assert made.status_code == 200, made.text
        run = fx.wait_run(api, made.json()["run_id"], timeout=120)
    assert not run.get("pipeline_spec")
    with _browser(secured) as ui:
        page = ui.get(f"/_/pipeline/runs/details/{run['run_id']}")
        assert "data-task='score' data-state='SUCCEEDED'" in page.text
        login = ui.post("/_/login", data={"token": secured.own_token})
        assert login.status_code == 303
        form = ui.get(f"/_/pipeline/runs/clone/{run['run_id']}")
        token = re.search(r"name='form_token' value='([0-9a-f]+)'", form.text)
        assert token and "value='1'" in form.text  # the pipeline's default, from the version's spec
        fields = {
            "form_token": token.group(1),
            "display_name": "again",
            "param.scale": "2",
            "param.label": "v",
        }
        cloned = ui.post(f"/_/pipeline/runs/clone/{run['run_id']}", data=fields)
    assert cloned.status_code == 303, cloned.text
    with _api(secured) as api:
        again = fx.wait_run(api, cloned.headers["location"].rsplit("/", 1)[1], timeout=120)
    assert again["pipeline_version_reference"] == ref and again["state"] == "SUCCEEDED"
    assert again["runtime_config"]["parameters"] == {"scale": 2, "label": "v"}


def test_clone_run_in_chromium_from_the_kfp_ui_route(
    secured: RuntimeHandle, finished_run: dict[str, Any], run_ui_driver: Any, tmp_path: Path
) -> None:
    """The KFP UI's clone route, the login page, the form, and the new run's page, as a user clicks."""
    assert secured.kfp is not None
    spec = {
        "url": f"{secured.kfp}/_/pipeline/#/runs/new?cloneFromRun={finished_run['run_id']}",
        "token": secured.own_token,
        "params": {"scale": 4},
    }
    seen = run_ui_driver("clone.js", spec, tmp_path, timeout=180)
    assert seen["login"] is True and seen["form"] == "Clone ui views"
    assert seen["title"] == "Clone of ui views" and "/_/pipeline/runs/details/" in seen["url"]
    new_id = seen["url"].rsplit("/", 1)[1]
    with _api(secured) as api:
        new = api.get(f"/apis/v2beta1/runs/{new_id}").json()
        assert new["runtime_config"]["parameters"]["scale"] == 4
        fx.wait_run(api, new_id, timeout=120)


def test_a_pod_log_follows_as_the_pod_writes_it(secured: RuntimeHandle) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(secured.kubeconfig)))
    code = "import time; print('first line', flush=True); time.sleep(3); print('second <line>', flush=True)"
    api.create_namespaced_pod(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "ui-follow"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "python:3.11", "command": ["python", "-c", code]}],
            },
        },
    )
    fx.wait_for(
        lambda: api.read_namespaced_pod("ui-follow", "default").status.phase != "Pending", 60, what="the pod"
    )
    seen: dict[str, float] = {}
    text = ""
    with _browser(secured) as ui:
        assert ui.get("/_/logs/default/no-such-pod?follow=true").status_code == 404
        with ui.stream("GET", "/_/logs/default/ui-follow?follow=true", timeout=60) as page:
            assert page.status_code == 200
            for chunk in page.iter_text():
                text += chunk
                for marker in ("first line", "second &lt;line&gt;", "The log ended"):
                    if marker in text and marker not in seen:
                        seen[marker] = time.monotonic()
    assert set(seen) == {"first line", "second &lt;line&gt;", "The log ended"}, text
    # streamed as written: the first line arrived while the pod was still sleeping
    assert seen["second &lt;line&gt;"] - seen["first line"] > 2.0
    with _browser(secured) as ui:
        page = ui.get("/_/logs/default/ui-follow")
    assert "second &lt;line&gt;" in page.text and "?follow=true'>follow</a>" in page.text
