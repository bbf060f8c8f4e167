"""Route records: request ids stay unique across forked processes."""

from __future__ import annotations

import multiprocessing
from typing import Any

from llmrouter.record import _new_request_id


def _ids(out: Any) -> None:
    out.put([_new_request_id() for _ in range(3)])


def test_a_forked_child_never_repeats_its_parents_request_ids() -> None:
    parent = [_new_request_id() for _ in range(3)]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    children = [ctx.Process(target=_ids, args=(out,)) for _ in range(2)]
    for child in children:
        child.start()
    ids = parent + [i for _ in children for i in out.get(timeout=60)]
    for child in children:
        child.join(30)
    assert len(set(ids)) == 9  # before the fix, each child repeated the parent's next ids
    assert len({i[:16] for i in ids}) == 3  # one prefix per process
