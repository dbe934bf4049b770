"""The Dramatiq actors that worker processes run (``pledgescan worker`` imports this module).

The broker comes from ``PLEDGESCAN_BROKER`` (set by ``pledgescan worker --broker``). Two actors share one
body: TLS on its own queue (long, many handshakes), everything else on the main queue. An exception
is retried with backoff by Dramatiq's Retries middleware; ``records.MAX_ATTEMPTS`` bounds the attempts,
redeliveries after a killed worker included, after which the family is recorded as an ``error``.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq

from scanner.distributed import records, work
from scanner.distributed.broker import (
    ENV_NAMESPACE,
    ENV_VAR,
    NAMESPACE,
    QUEUE_COLLECT,
    QUEUE_TLS,
    broker_url,
    make_broker,
)

_url = broker_url(None)
if not _url:
    raise RuntimeError(f"{ENV_VAR} is not set: start workers with `pledgescan worker --broker URL`")
broker = make_broker(_url, os.environ.get(ENV_NAMESPACE) or NAMESPACE)
dramatiq.set_broker(broker)

_OPTIONS: dict[str, Any] = {
    "max_retries": records.MAX_ATTEMPTS,  # deliveries past MAX_ATTEMPTS record an error, then stop
    "min_backoff": 1_000,
    "max_backoff": 30_000,
    "time_limit": 30 * 60 * 1000,  # the run's target deadline bounds the real work; this is a backstop
}


def send(run_id: int, target: dict[str, Any], family: str) -> None:
    """Enqueue one (run, target, family) message on its queue."""
    (collect_tls if family == "tls" else collect).send(run_id, target, family)


@dramatiq.actor(actor_name="pledgescan.collect", queue_name=QUEUE_COLLECT, **_OPTIONS)
def collect(run_id: int, target: dict[str, Any], family: str) -> None:
    work.process(run_id, target, family, send)


@dramatiq.actor(actor_name="pledgescan.collect_tls", queue_name=QUEUE_TLS, **_OPTIONS)
def collect_tls(run_id: int, target: dict[str, Any], family: str) -> None:
    work.process(run_id, target, family, send)


__all__ = ["broker", "collect", "collect_tls", "send"]
