"""Mozilla's trust store (certifi, as shipped with httpx) for the fetcher's verifying context, loaded ahead
on a thread: OpenSSL parses its ~150 certificates (25-75 ms) without the GIL, so a scan with HTTP work
starts loading it as its scanner is built (``Scanner``), while the checks load, and the first HTTPS
handshake finds it ready. No HTTP library is imported here (a TLS-only scan never loads one)."""

from __future__ import annotations

import concurrent.futures
import os
import ssl
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_STORE: concurrent.futures.Future[ssl.SSLContext] | None = None  # loading ahead, for the next fetcher made


def mozilla_store() -> ssl.SSLContext:
    """A verifying context trusting Mozilla's store: 25-75 ms."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def start_loading() -> None:
    """Start loading the store on a thread, for the next fetcher made (``take``), unless it is already."""
    global _STORE
    if _STORE is None:
        _STORE = in_thread(mozilla_store)


def take() -> concurrent.futures.Future[ssl.SSLContext] | None:
    """The store ``start_loading`` started loading, for the fetcher that calls this (no other gets it)."""
    global _STORE
    store, _STORE = _STORE, None
    return store


def _forget() -> None:
    """In a forked child: the parent's store may still be loading on a thread the child does not have."""
    global _STORE
    _STORE = None


os.register_at_fork(after_in_child=_forget)


def in_thread(work: Callable[[], T]) -> concurrent.futures.Future[T]:
    """``work()`` on a daemon thread of its own; its result or exception in the future returned."""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(work())
        except BaseException as exc:  # handed to whoever waits for it
            done.set_exception(exc)

    threading.Thread(target=run, name="ca-store", daemon=True).start()
    return done
