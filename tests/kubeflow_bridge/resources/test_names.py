from __future__ import annotations

import hashlib
import json
import random

import pytest

from kubeflow_bridge.resources.names import (
    IDENTITY_LABEL,
    MANAGED_BY_LABEL,
    Identity,
    dns1035_problem,
    identity_annotations,
    identity_labels,
    identity_selector,
    is_dns1035_label,
    kfp_resource_name,
    make_name,
    owned_by,
    resource_name,
    with_identity,
)

RUN_ID = "scheduled__2026-11-22T00:00:00+00:00"


def test_identity_hash_is_12_hex_of_sha256_of_the_tuple() -> None:
    ident = Identity.airflow("iss_anomaly", "tune", RUN_ID, -1)
    expected = hashlib.sha256(
        json.dumps(["airflow", "iss_anomaly", "tune", RUN_ID, -1]).encode()
    ).hexdigest()[:12]
    assert ident.hash == expected
    assert len(ident.hash) == 12 and int(ident.hash, 16) >= 0


def test_names_are_deterministic_and_differ_per_run_and_map_index() -> None:
    a = resource_name("iss_anomaly", "tune", RUN_ID)
    assert a == resource_name("iss_anomaly", "tune", RUN_ID)
    assert a.startswith("iss-anomaly-tune-")
    assert a != resource_name("iss_anomaly", "tune", RUN_ID + "x")
    assert resource_name("d", "t", RUN_ID, 0) != resource_name("d", "t", RUN_ID, 1)
    assert resource_name("d", "t", RUN_ID, None) == resource_name("d", "t", RUN_ID, -1)
    assert resource_name("d", "t", RUN_ID, 2).startswith("d-t-2-")


@pytest.mark.parametrize(
    "dag_id,task_id",
    [
        ("My_DAG.With Spaces", "Group.Task_1"),
        ("9starts_with_digit", "x"),
        ("---", "___"),
        ("a" * 300, "b" * 300),
        ("dag", "task-ending-with-dash-"),
    ],
)
@pytest.mark.parametrize("max_length", [63, 40, 20])
def test_names_are_valid_dns1035_within_max_length(dag_id: str, task_id: str, max_length: int) -> None:
    name = resource_name(dag_id, task_id, RUN_ID, 7, max_length=max_length)
    assert is_dns1035_label(name, max_length), name
    assert name.endswith(Identity.airflow(dag_id, task_id, RUN_ID, 7).hash)


def test_long_prefix_is_cut_but_hash_kept() -> None:
    name = resource_name("x" * 100, "y", RUN_ID, max_length=40)
    assert len(name) == 40
    assert name == "x" * 27 + "-" + Identity.airflow("x" * 100, "y", RUN_ID).hash


def test_make_name_refuses_too_short_max_length() -> None:
    with pytest.raises(ValueError, match="too short"):
        make_name("abc", "0123456789ab", max_length=10)


def test_kfp_identity_name_labels_annotations() -> None:
    ident = Identity.kfp("iss-pipeline", "run-123", "train")
    name = kfp_resource_name("iss-pipeline", "run-123", "train")
    assert name == ident.resource_name() and name.startswith("iss-pipeline-train-")
    assert ident.hash != Identity.airflow("iss-pipeline", "train", "run-123").hash
    assert identity_annotations(ident) == {
        "kubeflow-bridge.io/pipeline": "iss-pipeline",
        "kubeflow-bridge.io/pipeline-run": "run-123",
        "kubeflow-bridge.io/pipeline-task": "train",
    }


def test_airflow_labels_and_annotations_exactly_as_the_contract() -> None:
    ident = Identity.airflow("dag", "task", RUN_ID, 3)
    assert identity_labels(ident) == {
        "app.kubernetes.io/managed-by": "kubeflow-bridge",
        "kubeflow-bridge.io/identity": ident.hash,
    }
    assert identity_annotations(ident) == {
        "kubeflow-bridge.io/dag-id": "dag",
        "kubeflow-bridge.io/task-id": "task",
        "kubeflow-bridge.io/run-id": RUN_ID,
        "kubeflow-bridge.io/map-index": "3",
    }


def test_with_identity_merges_without_mutating_input() -> None:
    ident = Identity.airflow("dag", "task", RUN_ID)
    manifest = {
        "kind": "PyTorchJob",
        "metadata": {"name": "x", "labels": {"team": "ml", IDENTITY_LABEL: "stale"}},
    }
    out = with_identity(manifest, ident)
    assert manifest["metadata"]["labels"] == {"team": "ml", IDENTITY_LABEL: "stale"}
    assert out["metadata"]["labels"] == {
        "team": "ml",
        MANAGED_BY_LABEL: "kubeflow-bridge",
        IDENTITY_LABEL: ident.hash,
    }
    assert out["metadata"]["annotations"]["kubeflow-bridge.io/dag-id"] == "dag"
    assert owned_by(out, ident)
    assert not owned_by(manifest, ident)
    assert not owned_by({"metadata": {}}, ident)


def test_identity_rejects_missing_parts_and_unknown_flavour() -> None:
    with pytest.raises(ValueError, match="needs non-empty run_id"):
        Identity.airflow("dag", "task", "")
    with pytest.raises(ValueError, match="needs non-empty pipeline_task"):
        Identity.kfp("p", "r", "")
    with pytest.raises(ValueError, match="flavour"):
        Identity(flavour="argo", dag_id="d")


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("", "is required"),
        (None, "is required"),
        ("Upper", "not a valid DNS-1035"),
        ("1abc", "not a valid DNS-1035"),
        ("abc-", "not a valid DNS-1035"),
        ("a_b", "not a valid DNS-1035"),
        ("a" * 64, "no more than 63"),
    ],
)
def test_dns1035_problem_messages(name: object, fragment: str) -> None:
    problem = dns1035_problem(name)
    assert problem is not None and fragment in problem
    assert dns1035_problem("ok-name-1") is None


def test_identity_selector_matches_the_labels() -> None:
    ident = Identity.kfp("p", "r", "t")
    selector = identity_selector(ident)
    assert dict(part.split("=") for part in selector.split(",")) == identity_labels(ident)


def test_random_identities_always_give_valid_distinct_names() -> None:
    rng = random.Random(1035)
    alphabet = "abcXYZ019_-.:+ /é漢"
    names = set()
    for i in range(500):
        parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(3)]
        max_length = rng.choice([14, 20, 40, 45, 63])
        name = resource_name(*parts, i, max_length=max_length)
        assert is_dns1035_label(name, max_length), (parts, name)
        names.add(name)
    assert len(names) == 500


def test_object_ref_round_trip_and_bad_references() -> None:
    from kubeflow_bridge.resources.names import ObjectRef

    ref = ObjectRef.parse("team-a/train-1")
    assert (ref.namespace, ref.name) == ("team-a", "train-1") and str(ref) == "team-a/train-1"
    for bad in ("train-1", "/x", "a/", "a/b/c", None):
        with pytest.raises(ValueError, match="namespace/name"):
            ObjectRef.parse(bad)
