"""The Airflow side of the decision table: the DAG's gate and deploy operators on the local runtime.

The KFP side (tests/kubeflow_bridge/workflow/test_decisions_kfp.py) runs the same table through the
pipeline's steps; both assert the table's decisions, so both orchestrators decide the same.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kubeflow_bridge import workflow
from kubeflow_bridge.operators._base import KubeflowOperatorError
from kubeflow_bridge.operators.gate import ModelGateBranchOperator
from kubeflow_bridge.operators.kserve import KServeDeployOperator

from . import test_local_runtime as on_runtime
from .local_runtime import TRAINER_PYTHON

ctx = on_runtime.ctx
# The runtime and a fresh namespace per test (with the connections pointing at it), as the other e2e tests.
runtime = on_runtime.runtime
namespace = on_runtime.namespace

pytestmark = pytest.mark.e2e


def _load_decisions() -> ModuleType:
    path = Path(__file__).parents[1] / "workflow" / "decisions.py"
    spec = importlib.util.spec_from_file_location("workflow_decisions", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


decisions = _load_decisions()


def test_gate_table_through_the_gate_operator(runtime: Any, namespace: str) -> None:
    for index, case in enumerate(decisions.CASES["gate"]):
        name = f"gate-{index}"
        if case["serving"] is not None:
            decisions.create_serving_record(runtime.api, namespace, name, case["serving"])
        # The DAG renders the evaluate task's f_score: a number, NaN, or None when it had none.
        score = case["score"] if case["score"] is None else str(case["score"])
        # ... and the baseline's score from its metrics (None when there is none), evaluable as rendered text.
        baseline = case.get("baseline")
        gate = ModelGateBranchOperator(
            task_id="gate",
            metric_value=score,
            threshold=str(case["threshold"]),
            baseline_value=None if baseline in (None, "nan") else str(baseline),
            baseline_margin=str(case.get("margin", 0.0)),
            serving_value=None if "rescored" not in case else str(case["rescored"]),
            evaluable=str(case.get("evaluable", True)),
            no_labels_policy=case.get("policy", "if_nothing_serves"),
            metric_name=workflow.F_SCORE_METRIC,
            service_name=name,
            deploy_task_ids="deploy",
            skip_task_ids=["skip"],
        )
        context = ctx()
        if "error" in case:
            with pytest.raises(ValueError, match=case["error"]):
                gate.choose_branch(context)
            continue
        branch = gate.choose_branch(context)
        assert branch == ("deploy" if case["deploy"] else ["skip"]), case["case"]
        pushed = context["ti"].xcoms["gate"]
        assert (pushed["deploy"], pushed["decided_by"]) == (case["deploy"], case["decided_by"]), case["case"]
        if case["score"] == "nan":
            assert pushed["score"] is None and not math.isnan(pushed["threshold"])


def test_rollout_table_through_the_deploy_operator(runtime: Any, namespace: str, tmp_path: Path) -> None:
    model = decisions.train_tiny_model(str(TRAINER_PYTHON), tmp_path / "model")
    recorded = ""
    for index, case in enumerate(decisions.CASES["rollout"]):
        prefix = decisions.case_prefix(tmp_path, index, case, model)
        score = decisions.case_score(index)
        op = KServeDeployOperator(
            task_id="deploy",
            name=decisions.SERVICE,
            image=workflow.TRAINER_IMAGE,
            model_uri=workflow.evaluated_model_uri(prefix),
            canary_traffic_percent=case["canary"],
            smoke_payload=workflow.smoke_payload(case["source"]),
            metrics={workflow.F_SCORE_METRIC: str(score)},
            poll_interval=1,
            timeout=120,
            deferrable=False,
        )
        if "error" in case:
            with pytest.raises(KubeflowOperatorError, match=case["error"]) as failed:
                op.execute(ctx(f"r{index}"))
            assert "rolled back" in str(failed.value), case["case"]
        else:
            result = op.execute(ctx(f"r{index}"))
            assert result["promoted"] is case["promoted"] and result["smoke_status"] == "ok", case["case"]
            recorded = str(score)
        decisions.check_serving(decisions.read_service(runtime.api, namespace), case, prefix, recorded)
