"""Learned routing inside `CostAwareRouter`: order the eligible models by predicted quality.

A `llmrouter.learn.QualityPredictor` predicts each model's quality for the prompt;
one rule turns that into an order (the first model answers, the rest are the
fallbacks):

* ``cost_weight=λ``: the highest ``predicted quality - λ · estimated cost (USD)``;
* ``target_quality=q``: the cheapest model predicted to reach ``q`` (none does: the
  best predicted first);
* ``strong_share=s`` (two models): the stronger model when its predicted gain over
  the weaker exceeds the threshold that sent a share ``s`` of the validation prompts
  to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from llmrouter.errors import ConfigurationError

if TYPE_CHECKING:
    from llmrouter.learn import QualityPredictor
    from llmrouter.spec import ModelSpec


class Option(Protocol):
    """What `LearnedRule.order` needs of an eligible model."""

    spec: ModelSpec
    estimate: float
    index: int


OptionT = TypeVar("OptionT", bound=Option)


@dataclass(frozen=True)
class LearnedRule:
    """A predictor and the rule that orders models by its predictions."""

    predictor: QualityPredictor
    rule: str
    value: float
    """λ, the target quality, or the calibrated gain threshold."""
    share: float | None = None
    """For ``strong_share``: the share the threshold was calibrated for."""

    @classmethod
    def build(
        cls, predictor: Any, models: list[ModelSpec], settings: dict[str, float | None]
    ) -> LearnedRule | None:
        """The rule for a router's settings; ``None`` without a predictor.

        Raises:
            ConfigurationError: a rule without a predictor, not exactly one rule, a
                predictor for other models, or a share it cannot calibrate.
        """
        given = {k: v for k, v in settings.items() if v is not None}
        if predictor is None:
            if given:
                raise ConfigurationError(
                    f"{sorted(given)} need a quality predictor: pass predictor=<QualityPredictor "
                    "or the directory `llmrouter fit` wrote>"
                )
            return None
        from llmrouter.learn import QualityPredictor

        predictor = QualityPredictor.coerce(predictor)
        if len(given) != 1:
            raise ConfigurationError(
                "a router with a quality predictor needs exactly one of cost_weight= (quality "
                "per USD), target_quality= (0..1) or strong_share= (two models, 0..1); "
                f"got {sorted(given) or 'none'}"
            )
        predictor.check_covers([s.name for s in models])
        ((rule, value),) = given.items()
        if rule == "strong_share":
            return cls(predictor, rule, predictor.threshold_for(float(value)), float(value))
        return cls(predictor, rule, float(value))

    def predict(self, text: str) -> dict[str, float]:
        """Each model's predicted quality for ``text`` (not added to the embedding cache)."""
        return self.predictor.predict_one(text, remember=False)

    def order(
        self, options: list[OptionT], predicted: dict[str, float]
    ) -> tuple[list[OptionT], str]:
        """``options`` in the order to try them, and why the first."""
        quality = {o.spec.name: predicted[o.spec.name] for o in options}
        if self.rule == "cost_weight":
            lam = self.value
            ordered = sorted(
                options,
                key=lambda o: (-(quality[o.spec.name] - lam * o.estimate), o.estimate, o.index),
            )
            first = ordered[0]
            return ordered, (
                f"best predicted quality - {lam:g} x cost: {first.spec.name!r} predicted "
                f"{quality[first.spec.name]:.2f} at est. ${first.estimate:.6f}"
            )
        if self.rule == "target_quality":
            target = self.value
            meeting = sorted(
                (o for o in options if quality[o.spec.name] >= target),
                key=lambda o: (o.estimate, -quality[o.spec.name], o.index),
            )
            rest = sorted(
                (o for o in options if quality[o.spec.name] < target),
                key=lambda o: (-quality[o.spec.name], o.estimate, o.index),
            )
            first = (meeting or rest)[0]
            how = (
                f"cheapest model predicted to reach {target:.2f}"
                if meeting
                else f"no model predicted to reach {target:.2f}: the best predicted"
            )
            return [*meeting, *rest], (
                f"{how}: {first.spec.name!r} ({quality[first.spec.name]:.2f}, "
                f"est. ${first.estimate:.6f})"
            )
        return self._strong_or_weak(options, quality)

    def _strong_or_weak(
        self, options: list[OptionT], quality: dict[str, float]
    ) -> tuple[list[OptionT], str]:
        strong_index, weak_index = self.predictor.strong_weak()
        strong = self.predictor.models[strong_index]
        weak = self.predictor.models[weak_index]
        if strong not in quality or weak not in quality:  # one is not eligible
            ordered = sorted(options, key=lambda o: -quality[o.spec.name])
            return ordered, f"only {ordered[0].spec.name!r} of the two models is eligible"
        gain = quality[strong] - quality[weak]
        pick = strong if gain > self.value else weak
        ordered = sorted(options, key=lambda o: o.spec.name != pick)
        sign = ">" if pick == strong else "<="
        return ordered, (
            f"predicted gain of {strong!r} over {weak!r} {gain:+.3f} {sign} threshold "
            f"{self.value:+.3f} (calibrated for {self.share:.0%} strong calls)"
        )

    def details(self, predicted: dict[str, float]) -> dict[str, Any]:
        """What the route record shows under ``extra["learned"]``."""
        shown: dict[str, Any] = {
            "rule": self.rule,
            "predicted_quality": {k: round(v, 4) for k, v in predicted.items()},
            "estimator": self.predictor.estimator.describe(),
        }
        if self.rule == "cost_weight":
            shown["lambda"] = self.value
        elif self.rule == "target_quality":
            shown["target"] = self.value
        else:
            shown["threshold"], shown["strong_share"] = self.value, self.share
        return shown
