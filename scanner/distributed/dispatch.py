"""The scan side with a broker: enqueue a run's work, then wait for it with progress read from the store.

The run's store lock is handed to the workers (they keep its heartbeat and release it when the run is
complete); while it waits, the scan command keeps that heartbeat too, so a broker outage does not
free the store for another run. Work that went missing (Redis restarted without its data, messages
dead-lettered) is found when the run stops progressing with empty queues, and enqueued again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from scanner.distributed import records, work
from scanner.distributed.broker import (
    QUEUE_COLLECT,
    QUEUE_TLS,
    BrokerError,
    make_broker,
    namespace,
    ping,
    queue_size,
    redact,
    redelivery_after,
)
from scanner.models import Target

log = logging.getLogger(__name__)

ACTORS = {QUEUE_COLLECT: "pledgescan.collect", QUEUE_TLS: "pledgescan.collect_tls"}


class RunUnfinished(Exception):
    """The run cannot finish now (the broker is gone); the message names what is left."""


class Dispatcher:
    """Puts a run's messages on the broker's queues (the actors' names, not their code)."""

    def __init__(self, url: str, store: Any, wait: float = 300.0) -> None:
        self.url = url
        self.wait = wait  # seconds to retry a message while the broker does not answer
        self.namespace = namespace(records.store_id(store))
        self.broker = make_broker(url, self.namespace)
        for q in ACTORS:
            self.broker.declare_queue(q)

    def send(self, run_id: int, target: dict[str, Any], family: str) -> None:
        import redis
        from dramatiq import Message

        queue = QUEUE_TLS if family == "tls" else QUEUE_COLLECT
        message = Message(queue_name=queue, actor_name=ACTORS[queue], args=(run_id, target, family),
                          kwargs={}, options={})
        give_up = time.monotonic() + self.wait
        while True:
            try:
                self.broker.enqueue(message)
                return
            except (redis.RedisError, OSError) as exc:
                if time.monotonic() >= give_up:
                    raise BrokerError(f"the broker {redact(self.url)} does not answer: {exc}") from None
                time.sleep(1.0)

    def enqueue_run(self, store: Any, run_id: int, targets: list[Target]) -> int:
        """Enqueue the first families of every target without a result yet; returns the messages sent."""
        records.ensure_schema(store)
        scanner = _scanner_for(store, run_id)
        sent = 0
        for t in targets:
            for fam in work.first_families(scanner, t):
                records.claim(store, run_id, t.key, fam)
                self.send(run_id, t.model_dump(mode="json"), fam)
                sent += 1
        return sent

    def enqueue_unfinished(self, store: Any, run_id: int, targets: list[Target]) -> int:
        """Enqueue again the work of targets without a result (a message of done work only advances)."""
        run = store.run(run_id)
        done = {s.target_key for s in store.summaries(run_id)}
        pending = [t for t in targets if t.key not in done]
        if not pending or run.status == "complete":
            return 0
        return self.enqueue_run(store, run_id, pending)


def _scanner_for(store: Any, run_id: int) -> Any:
    from scanner.engine import Scanner
    from scanner.settings import settings_from_json

    return Scanner(settings_from_json(store.run(run_id).options))


def wait_for_run(store: Any, run_id: int, dispatcher: Dispatcher, targets: list[Target], *,
                 on_progress: Callable[[int, int], None], broker_wait: float, poll: float = 1.0) -> Any:
    """Wait until every target of the run has a result; returns the finished ``RunInfo``.

    Raises ``RunUnfinished`` when the broker has not answered for ``broker_wait`` seconds."""
    last_done, last_change = -1, time.monotonic()
    outage_since: float | None = None
    stall_s = _stall_after(store, run_id)
    while True:
        run = store.run(run_id)
        if run.targets_done != last_done:
            last_done, last_change = run.targets_done, time.monotonic()
            on_progress(run.targets_done, run.targets_total)
        if run.targets_done >= run.targets_total:
            records.finish_if_complete(store, run_id)
            return store.run(run_id)
        records.touch_lock(store, run_id)
        try:
            ping(dispatcher.url)
            if outage_since is not None:
                log.warning("the broker %s answers again after %.0fs", redact(dispatcher.url),
                            time.monotonic() - outage_since)
                outage_since, last_change = None, time.monotonic()
            elif (time.monotonic() - last_change > stall_s
                  and queue_size(dispatcher.url, dispatcher.namespace) == 0):
                n = dispatcher.enqueue_unfinished(store, run_id, targets)
                log.warning("run %s made no progress for %.0fs with empty queues: %d messages enqueued again",
                            run_id, stall_s, n)
                last_change = time.monotonic()
        except BrokerError as exc:
            now = time.monotonic()
            outage_since = outage_since or now
            if now - outage_since >= broker_wait:
                raise RunUnfinished(_unfinished_message(store, run, targets, exc, broker_wait)) from None
        time.sleep(poll)


def _stall_after(store: Any, run_id: int) -> float:
    """No progress for this long, queues empty: the work went missing (every message would be done)."""
    deadline = float(store.run(run_id).options.get("target_deadline", 120.0))
    return deadline + redelivery_after() + 30.0


def _unfinished_message(store: Any, run: Any, targets: list[Target], exc: Exception, waited: float) -> str:
    done = {s.target_key for s in store.summaries(run.id)}
    left = [t.target for t in targets if t.key not in done]
    shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    return (f"run {run.id} unfinished: {run.targets_done}/{run.targets_total} targets done, waiting for "
            f"{shown}; {exc} (waited {waited:g}s). The workers go on when it is back; "
            f"`pledgescan scan --resume --broker URL` completes the run")


def unfinished_message(store: Any, run_id: int, targets: list[Target], exc: Exception, waited: float) -> str:
    return _unfinished_message(store, store.run(run_id), targets, exc, waited)


__all__ = ["Dispatcher", "RunUnfinished", "wait_for_run", "unfinished_message"]
