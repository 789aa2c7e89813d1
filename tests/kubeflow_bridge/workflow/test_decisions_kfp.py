"""The KFP side of the decision table: the pipeline's gate and deploy steps on the local runtime.

The Airflow side (tests/kubeflow_bridge/operators/test_workflow_decisions.py) runs the same table through
the operators; both assert the table's decisions, so both orchestrators decide the same.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeflow_bridge.local.testing import RuntimeHandle, local_runtime
from kubeflow_bridge.pipelines import pipeline, steps

from .decisions import (
    CASES,
    SERVICE,
    case_prefix,
    case_score,
    check_serving,
    create_serving_record,
    read_service,
    train_tiny_model,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeHandle]:
    with local_runtime(tmp_path_factory.mktemp("decisions-kfp") / "state", "--no-s3") as rt:
        yield rt


@pytest.fixture
def namespace(runtime: RuntimeHandle, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"kfp-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{runtime.api}/api/v1/namespaces", json={"metadata": {"name": name}}, timeout=10
    ).raise_for_status()
    monkeypatch.setenv("KUBECONFIG", runtime.env["KUBECONFIG"])
    return name


def test_gate_table_through_the_pipelines_gate(runtime: RuntimeHandle, namespace: str) -> None:
    for index, case in enumerate(CASES["gate"]):
        name = f"gate-{index}"
        if case["serving"] is not None:
            create_serving_record(runtime.api, namespace, name, case["serving"])
        # The evaluate component hands the gate its scores as text, "" when it has none (KFP parameters
        # cannot carry NaN).
        score = "" if case["score"] in (None, "nan") else repr(float(case["score"]))
        baseline = case.get("baseline")
        inputs = {
            "baseline": "" if baseline in (None, "nan") else repr(float(baseline)),
            "baseline_margin": case.get("margin", 0.0),
            "serving_rescored": "" if "rescored" not in case else repr(float(case["rescored"])),
            "evaluable": case.get("evaluable", True),
            "no_labels_policy": case.get("policy", "if_nothing_serves"),
        }
        if "error" in case:
            with pytest.raises(steps.StepFailed, match=case["error"]):
                steps.gate(score, case["threshold"], service_name=name, namespace=namespace, **inputs)
            continue
        decision = steps.gate(score, case["threshold"], service_name=name, namespace=namespace, **inputs)
        assert (decision.deploy, decision.decided_by) == (case["deploy"], case["decided_by"]), case["case"]
        # The component itself (its Python function) maps the decision onto the pipeline's branch.
        branch = pipeline.gate.python_func(
            f_score=score,
            f_score_threshold=case["threshold"],
            baseline_f_score=inputs["baseline"],
            baseline_margin=inputs["baseline_margin"],
            serving_f_score=inputs["serving_rescored"],
            evaluable=inputs["evaluable"],
            no_labels_policy=inputs["no_labels_policy"],
            service_name=name,
            namespace=namespace,
        )
        assert branch == ("deploy" if case["deploy"] else "skip"), case["case"]


def test_rollout_table_through_the_pipelines_deploy(
    runtime: RuntimeHandle, namespace: str, tmp_path: Path
) -> None:
    model = train_tiny_model(sys.executable, tmp_path / "model")
    recorded = ""
    for index, case in enumerate(CASES["rollout"]):
        prefix = case_prefix(tmp_path, index, case, model)
        kwargs: dict[str, Any] = {
            "f_score": case_score(index),
            "canary_percent": case["canary"],
            "service_name": SERVICE,
            "namespace": namespace,
            "run_id": f"r{index}",
            "source": case["source"],
        }
        if "error" in case:
            with pytest.raises(steps.StepFailed, match=case["error"]) as failed:
                steps.deploy(prefix, **kwargs)
            assert "rolled back" in str(failed.value), case["case"]
        else:
            result = steps.deploy(prefix, **kwargs)
            assert result["promoted"] is case["promoted"] and result["smoke_status"] == "ok", case["case"]
            recorded = str(case_score(index))
        check_serving(read_service(runtime.api, namespace), case, prefix, recorded)
