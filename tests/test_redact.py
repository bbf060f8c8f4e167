"""Secrets never reach records, events, errors or the experiment store (issue 9, item 5).

The server below answers like OpenAI's API does to a wrong key: a 401 whose body
echoes the key it rejected.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel
from pydantic import SecretStr

from llmrouter import ABRouter, AllModelsFailedError, ModelRouter, ModelSpec, route_of
from llmrouter._redact import MASK, redact, secrets_of
from llmrouter.models import huggingface_endpoint, openai_compatible

KEY = "sk-test-0123456789abcdefSECRET"


class _EchoKeyHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        body = json.dumps(
            {
                "error": {
                    "message": f"Incorrect API key provided: {key}. Find your key at ...",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echo_key_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKeyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _rejected(url: str, name: str = "remote") -> ModelSpec:
    return openai_compatible("gpt-x", url, api_key=KEY, name=name)


def test_redact_masks_given_secrets_url_credentials_and_bearer_values() -> None:
    text = (
        f"key {KEY} at https://bob:hunter2hunter@host.example/v1 "
        "Authorization: Bearer abcdefghijklmnop"
    )
    out = redact(text, [KEY])
    assert KEY not in out and "hunter2hunter" not in out and "abcdefghijklmnop" not in out
    assert out.count(MASK) == 3
    assert "host.example/v1" in out  # what is not secret stays readable


def test_redact_leaves_ordinary_text_and_short_values_alone() -> None:
    text = "rate limit: tokens_per_minute exceeded (max_tokens=4096)"
    assert redact(text, ["EMPTY", "x"]) == text


def test_redact_masks_secret_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", "env-secret-value-42")
    assert redact("echo env-secret-value-42") == f"echo {MASK}"


def test_secrets_of_finds_secretstr_fields_and_client_keys() -> None:
    spec = openai_compatible("gpt-x", "http://127.0.0.1:9/v1", api_key=KEY)
    assert KEY in secrets_of(spec.chat_model)
    endpoint = huggingface_endpoint("http://127.0.0.1:9", api_key="hf_abcdefghijklmnop")
    assert "hf_abcdefghijklmnop" in secrets_of(endpoint.chat_model)
    assert secrets_of(FakeListChatModel(responses=["x"])) == set()
    assert secrets_of(ModelSpec.model_construct(name="n", model=None).model) == set()
    assert "s3cret-value" in secrets_of(_WithSecret(token=SecretStr("s3cret-value")))


class _WithSecret(FakeListChatModel):
    responses: list[str] = ["x"]
    token: SecretStr


def test_fallen_back_answer_records_no_key(echo_key_url: str) -> None:
    remote = openai_compatible("gpt-x", echo_key_url, api_key=KEY, name="remote", tasks={"chat"})
    local = ModelSpec(name="local", model=FakeListChatModel(responses=["fine"]), tasks={"chat"})
    msg = ModelRouter(models=[remote, local]).invoke("hi", task="chat")
    record = route_of(msg)
    assert record.model == "local"
    failed = [a for a in record.attempts if not a.ok]
    assert failed and all(KEY not in (a.error or "") for a in failed)
    assert any(MASK in (a.error or "") for a in failed)  # the echo was there, masked
    assert KEY not in json.dumps(msg.response_metadata, default=str)


def test_all_models_failed_error_and_route_event_hold_no_key(echo_key_url: str) -> None:
    router = ModelRouter(models=[_rejected(echo_key_url)], default="remote", max_retries=0)
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke("hi")
    assert KEY not in str(info.value) and MASK in str(info.value)
    assert KEY not in info.value.record.model_dump_json()

    async def events() -> list[str]:
        seen = []
        try:
            async for event in router.astream_events("hi", version="v2"):
                seen.append(json.dumps(event, default=str))
        except AllModelsFailedError:
            pass
        return seen

    seen = asyncio.run(events())
    assert any("llmrouter.route" in e for e in seen)
    assert all(KEY not in e for e in seen)


def test_experiment_store_keeps_no_key(echo_key_url: str, tmp_path: Path) -> None:
    db = tmp_path / "experiments.db"
    router = ABRouter(
        variants={
            "control": _rejected(echo_key_url),
            "candidate": _rejected(echo_key_url, "remote-2"),
        },
        experiment="keys",
        store=f"sqlite:///{db}",
        max_retries=0,
    )
    with pytest.raises(AllModelsFailedError):
        router.invoke("hi", thread_id="user-1")
    router.close()
    text = "\n".join(sqlite3.connect(db).iterdump())
    assert MASK in text  # the echoed error was stored, masked
    assert KEY not in text


def test_router_repr_shows_no_key_or_url_password() -> None:
    spec = openai_compatible("gpt-x", "http://bob:hunter2hunter@127.0.0.1:9/v1", api_key=KEY)
    router = ModelRouter(models=[spec], default="gpt-x")
    for text in (repr(router), str(router), repr(spec)):
        assert KEY not in text and "hunter2hunter" not in text
