"""The Dramatiq broker on Redis: URL, queues, the redelivery of a dead worker's messages.

Dramatiq's Redis broker keeps a heartbeat per worker process; a message taken by a process whose
heartbeat is older than ``heartbeat_timeout`` is put back on its queue by another worker's periodic
maintenance (a share of ``maintenance_chance`` per million broker commands). Both are set here: the
defaults (60 s, 0.1 %) would leave a killed worker's targets waiting for many minutes on an idle queue.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

ENV_VAR = "PLEDGESCAN_BROKER"
ENV_REDELIVERY = "PLEDGESCAN_REDELIVERY_AFTER"  # seconds without heartbeat before redelivery
ENV_NAMESPACE = "PLEDGESCAN_BROKER_NAMESPACE"  # set by `pledgescan worker` from its store's identity
NAMESPACE = "pledgescan"
QUEUE_TLS = "pledgescan-tls"  # TLS probes: long, many handshakes; its own workers can be sized apart
QUEUE_COLLECT = "pledgescan"  # HTTP, exposure and DNS evidence, and assessing a finished target
QUEUES = (QUEUE_COLLECT, QUEUE_TLS)
DEFAULT_REDELIVERY_S = 60.0
MAINTENANCE_CHANCE = 100_000  # per million broker commands: every 10th, on average (cheap when all live)


class BrokerError(Exception):
    """The broker URL is unusable or Redis does not answer (one line)."""


def broker_url(url: str | None) -> str | None:
    """The broker named on the command line, else ``PLEDGESCAN_BROKER``, else none (in-process)."""
    return url or os.environ.get(ENV_VAR) or None


def check_url(url: str) -> str:
    """Refuse anything but a ``redis://`` / ``rediss://`` / ``unix://`` URL, with one line."""
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise BrokerError(f"--broker {redact(url)}: expected redis://HOST:PORT/DB (Dramatiq's Redis broker)")
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def redelivery_after() -> float:
    """Seconds without a heartbeat after which a worker's messages go to another worker."""
    try:
        return max(1.0, float(os.environ.get(ENV_REDELIVERY) or DEFAULT_REDELIVERY_S))
    except ValueError:
        return DEFAULT_REDELIVERY_S


def namespace(store_id: str) -> str:
    """The Redis key prefix of one store's queues: workers only see the runs of their own store."""
    return f"{NAMESPACE}:{store_id}"


def make_broker(url: str, ns: str) -> Any:
    """Dramatiq's Redis broker for ``url`` in namespace ``ns``, with pledgescan's redelivery delay."""
    from dramatiq.brokers.redis import RedisBroker

    check_url(url)
    return RedisBroker(url=url, namespace=ns, heartbeat_timeout=int(redelivery_after() * 1000),
                       maintenance_chance=MAINTENANCE_CHANCE, socket_timeout=30, socket_connect_timeout=5)


def ping(url: str) -> None:
    """Raise ``BrokerError`` naming the broker when Redis does not answer."""
    import redis

    check_url(url)
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise BrokerError(f"the broker {redact(url)} does not answer: {exc}") from None


def queue_size(url: str, ns: str) -> int:
    """Messages waiting on the namespace's queues (not counting those being worked on)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return sum(int(client.llen(f"{ns}:{q}")) for q in QUEUES)
    except (redis.RedisError, OSError) as exc:
        raise BrokerError(f"the broker {redact(url)} does not answer: {exc}") from None
    finally:
        client.close()


__all__ = ["ENV_VAR", "ENV_NAMESPACE", "namespace", "QUEUES", "QUEUE_TLS", "QUEUE_COLLECT", "BrokerError",
           "broker_url", "make_broker",
           "ping", "redact", "redelivery_after", "queue_size"]
