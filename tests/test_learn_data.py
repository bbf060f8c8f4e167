"""Routing data files: prompts with each model's outcomes and costs, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmrouter.errors import ConfigurationError, DataError
from llmrouter.learn._data import OutcomeData, read_outcomes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_booleans_and_a_text_column(tmp_path: Path) -> None:
    data = read_outcomes(
        write(
            tmp_path / "d.csv",
            'subject,prompt,weak,strong\nmath,"What is 2+2?\nA. 3",True,True\n'
            "law,Explain tort.,False,True\n",
        )
    )
    assert data.models == ["weak", "strong"] and data.n == 2
    assert data.outcomes.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert data.prompts[0] == "What is 2+2?\nA. 3"  # a quoted multi-line prompt
    assert data.ignored == ["subject"] and data.costs is None and data.source == "d.csv"


def test_jsonl_with_costs_and_judge_scores(tmp_path: Path) -> None:
    rows = [
        {"prompt": "a", "m1": 2, "m2": 10, "m1|cost": 0.001, "m2|cost": 0.01},
        {"prompt": "b", "m1": 1, "m2": 6, "m1|cost": 0.002, "m2|cost": 0.02},
    ]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = read_outcomes(path, score_range=(1, 10))
    assert data.score_range == (1.0, 10.0)
    assert np.allclose(data.outcomes, [[1 / 9, 1.0], [0.0, 5 / 9]])
    assert data.costs is not None and np.allclose(data.costs[:, 1], [0.01, 0.02])
    assert np.allclose(data.mean_costs(), [0.0015, 0.015])
    assert data.ignored == []
    inferred = read_outcomes(path)  # no range given: the lowest and highest score seen
    assert inferred.score_range == (1.0, 10.0)


def test_subset_keeps_rows_aligned() -> None:
    data = OutcomeData.from_rows(
        [{"prompt": p, "a": i % 2, "b": 1, "a|cost": i, "b|cost": 1} for i, p in enumerate("xyz")]
    )
    part = data.subset([2, 0])
    assert part.prompts == ["z", "x"] and part.outcomes[:, 0].tolist() == [0.0, 0.0]
    assert part.costs is not None and part.costs[:, 0].tolist() == [2.0, 0.0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"text": "q", "a": 1, "b": 0}], "no 'prompt' column"),
        ([{"promt": "q", "a": 1, "b": 0}], "did you mean 'promt'"),
        ([{"prompt": " ", "a": 1, "b": 0}, {"prompt": "", "a": 1, "b": 0}], "2 row\\(s\\)"),
        ([{"prompt": "q", "a": 1, "note": "x"}], "at least two models"),
        ([{"prompt": p, "a": 1 if p != "r" else "maybe", "b": 1} for p in "qrs"], "row 2, col"),
        ([{"prompt": "q", "a": 1, "b": None}, {"prompt": "r", "a": "", "b": 0}], "every row"),
        ([{"prompt": "q", "a": 1, "b": 0, "a|cost": 0.1}], "not for \\['b'\\]"),
        ([{"prompt": "q", "a": 1, "b": 0, "a|cost": -1, "b|cost": 1}], "not a cost"),
    ],
)
def test_unusable_rows_are_refused_with_what_to_do(
    rows: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        OutcomeData.from_rows(rows)


def test_rows_with_a_gap_are_dropped_and_counted() -> None:
    rows = [
        {"prompt": "q", "a": 1, "b": 0, "a|cost": 1, "b|cost": 2},
        {"prompt": "r", "a": "", "b": 0, "a|cost": 1, "b|cost": 2},  # a was not run
        {"prompt": "s", "a": 0, "b": 1, "a|cost": 1, "b|cost": None},
        {"prompt": "t", "a": 0, "b": 1, "a|cost": 1, "b|cost": 3},
    ]
    data = OutcomeData.from_rows(rows)
    assert data.prompts == ["q", "t"] and data.dropped == [2, 3]
    assert data.costs is not None and data.costs[:, 1].tolist() == [2.0, 3.0]
    bad = [*rows, {"prompt": "u", "a": 0, "b": "?", "a|cost": 1, "b|cost": 1}]
    with pytest.raises(DataError, match="row 5, column 'b'"):  # numbered as in the file
        OutcomeData.from_rows(bad)


def test_models_can_be_named_and_must_exist() -> None:
    rows = [{"prompt": "q", "alpha": 1, "beta": 0, "id": 7}]
    assert OutcomeData.from_rows(rows).models == ["alpha", "beta"]  # an id is no model
    assert OutcomeData.from_rows(rows, models=["beta", "alpha"]).models == ["beta", "alpha"]
    with pytest.raises(DataError, match="did you mean 'alpha'"):
        OutcomeData.from_rows(rows, models=["alpa", "beta"])
    with pytest.raises(DataError, match="outside the score range"):
        OutcomeData.from_rows([{"prompt": "q", "a": 5, "b": 1}], score_range=(0, 1))


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no routing-data file"):
        read_outcomes(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="unknown format"):
        read_outcomes(write(tmp_path / "d.parquet", "x"))
    with pytest.raises(DataError, match="line 2: not JSON"):
        read_outcomes(write(tmp_path / "d.jsonl", '{"prompt": "a"}\n{oops\n'))
    assert issubclass(DataError, ConfigurationError)
    with pytest.raises(DataError, match="no price for \\['b'\\]"):
        OutcomeData.from_rows([{"prompt": "q", "a": 1, "b": 0}]).mean_costs({"a": 1.0})


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared routing data is not on this machine")
def test_the_shared_files_read_as_documented() -> None:
    mmlu = read_outcomes(SHARED / "routellm" / "mmlu_dev.csv")
    assert mmlu.n == 5614 and mmlu.ignored == ["subject"]
    assert mmlu.models == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    assert 0.66 < mmlu.outcomes[:, 0].mean() < 0.70 and 0.79 < mmlu.outcomes[:, 1].mean() < 0.83
    gsm = read_outcomes(SHARED / "routellm" / "gsm8k.csv")
    assert gsm.n == 1307 and len(gsm.models) == 2 and len(gsm.ignored) == 2  # the responses
    arc = read_outcomes(SHARED / "routerbench" / "arc_challenge_train.csv")
    assert arc.n + len(arc.dropped) == 1039 and len(arc.dropped) == 20
    assert len(arc.models) == 11 and arc.costs is not None
    gpt4 = arc.models.index("gpt-4-1106-preview")
    assert 0.93 < arc.outcomes[:, gpt4].mean() < 0.97
