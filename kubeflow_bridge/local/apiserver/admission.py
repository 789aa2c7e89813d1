"""Admission: defaults and validation run before an object is stored (API writes and controllers' creates).

Validation of the Kubeflow kinds uses the resources layer's validators (the webhooks' rules);
structural checks here cover the parts the API server itself would reject (wrong field types,
missing required fields). Every problem is returned as a 422 Invalid ``Status`` with causes.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from typing import Any

from kubeflow_bridge.local.apiserver import errors as apierrors
from kubeflow_bridge.local.apiserver.kinds import ResourceType
from kubeflow_bridge.local.apiserver.store import Obj
from kubeflow_bridge.resources._checks import dns1123_label_problem, label_key_problem, label_value_problem
from kubeflow_bridge.resources.errors import ValidationError
from kubeflow_bridge.resources.katib import validate_experiment
from kubeflow_bridge.resources.kserve import validate_inference_service
from kubeflow_bridge.resources.training import validate_pytorchjob
from kubeflow_bridge.resources.v1jobs import V1_KINDS, apply_v1_defaults, validate_v1

Cause = dict[str, str]

Validator = Callable[[dict[str, Any], "dict[str, Any] | None"], None]  # (object, stored object or None)


def _default_and_validate_v1(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    apply_v1_defaults(obj)  # the operator's mutating webhook, then its validating one
    validate_v1(obj)


#: The built-in validators per resource key (the webhooks' rules from the resources layer); a runtime
#: component replaces one through :attr:`Admission.validators` (Katib adds the runtime's own limits).
DEFAULT_VALIDATORS: dict[str, Validator] = {
    "kubeflow.org/pytorchjobs": lambda obj, old: validate_pytorchjob(obj),
    **{f"kubeflow.org/{kind.lower()}s": _default_and_validate_v1 for kind in V1_KINDS},
    "kubeflow.org/experiments": lambda obj, old: validate_experiment(obj),
    "serving.kserve.io/inferenceservices": lambda obj, old: validate_inference_service(obj),
}


_DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> Cause:
    return {"reason": reason, "message": message, "field": field}


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)


def _expect(causes: list[Cause], path: str, value: Any, kind: type, what: str) -> bool:
    if value is None:
        return False
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        causes.append(_cause(path, f"Invalid value: {_type_name(value)}: {path} must be an integer"))
        return False
    if not isinstance(value, kind):
        causes.append(_cause(path, f"Invalid value: {_type_name(value)}: {path} must be {what}"))
        return False
    return True


def _string_map(causes: list[Cause], path: str, value: Any) -> None:
    if _expect(causes, path, value, dict, "an object of strings"):
        for k, v in value.items():
            if not isinstance(v, str):
                causes.append(_cause(f"{path}.{k}", f"Invalid value: {_type_name(v)}: must be a string"))


def check_metadata(causes: list[Cause], obj: Obj) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        causes.append(_cause("metadata", "metadata must be an object", "FieldValueRequired"))
        return
    _string_map(causes, "metadata.labels", meta.get("labels"))
    _string_map(causes, "metadata.annotations", meta.get("annotations"))
    for field in ("labels", "annotations"):
        mapping = meta.get(field)
        for key, value in (mapping if isinstance(mapping, dict) else {}).items():
            problem = label_key_problem(key) or (
                label_value_problem(value) if field == "labels" and isinstance(value, str) else None
            )
            if problem:
                causes.append(_cause(f"metadata.{field}", f"Invalid value: {problem}"))
    fin = meta.get("finalizers")
    if fin is not None and (not isinstance(fin, list) or not all(isinstance(f, str) for f in fin)):
        causes.append(_cause("metadata.finalizers", "finalizers must be a list of strings"))
    refs = meta.get("ownerReferences")
    if refs is not None and not isinstance(refs, list):
        causes.append(_cause("metadata.ownerReferences", "ownerReferences must be a list"))
    name = meta.get("name")
    if isinstance(name, str) and name and not _DNS_SUBDOMAIN.fullmatch(name):
        causes.append(
            _cause(
                "metadata.name",
                f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
            )
        )


def check_pod_spec(causes: list[Cause], path: str, spec: Any) -> None:
    """Structural checks of a PodSpec (containers with name and image, typed command/args/env)."""
    if not _expect(causes, path, spec, dict, "an object"):
        if spec is None:
            causes.append(_cause(path, "Required value", "FieldValueRequired"))
        return
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(
            _cause(f"{path}.containers", "Required value: at least one container", "FieldValueRequired")
        )
        return
    names = set()
    for i, c in enumerate(containers):
        cp = f"{path}.containers[{i}]"
        if not _expect(causes, cp, c, dict, "an object"):
            continue
        if not isinstance(c.get("name"), str) or not c.get("name"):
            causes.append(_cause(f"{cp}.name", "Required value", "FieldValueRequired"))
        elif problem := dns1123_label_problem(c["name"], "container name"):
            causes.append(_cause(f"{cp}.name", f"Invalid value: {problem}"))
        elif c["name"] in names:
            causes.append(_cause(f"{cp}.name", f'Duplicate value: "{c["name"]}"', "FieldValueDuplicate"))
        else:
            names.add(c["name"])
        if not isinstance(c.get("image"), str) or not c.get("image"):
            causes.append(_cause(f"{cp}.image", "Required value", "FieldValueRequired"))
        elif c["image"] != c["image"].strip():
            causes.append(
                _cause(f"{cp}.image", "Invalid value: must not have leading or trailing whitespace")
            )
        for key in ("command", "args"):
            v = c.get(key)
            if v is not None and (not isinstance(v, list) or not all(isinstance(a, str) for a in v)):
                causes.append(_cause(f"{cp}.{key}", f"Invalid value: {key} must be a list of strings"))
        env = c.get("env")
        if env is not None:
            if not isinstance(env, list):
                causes.append(_cause(f"{cp}.env", "Invalid value: env must be a list"))
            else:
                for j, e in enumerate(env):
                    if not isinstance(e, dict) or not isinstance(e.get("name"), str):
                        causes.append(_cause(f"{cp}.env[{j}].name", "Required value", "FieldValueRequired"))
                    elif "value" in e and not isinstance(e["value"], str):
                        causes.append(
                            _cause(
                                f"{cp}.env[{j}].value",
                                f"Invalid value: {_type_name(e['value'])}: must be a string",
                            )
                        )
        if c.get("workingDir") is not None:
            _expect(causes, f"{cp}.workingDir", c["workingDir"], str, "a string")
        if c.get("resources") is not None:
            _expect(causes, f"{cp}.resources", c["resources"], dict, "an object")
    rp = spec.get("restartPolicy")
    if rp is not None and rp not in ("Always", "OnFailure", "Never"):
        causes.append(
            _cause(
                f"{path}.restartPolicy",
                f'Unsupported value: "{rp}": supported values: "Always", "OnFailure", "Never"',
                "FieldValueNotSupported",
            )
        )


def qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed (limits == requests everywhere), BestEffort (nothing set) or Burstable."""
    res = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    if all(r.get("limits") and (r.get("requests") or r["limits"]) == r["limits"] for r in res):
        return "Guaranteed"
    return "Burstable"


class Admission:
    """Defaults then validates. ``admit(rt, obj, old)`` returns the object to store or raises 422.

    Attributes:
        validators: Validator per resource key (``group/plural``), raising ``ValidationError``.
        webhooks: Resource key -> the validating webhook's name, for kinds whose rules a webhook
            enforces on a real cluster: their refusals are 403 "admission webhook ... denied the
            request: ...", as the API server relays a webhook's denial.
    """

    def __init__(self) -> None:
        self.validators: dict[str, Validator] = dict(DEFAULT_VALIDATORS)
        self.webhooks: dict[str, str] = {
            "kubeflow.org/pytorchjobs": "validator.pytorchjob.training-operator.kubeflow.org",
            **{
                f"kubeflow.org/{kind.lower()}s": f"validator.{kind.lower()}.training-operator.kubeflow.org"
                for kind in V1_KINDS
            },
        }

    def admit(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        obj = copy.deepcopy(obj)
        causes: list[Cause] = []
        check_metadata(causes, obj)
        if causes:
            self._fail(rt, obj, causes)
        hook = getattr(self, f"_admit_{rt.plural}", None)
        if hook is not None:
            hook(obj, old, causes)
        if causes:
            self._fail(rt, obj, causes)
        validator = self.validators.get(rt.key)
        if validator is not None:
            try:
                validator(obj, old)
            except ValidationError as e:
                webhook = self.webhooks.get(rt.key)
                if webhook is not None:
                    errors = [f"{c.field}: {c.message}" for c in e.causes]
                    text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
                    raise apierrors.ApiError(
                        403, "Forbidden", f'admission webhook "{webhook}" denied the request: {text}'
                    ) from None
                self._fail(rt, obj, [c.as_status_cause() for c in e.causes])
        return obj

    def _fail(self, rt: ResourceType, obj: Obj, causes: list[Cause]) -> None:
        meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
        raise apierrors.invalid(
            rt.group, rt.kind, str(meta.get("name") or meta.get("generateName") or ""), causes
        )

    # --- per-kind hooks -------------------------------------------------------------------------
    def _admit_pods(self, obj: Obj, old: Obj | None, causes: list[Cause]) -> None:
        spec = obj.get("spec")
        check_pod_spec(causes, "spec", spec)
        if isinstance(spec, dict):
            spec.setdefault("restartPolicy", "Always")
            if old is None and not causes:
                obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}

    def _admit_jobs(self, obj: Obj, old: Obj | None, causes: list[Cause]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            causes.append(_cause("spec", "Required value", "FieldValueRequired"))
            return
        for key in ("completions", "parallelism", "backoffLimit", "activeDeadlineSeconds"):
            if (
                spec.get(key) is not None
                and _expect(causes, f"spec.{key}", spec[key], int, "an integer")
                and spec[key] < 0
            ):
                causes.append(_cause(f"spec.{key}", "must be greater than or equal to 0"))
        tmpl = spec.get("template")
        if not isinstance(tmpl, dict):
            causes.append(_cause("spec.template", "Required value", "FieldValueRequired"))
            return
        check_pod_spec(causes, "spec.template.spec", tmpl.get("spec"))
        pspec = tmpl.get("spec") or {}
        if isinstance(pspec, dict) and pspec.get("restartPolicy") not in ("Never", "OnFailure"):
            causes.append(
                _cause(
                    "spec.template.spec.restartPolicy",
                    f'Required value: valid values: "OnFailure", "Never" (got {pspec.get("restartPolicy")!r})',
                    "FieldValueRequired" if pspec.get("restartPolicy") is None else "FieldValueNotSupported",
                )
            )
        if causes:
            return
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("suspend", False)
        if old is None:
            meta = obj["metadata"]
            uid = meta.get("uid") or str(uuid.uuid4())
            meta["uid"] = uid
            labels = {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": meta.get("name") or "",
                "controller-uid": uid,
                "job-name": meta.get("name") or "",
            }
            if "selector" not in spec:
                spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            tmeta = tmpl.setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}

    def _admit_inferenceservices(self, obj: Obj, old: Obj | None, causes: list[Cause]) -> None:
        """KServe's defaulting webhook: legacy predictor.<framework> becomes predictor.model."""
        from kubeflow_bridge.local.kserve.predictor import convert_legacy_predictor

        predictor = (obj.get("spec") or {}).get("predictor") if isinstance(obj.get("spec"), dict) else None
        if isinstance(predictor, dict):
            obj["spec"]["predictor"] = convert_legacy_predictor(predictor)

    def _admit_pytorchjobs(self, obj: Obj, old: Obj | None, causes: list[Cause]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            causes.append(_cause("spec", "Required value", "FieldValueRequired"))
            return
        replicas = spec.get("pytorchReplicaSpecs")
        if not isinstance(replicas, dict) or not replicas:
            causes.append(
                _cause(
                    "spec.pytorchReplicaSpecs", "Required value: Master and/or Worker", "FieldValueRequired"
                )
            )
            return
        for rtype, rspec in replicas.items():
            path = f"spec.pytorchReplicaSpecs[{rtype}]"
            if not isinstance(rspec, dict):
                causes.append(_cause(path, f"Invalid value: {_type_name(rspec)}: must be an object"))
                continue
            if rspec.get("replicas") is not None:
                _expect(causes, f"{path}.replicas", rspec["replicas"], int, "an integer")
            tmpl = rspec.get("template")
            if not isinstance(tmpl, dict):
                causes.append(_cause(f"{path}.template", "Required value", "FieldValueRequired"))
                continue
            check_pod_spec(causes, f"{path}.template.spec", tmpl.get("spec"))
        # No defaults are written: v1.9 has no mutating webhook; its controller defaults in memory.
