from __future__ import annotations

import os
import threading

from qopt.background import background_executor


def test_the_background_thread_runs_at_lower_priority_and_the_caller_keeps_its_own() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    executor = background_executor("qopt-test")
    try:
        seen = executor.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert seen.result() == min(19, base + 10)
    finally:
        executor.shutdown()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


def test_one_worker_runs_the_solves_in_order() -> None:
    executor = background_executor("qopt-test")
    done: list[int] = []
    try:
        for i in range(20):
            executor.submit(done.append, i)
    finally:
        executor.shutdown(wait=True)
    assert done == list(range(20))
