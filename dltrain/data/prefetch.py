"""Keeping two cores busy while reading: a background prefetch thread and pyarrow's allocator."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa


def use_jemalloc() -> None:
    """Make jemalloc pyarrow's allocator where this pyarrow build has it (Linux wheels do).

    Measured on prepare of a 1M-row CSV (benchmarks/RESULTS.md): with the default mimalloc the
    process spent 0.7-1.1 s in the kernel, returning freed batch buffers to the system and
    faulting them back in; with jemalloc 0.4 s, 0.3-0.5 s less CPU and ~40 MB less peak RSS.
    Batches of the same size come and go all through prepare, which is what jemalloc's caching
    suits. Does nothing where jemalloc is missing or already chosen.
    """
    try:
        pool = pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return
    if pa.default_memory_pool().backend_name != pool.backend_name:
        pa.set_memory_pool(pool)


_DONE = object()
T = TypeVar("T")


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items`` produced by a background thread, at most ``depth`` ahead of the consumer.

    pyarrow parses, converts and trims with the GIL released, so on a second core the next
    batches are parsed while this thread profiles and hashes the current one (pyarrow's own
    read-ahead stops a block or two ahead). ``depth`` bounds the memory held in the queue.
    Exceptions in the producer are raised here; abandoning the iterator stops the producer.

    Args:
        items: an iterator; it runs entirely on the background thread (also its ``finally``).
        depth: items produced ahead at most.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    break
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Raised(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # runs the generator's finally (closing the CSV reader) on this thread
        put(_DONE)

    thread = threading.Thread(target=produce, name="dltrain-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass
class _Raised:
    exc: BaseException
