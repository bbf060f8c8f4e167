"""Batch jobs: reading requests, concurrency, results as they come, resuming."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from _fixtures.fakes import InOrder, Recorder
from langchain_core.messages import HumanMessage, SystemMessage

from llmrouter import ModelSpec
from llmrouter.batch import BatchItem, read_items, read_results, run_batch
from llmrouter.errors import ConfigurationError


def lines(path: Path, *rows: Any) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def recorder_router(**kwargs: Any) -> tuple[InOrder, Recorder]:
    model = Recorder(usage=(10, 5), **kwargs)
    spec = ModelSpec(name="m", model=model, input_cost=1.0, output_cost=2.0)
    return InOrder(models=[spec]), model


def items(n: int) -> list[BatchItem]:
    return [BatchItem(f"q{i}", [HumanMessage(f"question {i}")]) for i in range(n)]


def test_requests_are_read_with_ids_tasks_and_messages(tmp_path: Path) -> None:
    path = lines(
        tmp_path / "in.jsonl",
        {"id": "a", "prompt": "hi", "task": "chat"},
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}]},
    )
    first, second = read_items(path)
    assert (first.id, first.task, first.messages[0].content) == ("a", "chat", "hi")
    assert second.id == "2" and isinstance(second.messages[0], SystemMessage)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"prompt": "x", "messages": []}', "either prompt"),
        ('{"id": 1}', "either prompt"),
        ('{"prompt": "x", "tsak": "chat"}', "unknown keys ['tsak']"),
        ('{"prompt": "x", "task": 3}', "task must be a string"),
        ('{"messages": [{"role": "wizard", "content": "x"}]}', "messages:"),
    ],
)
def test_a_bad_request_names_its_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "fine"}\n' + row + "\n")
    with pytest.raises(ConfigurationError, match=re.escape(message)) as info:
        read_items(path)
    assert str(info.value).startswith(f"{path}:2:")


def test_an_id_given_twice_is_an_error(tmp_path: Path) -> None:
    path = lines(tmp_path / "in.jsonl", {"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"})
    with pytest.raises(ConfigurationError, match="also on line 1"):
        read_items(path)


def test_every_request_gets_one_result_within_the_concurrency(tmp_path: Path) -> None:
    router, model = recorder_router(sleep=0.02)
    out = tmp_path / "out.jsonl"
    seen: list[str] = []
    report = asyncio.run(
        run_batch(router, items(12), out, concurrency=3, on_result=lambda r: seen.append(r["id"]))
    )
    results = read_results(out)
    assert sorted(results) == sorted(f"q{i}" for i in range(12)) and len(seen) == 12
    assert report.answered == 12 and report.failed == 0 and report.skipped == 0
    assert model.peak <= 3 and len(model.calls) == 12
    one = results["q0"]
    assert one["ok"] and one["model"] == "m" and one["route"]["model"] == "m"
    assert one["cost_usd"] == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    assert report.cost_usd == pytest.approx(12 * one["cost_usd"])


def test_failures_are_results_too_and_can_be_asked_again(tmp_path: Path) -> None:
    router, model = recorder_router(fail_with=ValueError)
    out = tmp_path / "out.jsonl"
    report = asyncio.run(run_batch(router, items(3), out))
    assert report.failed == 3 and set(report.failures.values()) == {"AllModelsFailedError"}
    assert not any(r["ok"] for r in read_results(out).values())
    assert asyncio.run(run_batch(router, items(3), out)).skipped == 3  # a failure is a result
    model.fail_with = None
    again = asyncio.run(run_batch(router, items(3), out, retry_failed=True))
    assert again.answered == 3 and again.skipped == 0
    assert len(out.read_text().splitlines()) == 3  # the failed lines were replaced
    assert all(r["ok"] for r in read_results(out).values())


def test_a_stopped_job_goes_on_where_it_stopped(tmp_path: Path) -> None:
    """4 results written, then a crash in the middle of the 5th line: the next run
    asks the 6 others and drops the broken line."""
    router, model = recorder_router()
    out = tmp_path / "out.jsonl"
    asyncio.run(run_batch(router, items(4), out))
    with open(out, "a") as file:
        file.write('{"id": "q4", "ok": tr')  # kill -9 mid-write
    report = asyncio.run(run_batch(router, items(10), out))
    assert report.skipped == 4 and report.asked == 6 and len(model.calls) == 10
    results = read_results(out)
    assert sorted(results) == sorted(f"q{i}" for i in range(10))
    assert all(json.loads(line) for line in out.read_text().splitlines())


def test_a_file_that_is_not_results_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"prompt": "an input file, by mistake"}\n{"id": "x", "ok": true}\n')
    router, _ = recorder_router()
    with pytest.raises(ConfigurationError, match="line 1 is not a result"):
        asyncio.run(run_batch(router, items(1), out))
    assert out.read_text().startswith('{"prompt"')


def test_concurrency_must_be_positive(tmp_path: Path) -> None:
    router, _ = recorder_router()
    with pytest.raises(ConfigurationError, match="concurrency"):
        asyncio.run(run_batch(router, items(1), tmp_path / "out.jsonl", concurrency=0))
