"""Independent numpy work on the machine's cores: blocks of rows, hypotheses of a diagnosis.

numpy releases the GIL inside its loops, so two threads computing on two blocks of a kernel-sized
case take about half the time of one.  `ordered` keeps the results in their order (scoring
reduces them, first bad element and worst one, as a loop would) and holds at most THREADS of
them at once, so memory stays bounded by a few blocks.  Each task runs in a copy of the caller's
context (numpy's errstate is a context variable).
"""
from __future__ import annotations

import collections
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
U = TypeVar("U")

# The machine's cores, at most 4: beyond that the blocks' memory traffic, not arithmetic, limits.
THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
PREFIX = "conformance-numerics"
_pool: ThreadPoolExecutor | None = None
_members: set[int] = set()  # id() of the pool's threads, each added by itself as it starts


def _joined() -> None:
    _members.add(id(threading.current_thread()))


def pool_threads() -> frozenset[int]:
    """id() of this module's own threads: the suite's, never an adapter's (the worker's watch of the
    process state leaves them out, as it does the worker's own)."""
    return frozenset(_members)


def ordered(fn: Callable[[U], T], items: Iterable[U]) -> Iterator[T]:
    """fn(item) for each item, in their order, THREADS at a time (one item, one thread, or a call
    from one of the pool's own threads, which would wait on tasks queued behind it: here)."""
    global _pool
    items = list(items)
    if len(items) <= 1 or THREADS == 1 or id(threading.current_thread()) in _members:
        yield from map(fn, items)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS, thread_name_prefix=PREFIX, initializer=_joined)
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append(_pool.submit(contextvars.copy_context().run, fn, item))
        if len(pending) >= THREADS:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
