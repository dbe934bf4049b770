"""Where reports go: ``-o PATH`` writes regular files only, ``-o -`` writes to standard output, and every
location is checked before a scan starts (a long scan must not end in "cannot write").

Refused with one line: a device (``/dev/full``), a FIFO, a socket, a directory where a file is meant,
and a symbolic link that points outside its own directory; a link to a file beside it is followed
(the link is kept, its target replaced atomically).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

STDOUT = "-"


class OutputRefused(ValueError):
    """An output location that will not be written: the message is one line, naming the path."""


def is_stdout(path: str | os.PathLike[str] | None) -> bool:
    return path is not None and os.fspath(path) == STDOUT


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def regular_destination(path: str | os.PathLike[str]) -> Path:
    """The regular file that writing ``path`` may replace; raise ``OutputRefused`` otherwise."""
    p = Path(path)
    try:
        st = p.lstat()
    except (FileNotFoundError, NotADirectoryError):  # a parent that is a file: check_directory says so
        return p
    except OSError as exc:
        raise OutputRefused(f"-o {p}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        home = p.parent.resolve()
        real = p.resolve()
        if real.parent != home and home not in real.parents:
            raise OutputRefused(f"-o {p}: a symbolic link to {real}, outside {home}; "
                                "give the real path")
        if real.exists() and not real.is_file():
            raise OutputRefused(f"-o {p}: a symbolic link to {real}, which is not a regular file")
        return real
    if stat.S_ISDIR(st.st_mode):
        raise OutputRefused(f"-o {p}: is a directory, a file is expected here")
    if not stat.S_ISREG(st.st_mode):
        raise OutputRefused(f"-o {p}: is {_kind(st.st_mode)}; reports are written to regular files only "
                            "(use -o - for standard output)")
    return p


def check_directory(directory: str | os.PathLike[str]) -> None:
    """A directory that exists and can be written, or can be created: probe by writing, since
    permissions alone do not tell (read-only mounts, immutable files, root)."""
    d = Path(directory)
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_symlink() and not probe.is_dir():
        raise OutputRefused(f"-o {d}: {probe} is a symbolic link that leads to no directory")
    if not probe.is_dir():
        raise OutputRefused(f"-o {d}: {probe} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pledgescan-probe.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputRefused(f"-o {d}: cannot write in {probe}: {exc.strerror or exc}") from None


def check_file(path: str | os.PathLike[str]) -> None:
    """``path`` may be written: a regular file (or none yet) in a writable directory."""
    dest = regular_destination(path)
    check_directory(dest.parent)


def write_atomic(path: str | os.PathLike[str], data: str | bytes | Callable[[TextIO], None]) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file in the same directory and
    ``os.replace``, so a reader never sees a half-written report. ``path`` must be a regular file or
    not exist yet (``regular_destination``). ``data`` may be a writer that writes the text piece by
    piece to the file (UTF-8, line ends as written), so a long report is never whole in memory."""
    target = regular_destination(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if callable(data):
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as text:
                data(text)
        else:
            raw = data.encode("utf-8") if isinstance(data, str) else data
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(path)
