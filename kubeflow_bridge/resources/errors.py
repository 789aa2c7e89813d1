"""Validation errors shared by the builders, the clients and the local runtime's admission checks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldCause:
    """One problem with one field, shaped like a Kubernetes ``Status`` cause.

    Args:
        field: The JSON path of the field, e.g. ``spec.parameters[0].feasibleSpace.min``.
        message: What is wrong and how to fix it.
        reason: The Kubernetes cause reason (``FieldValueInvalid``, ``FieldValueRequired``, ...).
    """

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def as_status_cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class ValidationError(ValueError):
    """A manifest or a set of inputs is invalid; nothing was sent.

    Args:
        kind: What was validated (``Experiment``, ``PyTorchJob``, ``pipeline parameters`` ...).
        name: Its name, when it has one.
        causes: Every problem found (validation does not stop at the first).
    """

    kind: str
    name: str = ""
    causes: list[FieldCause] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        what = f'{self.kind} "{self.name}"' if self.name else self.kind
        details = "; ".join(f"{c.field}: {c.message}" for c in self.causes)
        return f"{what} is invalid: {details}"


def raise_if_any(kind: str, name: str, causes: list[FieldCause]) -> None:
    """Raise a :class:`ValidationError` carrying ``causes`` if there are any."""
    if causes:
        raise ValidationError(kind=kind, name=name, causes=list(causes))
