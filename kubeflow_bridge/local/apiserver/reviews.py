"""Create-only review resources: ``kubectl auth can-i`` and ``kubectl auth whoami``.

The local runtime has one user (the kubeconfig's, with the token when auth is on), who may do
everything, as a cluster admin may; reviews are answered and never stored.
"""

from __future__ import annotations

from typing import Any

from kubeflow_bridge.local.apiserver.kinds import SELF_SUBJECT_REVIEW, SELF_SUBJECT_RULES_REVIEW, ResourceType

USERNAME = "kubeflow-bridge-local"
GROUPS = ["system:masters", "system:authenticated"]
REASON = "the local runtime's one user may do everything (a cluster admin)"


def answer(rt: ResourceType, body: dict[str, Any]) -> dict[str, Any]:
    """The review with its status filled in, as the real API server returns it (201)."""
    review = {**body, "apiVersion": rt.api_version, "kind": rt.kind}
    review.setdefault("metadata", {})["creationTimestamp"] = None
    if rt is SELF_SUBJECT_REVIEW:
        review["status"] = {"userInfo": {"username": USERNAME, "groups": GROUPS}}
    elif rt is SELF_SUBJECT_RULES_REVIEW:
        review["status"] = {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        }
    else:
        review["status"] = {"allowed": True, "reason": REASON}
    return review
