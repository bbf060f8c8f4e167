"""State backends and ``state=`` on routers: URLs, one instance per URL, what routers use."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from _fixtures.fakes import Recorder
from langchain_core.language_models import FakeListChatModel

from llmrouter import CircuitBreaker, ConfigurationError, ModelSpec, route_of
from llmrouter.cost import Budget, CostAwareRouter
from llmrouter.cost._spend_report import ledger_rows
from llmrouter.resilience import DEFAULT_BOARD, MemoryBreakerBoard
from llmrouter.resilience._breaker import SQLiteBreakerBoard
from llmrouter.state import MemoryState, RedisState, SQLiteState, open_state
from llmrouter.state._redis_breakers import RedisBreakerBoard
from llmrouter.state._redis_ledger import RedisSpendLedger
from llmrouter.state._sqlite_ledger import SpendLedger
from llmrouter.testing import RedisServer


def priced(name: str = "small") -> ModelSpec:
    return ModelSpec(
        name=name, model=Recorder(reply=name, usage=(10, 5)), input_cost=1.0, output_cost=2.0
    )


def test_urls_name_the_backends(tmp_path: Path) -> None:
    assert isinstance(open_state("memory://"), MemoryState)
    sqlite = open_state(f"sqlite:///{tmp_path}/state.db")
    assert isinstance(sqlite, SQLiteState) and sqlite.path == f"{tmp_path}/state.db"
    redis = open_state("redis://127.0.0.1:1/0")
    assert isinstance(redis, RedisState)
    assert open_state("redis://127.0.0.1:1/0") is redis  # one instance (and pool) per URL
    assert open_state(redis) is redis


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("postgres://x", "is not a state URL"),
        ("sqlite:///:memory:", "use state='memory://'"),
        (42, "must be a URL or a SharedState"),
    ],
)
def test_bad_states_say_what_to_write(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_state(value)  # type: ignore[arg-type]


def test_redis_options_are_checked_and_the_password_never_shown() -> None:
    with pytest.raises(ConfigurationError, match="'closed' or 'open'"):
        RedisState(budgets="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout must be > 0"):
        RedisState(timeout=0)
    state = RedisState("redis://user:s3cret@127.0.0.1:6379/0", budgets="open")
    assert "s3cret" not in repr(state) and "s3cret" not in state.url
    copy = pickle.loads(pickle.dumps(state))
    assert (
        copy.budgets == "open"
        and copy.client.connection_pool.connection_kwargs["password"] == "s3cret"
    )


def test_each_backend_gives_its_stores(tmp_path: Path, redis_server: RedisServer) -> None:
    memory = MemoryState()
    assert isinstance(memory.ledger(), SpendLedger) and memory.breaker_board() is DEFAULT_BOARD
    sqlite = SQLiteState(tmp_path / "state.db")
    assert isinstance(sqlite.ledger(), SpendLedger) and sqlite.ledger() is sqlite.ledger()
    assert isinstance(sqlite.breaker_board(), SQLiteBreakerBoard)
    assert pickle.loads(pickle.dumps(sqlite)).path == sqlite.path
    redis = RedisState(redis_server.url)
    assert isinstance(redis.ledger(), RedisSpendLedger)
    assert isinstance(redis.breaker_board(), RedisBreakerBoard)


def test_a_router_with_state_keeps_breakers_and_spend_there(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    router = CostAwareRouter(
        name="r", models=[priced()], budget=Budget(usd=1.0, per="day"), state=url
    )
    assert isinstance(router.circuit_breaker.board, SQLiteBreakerBoard)  # type: ignore[union-attr]
    assert route_of(router.invoke("hi", max_tokens=5)).model == "small"
    (row,) = ledger_rows(router)  # the report reads the state's ledger
    assert row["state"] == "settled" and row["usd"] == pytest.approx((10 + 10) / 1e6)
    assert open_state(url).ledger().rows("r") == [row]
    # a router pickles as its settings: the copy uses the same state
    fake = ModelSpec(name="fake", model=FakeListChatModel(responses=["x"]))
    copy = pickle.loads(pickle.dumps(CostAwareRouter(models=[fake], state=url)))
    assert copy.state == url and isinstance(copy.circuit_breaker.board, SQLiteBreakerBoard)
    assert "circuit_breaker" not in copy.model_fields_set


def test_a_breaker_with_its_own_board_keeps_it(tmp_path: Path) -> None:
    own = MemoryBreakerBoard()
    router = CostAwareRouter(
        models=[priced()],
        circuit_breaker=CircuitBreaker(board=own),
        state=f"sqlite:///{tmp_path}/s.db",
    )
    assert router.circuit_breaker is not None and router.circuit_breaker.board is own


def test_state_and_spend_db_together_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"either state= .* or spend_db="):
        CostAwareRouter(
            models=[priced()],
            budget=Budget(usd=1.0, per="day"),
            state="memory://",
            spend_db=tmp_path / "spend.db",
        )
