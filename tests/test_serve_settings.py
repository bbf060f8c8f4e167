"""ServeSettings and ApiKey: bearer authentication, key scopes, validation."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmrouter.serve import ApiKey, ServeSettings

ALICE = "sk-alice-0123456789"
BOB = "sk-bob-9876543210"
CAROL = "sk-carol-5555555555"


def settings(*secrets: str) -> ServeSettings:
    keys = [ApiKey(key=s, name=s.split("-")[1], user=f"user-{i}") for i, s in enumerate(secrets)]
    return ServeSettings(keys=keys)


def test_the_right_key_is_found() -> None:
    found = settings(ALICE).authenticate(f"Bearer {ALICE}")
    assert found is not None
    assert found.name == "alice" and found.user == "user-0"


def test_the_scheme_is_case_insensitive_and_the_token_is_stripped() -> None:
    s = settings(ALICE)
    assert s.authenticate(f"bearer {ALICE}") is not None
    assert s.authenticate(f"BEARER   {ALICE}  ") is not None


def test_a_wrong_key_is_refused() -> None:
    assert settings(ALICE).authenticate("Bearer sk-alice-0123456788") is None
    assert settings(ALICE).authenticate(f"Bearer {ALICE}x") is None


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", ALICE, f"Basic {ALICE}", f"Token {ALICE}", f"Bearer{ALICE}"],
)
def test_a_missing_or_non_bearer_header_is_refused(header: str | None) -> None:
    assert settings(ALICE).authenticate(header) is None


@pytest.mark.parametrize("secret", [ALICE, BOB, CAROL])
def test_among_several_keys_the_right_one_is_found_in_any_position(secret: str) -> None:
    found = settings(ALICE, BOB, CAROL).authenticate(f"Bearer {secret}")
    assert found is not None
    assert found.key.get_secret_value() == secret
    assert found.name == secret.split("-")[1]


def test_a_prefix_of_a_real_key_is_refused() -> None:
    s = settings(ALICE, BOB)
    for n in (1, 8, len(ALICE) - 1):
        assert s.authenticate(f"Bearer {ALICE[:n]}") is None


def test_no_keys_authenticates_nobody() -> None:
    assert ServeSettings().authenticate(f"Bearer {ALICE}") is None


def test_every_key_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    s = settings(ALICE, BOB, CAROL)
    assert s.authenticate(f"Bearer {ALICE}") is not None  # found first, still compares all
    assert len(compared) == 3
    compared.clear()
    assert s.authenticate("Bearer nope-nope-nope") is None
    assert len(compared) == 3


def test_allows_every_target_when_routers_is_empty() -> None:
    key = ApiKey(key=ALICE, name="alice")
    assert key.routers == []
    assert key.allows("support") and key.allows("gpt-4o-mini")


def test_allows_only_the_listed_routers() -> None:
    key = ApiKey(key=ALICE, name="alice", routers=["support", "local-model"])
    assert key.allows("support") and key.allows("local-model")
    assert not key.allows("billing")
    assert not key.allows("suppor")


def test_a_key_shorter_than_8_characters_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 8"):
        ApiKey(key="1234567", name="short")
    assert ApiKey(key="12345678", name="ok").key.get_secret_value() == "12345678"


def test_the_secret_is_not_shown() -> None:
    key = ApiKey(key=ALICE, name="alice")
    assert ALICE not in repr(key) and ALICE not in str(key)
    assert ALICE not in ServeSettings(keys=[key]).model_dump_json()


def test_extra_fields_are_forbidden() -> None:
    with pytest.raises(ValidationError, match="extra"):
        ApiKey(key=ALICE, name="alice", budget=5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="extra"):
        ServeSettings(hots="0.0.0.0")  # type: ignore[call-arg]


def test_api_keys_are_frozen() -> None:
    key = ApiKey(key=ALICE, name="alice")
    with pytest.raises(ValidationError):
        key.name = "mallory"  # type: ignore[misc]


def test_settings_defaults_and_limits() -> None:
    s = ServeSettings()
    assert (s.host, s.port, s.keys, s.max_request_bytes) == ("127.0.0.1", 8080, [], 4_000_000)
    assert s.models_directly and s.route_in_response
    for bad in ({"port": 70000}, {"port": -1}, {"max_request_bytes": 0}, {"shutdown_timeout": 0}):
        with pytest.raises(ValidationError):
            ServeSettings(**bad)  # type: ignore[arg-type]


def test_keys_are_read_from_plain_dicts() -> None:
    s = ServeSettings.model_validate(
        {"keys": [{"key": ALICE, "name": "alice", "routers": ["support"], "user": "a"}]}
    )
    found = s.authenticate(f"Bearer {ALICE}")
    assert found is not None and found.routers == ["support"] and found.user == "a"


def test_a_rate_limit_refills_at_its_rate_and_allows_its_burst() -> None:
    key = ApiKey(key="sk-0123456789", name="k", requests_per_minute=60)
    assert all(key.take(now=0.0) is None for _ in range(60))  # a burst of a minute's worth
    assert key.take(now=0.0) == pytest.approx(1.0)  # one request per second refills
    assert key.take(now=0.5) == pytest.approx(0.5)
    assert key.take(now=1.0) is None
    assert ApiKey(key="sk-0123456789", name="k").take() is None  # no limit


def test_servers_on_one_state_share_a_keys_rate_limit(tmp_path: Path) -> None:
    """Two replicas (two ApiKey objects, as two processes would hold) on one SQLite
    state: 2 requests a minute in all, not 2 each."""
    from llmrouter.state import SQLiteState

    state = SQLiteState(tmp_path / "state.db")
    one, two = (ApiKey(key="sk-0123456789", name="team", requests_per_minute=2) for _ in "12")
    for key in (one, two):
        key.share_limit(state)
    assert [one.take(), two.take()] == [None, None]
    wait = two.take()
    assert wait is not None and 25 < wait <= 30  # the next token in about 30 s
    assert one.take() is not None
    alone = ApiKey(key="sk-0123456789", name="team", requests_per_minute=2)
    assert alone.take() is None  # not shared: its own bucket


def test_a_memory_state_leaves_each_key_its_own_bucket() -> None:
    from llmrouter.state import MemoryState

    key = ApiKey(key="sk-0123456789", name="k", requests_per_minute=1)
    key.share_limit(MemoryState())
    assert key.take() is None and key.take() is not None


def test_with_the_state_down_a_key_counts_in_this_process() -> None:
    from llmrouter.state import RedisState
    from llmrouter.testing import start_redis_server

    with start_redis_server() as server:
        key = ApiKey(key="sk-0123456789", name="k", requests_per_minute=1)
        key.share_limit(RedisState(server.url, namespace="keys-down"))
        server.kill()
        assert key.take() is None  # the local bucket starts full
        assert key.take() is not None
