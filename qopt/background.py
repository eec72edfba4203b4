"""A background thread for solves that overlap training steps.

Callbacks that solve asynchronously (routing, sparse attention) hand their solves to one worker
thread running at a lower CPU priority: it takes the CPU a training step leaves idle instead of
competing with torch's threads for it, and one worker applies the answers in order.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["background_executor", "lower_thread_priority"]


def lower_thread_priority() -> None:
    """Run the calling thread at a lower CPU priority (Linux: threads have their own nice).

    Best effort: a no-op where unsupported or not allowed.
    """
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        # Relative to the current niceness: a training run started with `nice` keeps the gap.
        nice = min(19, os.getpriority(os.PRIO_PROCESS, thread) + 10)
        os.setpriority(os.PRIO_PROCESS, thread, nice)


def background_executor(name: str) -> ThreadPoolExecutor:
    """One low-priority worker thread named ``name`` for asynchronous solves.

    Examples:
        >>> from qopt.background import background_executor
        >>> executor = background_executor("qopt-example")
        >>> executor.submit(sum, [1, 2, 3]).result()
        6
        >>> executor.shutdown()
    """
    return ThreadPoolExecutor(
        max_workers=1, thread_name_prefix=name, initializer=lower_thread_priority
    )
