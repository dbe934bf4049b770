"""glibc's malloc, tuned for a long scan (issue 9): fewer arenas, and free memory handed back.

A scan runs its TLS work in threads (``asyncio.to_thread``, the prober's pool, sslyze's own pools), and
glibc gives threads arenas of their own (up to 8 per core). Memory freed by nassl, OpenSSL and
cryptography stays in those arenas as fragments the next target cannot always reuse, so the process
grows with the inventory although nothing is kept (the Python heap stays flat). Capping the arenas and
trimming after targets returns it. Everything here is a no-op where glibc is absent (musl, macOS,
Windows) or the environment already sets ``MALLOC_ARENA_MAX`` (the operator's choice wins).
"""

from __future__ import annotations

import ctypes
import functools
import os

M_ARENA_MAX = -8  # mallopt parameter number (glibc malloc.h)
ARENAS = 2  # arenas for the scanning process: the event loop's and one shared by the worker threads
TRIM_EVERY = 1  # malloc_trim(0) after every this many finished targets (0: never)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:  # glibc answers "glibc 2.36"; musl and other systems do not know the name
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
    except (AttributeError, ValueError, OSError):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname (find_library would start ldconfig)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas (threads started afterwards share them); True if it was set."""
    n = ARENAS if arenas is None else arenas
    libc = _libc()
    if libc is None or n <= 0 or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, n))


def trim() -> bool:
    """Hand the free memory of every arena back to the system; True if some was released."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


class Trimmer:
    """Trims after every ``every`` finished targets (``TRIM_EVERY`` by default; 0 never trims)."""

    def __init__(self, every: int | None = None) -> None:
        self.every = TRIM_EVERY if every is None else every
        self.count = 0  # targets finished
        self.trims = 0  # trims done

    def target_done(self) -> None:
        self.count += 1
        if self.every > 0 and self.count % self.every == 0:
            trim()
            self.trims += 1
