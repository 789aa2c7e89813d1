"""The deploy gate: one rule set that the Airflow DAG and the KFP pipeline both call.

A candidate model is deployed only when it has a valid score, the score clears the threshold, it beats
the best simple baseline scored on the same split (by a margin), and it beats the model that serves now.
The serving model's score is its re-score on the candidate's own test split when evaluate could load it
(:func:`serving_model_uri` finds it; see :func:`serving_to_beat`), else the score recorded on its
InferenceService (``kubeflow-bridge.io/metric.<metric>``, written by the deploy step).

Rules, in order (the first that applies decides, and ``decided_by`` names it):

0. ``no_labels``: the evaluation could not score the candidate against labels (unlabelled data, or no
   labelled event in the test split): the explicit ``no_labels_policy`` decides: ``never`` deploys
   nothing, ``if_nothing_serves`` deploys only when no model serves yet, ``always`` replaces the serving
   model with the new one (its rollout's smoke test still guards it).
1. ``no_score``: the candidate has no score, or it is NaN or infinite -> do not deploy (what serves now
   keeps serving; a missing score is never read as "good enough").
2. ``threshold``: the score does not clear the threshold (``>=``, or ``<=`` when lower is better).
3. ``baseline``: the best baseline's score is known and the candidate does not beat it by more than
   ``baseline_margin`` (a tie keeps the serving model: a model no better than a rolling z-score or an
   IsolationForest has not earned a deployment).
4. ``serving_model``: a serving model with a recorded score exists and the candidate does not beat it
   strictly (a tie keeps the serving model).
5. ``passed``: deploy.

Bad input is an error, not a decision: a threshold that is not a finite number, a score that is not a
number at all (``"abc"``), or a recorded serving score that cannot be read (fix or remove the annotation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Annotation prefix under which a deploy records the served model's metrics.
METRIC_ANNOTATION_PREFIX = "kubeflow-bridge.io/metric."
#: What the gate does when the candidate could not be evaluated against labels (rule 0).
NO_LABELS_POLICIES = ("never", "if_nothing_serves", "always")


def metric_annotation(metric: str) -> str:
    """The annotation key holding ``metric`` of the model an InferenceService serves."""
    return f"{METRIC_ANNOTATION_PREFIX}{metric}"


def metric_record(value: Any) -> str:
    """A metric as its annotation records it: "" for none (None, "", NaN, infinite), else its text.

    A model deployed without a score (the no-labels policy) so clears the previous model's record.
    """
    if value is None:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(value) if math.isfinite(number) else ""


@dataclass(frozen=True)
class GateDecision:
    """Whether to deploy the candidate, and why.

    Attributes:
        deploy: True when every rule passed.
        reason: One sentence saying why.
        decided_by: The rule that decided: ``no_labels``, ``no_score``, ``threshold``, ``baseline``,
            ``serving_model`` or ``passed``.
        score: The candidate's score (None when it had none).
        threshold: The threshold it was held to.
        serving_score: The serving model's recorded score (None: nothing serves, or no record).
        baseline_score: The best baseline's score on the same split (None: not known).
    """

    deploy: bool
    reason: str
    decided_by: str
    score: float | None
    threshold: float
    serving_score: float | None
    baseline_score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes None) for XCom and KFP outputs."""
        score = self.score if self.score is not None and math.isfinite(self.score) else None
        return {
            "deploy": self.deploy,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "score": score,
            "threshold": self.threshold,
            "serving_score": self.serving_score,
            "baseline_score": self.baseline_score,
        }


def as_score(field: str, value: Any) -> float | None:
    """A score from a rendered template or a step output: None/"" -> None, else a float (NaN allowed).

    Raises:
        ValueError: ``value`` is a bool, infinite or text that is not a number (names the field).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a number (after templating), not {value!r}") from None
    if math.isinf(number):  # no score is infinite: a broken step or template produced it
        raise ValueError(f"{field} must be a finite number (or NaN when undefined), not {value!r}")
    return number


def as_flag(field: str, value: Any) -> bool:
    """A boolean from a rendered template or a step output (``True``/``"true"``/``1`` and their opposites).

    Raises:
        ValueError: Anything else (names the field).
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{field} must be true or false, not {value!r}")


def as_threshold(value: Any) -> float:
    """The gate's threshold as a finite float.

    Raises:
        ValueError: Missing, not a number, NaN or infinite.
    """
    threshold = as_score("threshold", value)
    if threshold is None or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, not {value!r}")
    return threshold


def serving_score(isvc: dict[str, Any] | None, metric: str) -> float | None:
    """The score recorded on the live InferenceService (None: no live service, or no record).

    Raises:
        ValueError: The annotation holds something that is not a finite number.
    """
    if isvc is None:
        return None
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    recorded = annotations.get(metric_annotation(metric))
    if recorded in (None, ""):
        return None
    name = (isvc.get("metadata") or {}).get("name", "")
    try:
        value = float(recorded)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(
            f"InferenceService {name} records {metric}={recorded!r} ({metric_annotation(metric)}), which is "
            "not a number: the gate cannot tell whether the candidate beats it. Fix or remove the annotation."
        )
    return value


def serving_model_uri(isvc: dict[str, Any] | None) -> str | None:
    """The model the live InferenceService's predictor serves (None: nothing serves, or not found).

    A ``model.storageUri``, or the ``--model`` argument of a custom container (the trainer's ``serve``).
    """
    if isvc is None:
        return None
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    storage = (predictor.get("model") or {}).get("storageUri")
    if storage:
        return str(storage)
    for container in predictor.get("containers") or []:
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        for i, arg in enumerate(argv):
            if arg == "--model" and i + 1 < len(argv):
                return str(argv[i + 1])
            if str(arg).startswith("--model="):
                return str(arg).split("=", 1)[1]
    return None


def serving_to_beat(isvc: dict[str, Any] | None, metric: str, rescored: float | None) -> float | None:
    """The serving model's score the candidate must beat.

    Its re-score on the candidate's test split (``rescored``) when evaluate could load it: both are then
    measured on the same window. Otherwise the score recorded on the InferenceService, measured on an
    older window (None when nothing serves or nothing is recorded).

    Raises:
        ValueError: The recorded annotation is not a number (see :func:`serving_score`).
    """
    if isvc is not None and rescored is not None and math.isfinite(rescored):
        return rescored
    return serving_score(isvc, metric)


def decide(
    score: float | None,
    threshold: float,
    serving: float | None = None,
    *,
    baseline: float | None = None,
    baseline_margin: float = 0.0,
    evaluable: bool = True,
    no_labels_policy: str = "if_nothing_serves",
    serving_exists: bool | None = None,
    higher_is_better: bool = True,
    metric: str = "score",
) -> GateDecision:
    """Apply the gate's rules (see the module docstring).

    Args:
        score: The candidate's score (None, NaN or infinite: no valid score).
        threshold: The score to clear (finite; use :func:`as_threshold` on raw input).
        serving: The serving model's recorded score (None: nothing to beat).
        baseline: The best baseline's score on the candidate's test split (None, NaN: none to beat).
        baseline_margin: How much the candidate must beat the baseline by (finite, >= 0).
        evaluable: False when the evaluation had no labels to score against (rule 0 decides).
        no_labels_policy: One of :data:`NO_LABELS_POLICIES`.
        serving_exists: Whether a model serves now (None: when ``serving`` is not None).
        higher_is_better: False for losses.
        metric: The metric's name, for the reason.

    Raises:
        ValueError: ``threshold`` or ``baseline_margin`` is not finite, the margin is negative, or the
            policy is unknown.
    """
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, not {threshold!r}")
    if not (math.isfinite(baseline_margin) and baseline_margin >= 0):
        raise ValueError(f"baseline_margin must be a finite number >= 0, not {baseline_margin!r}")
    if no_labels_policy not in NO_LABELS_POLICIES:
        raise ValueError(
            f"no_labels_policy must be one of {', '.join(NO_LABELS_POLICIES)}, not {no_labels_policy!r}"
        )
    if baseline is not None and not math.isfinite(baseline):
        baseline = None
    serves = serving is not None if serving_exists is None else serving_exists

    def decision(deploy: bool, reason: str, decided_by: str) -> GateDecision:
        return GateDecision(deploy, reason, decided_by, score, threshold, serving, baseline)

    if not evaluable:
        deploy = no_labels_policy == "always" or (no_labels_policy == "if_nothing_serves" and not serves)
        now = "a model serves" if serves else "no model serves"
        verb = "deploys" if deploy else "keeps what serves" if serves else "deploys nothing"
        return decision(
            deploy,
            f"not evaluable against labels; no_labels_policy={no_labels_policy} and {now}: {verb}",
            "no_labels",
        )
    if score is None or not math.isfinite(score):
        return decision(False, f"no valid {metric} to judge ({score!r}): the serving model stays", "no_score")
    clears = score >= threshold if higher_is_better else score <= threshold
    if not clears:
        return decision(
            False, f"{metric} {score:.4g} does not clear the threshold {threshold:.4g}", "threshold"
        )
    if baseline is not None:
        to_beat = baseline + baseline_margin if higher_is_better else baseline - baseline_margin
        if not (score > to_beat if higher_is_better else score < to_beat):
            return decision(
                False,
                f"{metric} {score:.4g} does not beat the best baseline's {baseline:.4g} by more than "
                f"{baseline_margin:.4g}",
                "baseline",
            )
    beats = serving is None or (score > serving if higher_is_better else score < serving)
    if not beats:
        return decision(
            False, f"{metric} {score:.4g} does not beat the serving model's {serving:.4g}", "serving_model"
        )
    against = "no serving model" if serving is None else f"the serving model's {serving:.4g}"
    if baseline is not None:
        against += f" and the best baseline's {baseline:.4g}"
    return decision(True, f"{metric} {score:.4g} clears {threshold:.4g} and beats {against}", "passed")
