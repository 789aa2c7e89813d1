"""Keeps the workflow's storage Secret (the local S3's credentials) in every namespace.

Pods get no credentials unasked (see the pod controller); the workflow's pods ask with
``envFrom: [{secretRef: {name: kubeflow-bridge-storage, optional: true}}]``
(:func:`kubeflow_bridge.workflow.storage_env_from`), as they would on a cluster where the team created
that Secret. Here the runtime creates it in each namespace, and updates it when the S3 keys change; a
Secret of that name the user made (without the runtime's label) is left alone.
"""

from __future__ import annotations

import base64

from kubeflow_bridge.local.apiserver.kinds import NAMESPACE, SECRET
from kubeflow_bridge.local.controllers.base import Controller, Request
from kubeflow_bridge.workflow.spec import STORAGE_SECRET

MANAGED_BY = {"app.kubernetes.io/managed-by": "kubeflow-bridge-local"}


class StorageSecretController(Controller):
    name = "storage-secrets"
    kinds = (NAMESPACE,)

    async def reconcile(self, req: Request) -> float | None:
        namespace = self.ctx.get(NAMESPACE, "", req.name)
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return None
        creds = {k: v for k, v in self.ctx.runtime_env().items() if k.startswith("AWS_")}
        if not creds:  # no S3 here (--no-s3)
            return None
        data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(creds.items())}
        existing = self.ctx.get(SECRET, req.name, STORAGE_SECRET)
        if existing is None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": STORAGE_SECRET, "labels": dict(MANAGED_BY)},
                "type": "Opaque",
                "data": data,
            }
            self.ctx.create(SECRET, body, namespace=req.name)
        elif (existing["metadata"].get("labels") or {}).items() >= MANAGED_BY.items() and existing.get(
            "data"
        ) != data:
            self.ctx.patch(SECRET, req.name, STORAGE_SECRET, {"data": data})
        return None
