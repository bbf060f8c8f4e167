"""Tests for llmrouter.testing: the tiny model builders, the echo server, the pytest fixtures."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

import llmrouter.testing
from llmrouter.testing import RedisServer, build_tiny_chat_model, start_echo_server
from llmrouter.testing._build import MARKER, built_with, mark_built, start_build

pytest_plugins = ["pytester"]

SRC = Path(llmrouter.testing.__file__).parents[1]
DOCS_PAGE = Path(__file__).parents[1] / "docs" / "testing.md"


# ------------------------------------------------------------------ public surface


def test_public_names() -> None:
    assert sorted(llmrouter.testing.__all__) == [
        "CHAT_TEMPLATE",
        "CeleryWorker",
        "KatanServer",
        "RedisServer",
        "add_to_hub_cache",
        "build_tiny_captioner",
        "build_tiny_chat_model",
        "build_tiny_lora_adapter",
        "build_tiny_speech_recognizer",
        "build_tiny_text_to_image",
        "start_celery_worker",
        "start_echo_server",
        "start_redis_server",
    ]
    for name in llmrouter.testing.__all__:
        assert getattr(llmrouter.testing, name) is not None


@pytest.mark.parametrize(
    "module",
    ["llmrouter", "llmrouter.testing", "llmrouter.models._huggingface", "llmrouter.demo"],
)
def test_import_is_light(module: str) -> None:
    heavy = ("torch", "transformers", "tokenizers", "diffusers", "llm_katan", "pytest")
    code = f"import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_backends_do_not_import_the_testing_package() -> None:
    """The real backends stay free of test helpers (doctest examples may use them)."""
    offenders = []
    for path in sorted((SRC / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("llmrouter.testing")]
    assert offenders == []


# ------------------------------------------------------------------ tiny chat model


def test_builds_a_loadable_chat_model(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    assert model.config.n_layer == 2 and model.config.n_embd == 64
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token and tokenizer.bos_token and tokenizer.pad_token
    assert len({tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id}) == 3
    assert model.generation_config.max_new_tokens == 16
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|system|>\nBe brief.</s>\n<|user|>\nhi</s>\n<|assistant|>\n"
    assert tokenizer.chat_template == llmrouter.testing.CHAT_TEMPLATE
    no_prompt = tokenizer.apply_chat_template(messages, tokenize=False)
    assert not no_prompt.endswith("<|assistant|>\n")

    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] <= inputs["input_ids"].shape[1] + 5


def test_byte_level_tokenizer_round_trips_any_text(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "déjà vu — 東京 🙂 def f(x): return x**2"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_seed_decides_the_weights(tiny_model_dir: Path, tiny_model_dir_b: Path) -> None:
    a = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    b = AutoModelForCausalLM.from_pretrained(tiny_model_dir_b).state_dict()
    name = "transformer.h.0.attn.c_attn.weight"
    assert not a[name].equal(b[name])


def test_same_settings_give_the_same_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    again = AutoModelForCausalLM.from_pretrained(build_tiny_chat_model(tmp_path, seed=0))
    first = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for name, tensor in first.state_dict().items():
        assert tensor.equal(again.state_dict()[name]), name


def test_idempotent(tmp_path: Path) -> None:
    path = build_tiny_chat_model(tmp_path / "m", seed=3)
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns

    assert build_tiny_chat_model(str(path), seed=3) == path
    assert weights.stat().st_mtime_ns == stamp

    # Other settings rebuild in place and update the marker.
    build_tiny_chat_model(path, seed=4)
    assert json.loads((path / MARKER).read_text())["seed"] == 4


def test_incomplete_directory_is_rebuilt(tmp_path: Path) -> None:
    path = build_tiny_chat_model(tmp_path, seed=5)
    (path / "tokenizer.json").unlink()
    build_tiny_chat_model(path, seed=5)
    assert AutoTokenizer.from_pretrained(path).pad_token == "<pad>"


def test_build_marker(tmp_path: Path) -> None:
    settings = {"kind": "x", "seed": 1}
    assert not built_with(tmp_path, settings)  # no marker yet
    mark_built(tmp_path, settings)
    assert built_with(tmp_path, settings)
    assert not built_with(tmp_path, {**settings, "seed": 2})
    (tmp_path / MARKER).write_text("{not json")
    assert not built_with(tmp_path, settings)  # unreadable: build again
    start_build(tmp_path)
    assert not (tmp_path / MARKER).exists()  # a crash mid-build leaves no stale marker


# ------------------------------------------------------------------ echo server


def test_echo_server_answers_and_stops() -> None:
    with start_echo_server(model="my-echo") as server:
        assert server.base_url == server.url + "/v1"
        assert server.url.startswith("http://127.0.0.1:")
        spec = server.spec(name="remote", tasks={"chat"}, max_tokens=32)
        assert (spec.name, spec.tasks) == ("remote", frozenset({"chat"}))
        reply = spec.chat_model.invoke("hello there")
        assert json.loads(server.get("/v1/models"))["data"][0]["id"] == "my-echo"
        assert server.requests_served() == 1
        workdir = server.log_path.parent
    assert reply.content.startswith("[echo] model=my-echo ")
    assert reply.content.splitlines()[-1] == "User: hello there"
    assert server.process.poll() is not None  # stopped on leaving the block
    assert not workdir.exists()  # the temporary log directory is removed


def test_echo_server_fault_flags(tmp_path: Path) -> None:
    with start_echo_server(["--error-rate", "1.0"], workdir=tmp_path) as server:
        spec = server.spec()
        with pytest.raises(openai.InternalServerError):
            spec.chat_model.invoke("hello")
        assert server.requests_served() == 0
    assert server.log_path.parent == tmp_path and server.log_path.is_file()  # kept


def test_start_failure_shows_the_server_log(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="did not become ready") as failure,
        start_echo_server(["--backend", "no-such-backend"], workdir=tmp_path),
    ):
        raise AssertionError("the server must not start")
    assert "no-such-backend" in str(failure.value)  # from the command line and the log


def test_missing_llm_katan_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_katan" else find_spec(name, *a),
    )
    with (
        pytest.raises(ImportError, match=re.escape("pip install 'llmrouter[testing]'")),
        start_echo_server(),
    ):
        raise AssertionError("the server must not start")


# ------------------------------------------------------------------ pytest fixtures


def _doc_blocks() -> list[str]:
    """The Python code blocks of docs/testing.md."""
    return re.findall(r"```python\n(.*?)```", DOCS_PAGE.read_text(), flags=re.S)


def test_docs_example_test_file_passes(pytester: pytest.Pytester) -> None:
    """The page's conftest.py and test_routing.py, run as a user would."""
    files = {block.split("\n", 1)[0][2:]: block for block in _doc_blocks() if block[:2] == "# "}
    assert sorted(files) == ["conftest.py", "test_routing.py"]
    assert 'pytest_plugins = ["llmrouter.testing.fixtures"]' in files["conftest.py"]
    pytester.makeconftest(files["conftest.py"])
    pytester.makepyfile(test_routing=files["test_routing.py"])
    pytester.makepyfile(
        test_fixtures="""
        from llmrouter import ModelSpec

        def test_fixture_values(tiny_chat_model_dir, tiny_chat_spec, echo_server):
            assert (tiny_chat_model_dir / "config.json").is_file()
            assert isinstance(tiny_chat_spec, ModelSpec) and tiny_chat_spec.name == "tiny-chat"
            assert tiny_chat_spec.chat_model.pipeline_kwargs["max_new_tokens"] == 8
            assert echo_server.model == "tiny-echo"
            assert echo_server.base_url.startswith("http://127.0.0.1:")
            assert echo_server.process.poll() is None
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=4)


def test_fixtures_are_opt_in(pytester: pytest.Pytester) -> None:
    """No entry point: without ``pytest_plugins`` the fixtures do not exist."""
    pytester.makepyfile("def test_needs_it(echo_server):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'echo_server' not found*"])


def test_docs_snippets_run() -> None:
    """The page's other examples (tiny models, echo server) run as written."""
    snippets = [block for block in _doc_blocks() if block[:2] != "# "]
    assert len(snippets) == 2
    for snippet in snippets:
        exec(compile(snippet, str(DOCS_PAGE), "exec"), {})


# ------------------------------------------------------------------ redis server


def test_the_redis_server_keeps_acknowledged_writes_across_a_kill(
    redis_server: RedisServer,
) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url, socket_timeout=2)
    assert client.set("kept", "yes")
    redis_server.restart()  # SIGKILL, then the same port and data
    assert client.get("kept") == b"yes"
    redis_server.pause()
    frozen = redis.Redis.from_url(redis_server.url, socket_timeout=0.3)
    with pytest.raises(redis.exceptions.TimeoutError):
        frozen.get("kept")  # connected, but no answer
    redis_server.resume()
    assert frozen.get("kept") == b"yes"
    assert redis_server.url.startswith("redis://127.0.0.1:")
