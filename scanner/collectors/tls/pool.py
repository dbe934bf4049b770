"""The TLS collector's threads, all daemon threads: a process that ends (an error, a failed history store,
Ctrl-C) does not wait for connections still blocked in them until their timeout, as it would for
``ThreadPoolExecutor``'s, which Python joins at exit.

``PriorityPool``: a fixed set of threads that takes the most urgent job first: one endpoint's TLS
connections share the address's connection cap (one thread per connection allowed), and the longest chain
of work (ROBOT: the RSA key, then its payloads) must not queue behind one-handshake questions.
``DaemonThreadPool``: threads started on demand and reused, as ``ThreadPoolExecutor``'s."""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["DaemonThreadPool", "PriorityPool"]

_Job = tuple[int, int, Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class PriorityPool(Executor):
    """``workers`` threads; ``at(priority).submit`` queues a job (lower numbers first, first come first
    served among equals); plain ``submit`` uses ``default``."""

    def __init__(self, workers: int, name: str, default: int = 1) -> None:
        self.default = default
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
                         for i in range(max(1, workers))]
        for t in self._threads:
            t.start()

    def at(self, priority: int) -> Executor:
        """A view of this pool whose ``submit`` queues at ``priority``."""
        return _At(self, priority)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.submit_at(self.default, fn, *args, **kwargs)

    def submit_at(self, priority: int, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            heapq.heappush(self._heap, (priority, next(self._seq), future, fn, args, kwargs))
            self._cond.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._heap or self._closed)
                if not self._heap:
                    return
                _, _, future, fn, args, kwargs = heapq.heappop(self._heap)
            _run(future, fn, args, kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Jobs queued still run (unless ``cancel_futures``); then the threads end."""
        with self._cond:
            self._closed = True
            if cancel_futures:
                for item in self._heap:
                    item[2].cancel()
                self._heap.clear()
            self._cond.notify_all()
        if wait:
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join()


def _run(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A job in a pool's thread: its result or exception to its future (unless it was cancelled)."""
    if future.set_running_or_notify_cancel():
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)


class _At(Executor):
    def __init__(self, pool: PriorityPool, priority: int) -> None:
        self.pool, self.priority = pool, priority

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.pool.submit_at(self.priority, fn, *args, **kwargs)


class DaemonThreadPool(Executor):
    """Up to ``max_workers`` daemon threads, started when a job finds none idle and reused after."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max, self._name = max_workers, name
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]]
        self._jobs = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one per thread waiting for a job
        self._lock = threading.Lock()
        self._count = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, fn, args, kwargs))
        if not self._idle.acquire(blocking=False):
            with self._lock:
                if self._count < self._max:
                    self._count += 1
                    threading.Thread(target=self._work, name=f"{self._name}_{self._count}",
                                     daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            future, fn, args, kwargs = self._jobs.get()
            _run(future, fn, args, kwargs)
            del future, fn, args, kwargs
            self._idle.release()
