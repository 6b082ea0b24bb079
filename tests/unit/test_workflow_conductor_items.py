"""Rehearsal tests of the pure conductor (docs/workflows.md): with_items — the concurrency window, batches,
item failures, cancels and retries, and a long list in linear time.
"""

from __future__ import annotations

import time

from attune.workflow.conductor import (
    StartTimer,
    TaskFinished,
    TimerFired,
)
from tests.unit.conductor_rehearsal import (
    bad,
    items_flow,
    ok,
)


def test_with_items_empty_list_completes_at_once() -> None:
    r = items_flow(things=[])
    assert r.runs() == ["ok"]
    assert r.state.vars["out"] == {"results": [], "total": 0}


def test_with_items_scalar_is_one_item() -> None:
    r = items_flow(things="solo")
    assert r.runs() == ["each[0]"]
    assert r.run_of("each", 0).input == {"value": "solo", "at": 0}


def test_with_items_concurrency_window_refills_lowest_index_first() -> None:
    r = items_flow("concurrency: 2", things=list("abcde"))
    assert r.runs() == ["each[0]", "each[1]"]
    r.done("each", index=1)
    assert r.runs() == ["each[2]"]
    r.done("each", index=0)
    assert r.runs() == ["each[3]"]
    for index in (2, 3):
        r.done("each", index=index)
    r.done("each", ok(v="e"), index=4)
    assert r.runs() == ["ok"]
    results = r.state.vars["out"]["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert results[4] == {"index": 4, "status": "completed", "output": ok(v="e")}


def test_with_items_fails_iff_an_item_failed() -> None:
    r = items_flow(things=[1, 2, 3])
    r.done("each", index=0)
    r.done("each", index=1, status="cancelled")
    r.done("each", bad(), index=2, status="failed")
    assert r.runs() == ["ko"]


def test_with_items_cancelled_item_does_not_fail_task() -> None:
    r = items_flow(things=[1, 2])
    r.done("each", index=0)
    r.done("each", index=1, status="cancelled")
    assert r.runs() == ["ok"]


def test_with_items_batch_size_chunks_items() -> None:
    r = items_flow("batch_size: 2", things=[1, 2, 3, 4, 5])
    assert r.runs() == ["each[0]", "each[1]", "each[2]"]
    assert r.run_of("each", 2).input == {"value": [5], "at": 2}
    assert r.run_of("each", 0).input == {"value": [1, 2], "at": 0}


def test_with_items_duplicate_completion_is_ignored() -> None:
    r = items_flow("concurrency: 1", things=[1, 2])
    r.done("each", index=0)
    assert r.send(TaskFinished("each", 0, "completed", ok())) == []
    r.done("each", index=1)
    assert r.runs() == ["ok"]


def _completions_cpu(count: int) -> float:
    """CPU seconds the conductor spends on ``count`` item completions (checked complete)."""
    r = items_flow("concurrency: 50", things=list(range(count)))
    began = time.process_time()
    for index in range(count):
        r.send(TaskFinished("each", index, "completed", {"succeeded": True}))
    spent = time.process_time() - began
    assert r.runs() == ["ok"]
    assert r.state.vars["out"]["total"] == count
    return spent


def test_with_items_ten_thousand_items_is_linear() -> None:
    # Relative, so the machine's speed and load cancel out: a completion that rescanned every
    # item (quadratic) would cost 10× per item at 10,000 what it costs at 1,000.
    per_item_small = _completions_cpu(1_000) / 1_000
    per_item_large = _completions_cpu(10_000) / 10_000
    assert per_item_large < 3 * per_item_small, (per_item_small, per_item_large)


def test_with_items_item_retry_keeps_window() -> None:
    r = items_flow("concurrency: 1\n    retry: {count: 1, delay: 2}", things=["x", "y"])
    r.done("each", bad(), index=0, status="failed")
    assert r.last == [StartTimer("each", 0, "retry", 2.0)]
    r.send(TimerFired("each", 0, "retry"))
    assert r.run_of("each", 0).attempt == 2
    r.done("each", index=0)
    assert r.runs() == ["each[1]"]
