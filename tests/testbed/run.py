"""``make testbed``: start the test servers by hand and print how to scan them (Ctrl-C stops them).

The same servers the pytest fixtures start: the TLS sites (Python ``ssl``), the HTTP sites (nginx),
the exposure hosts (nginx, Apache with phpMyAdmin/Adminer) and the Knot DNS server. Parts whose
Debian package is missing are left out with a note. Ports 53/80/443 need root.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any


def _try(name: str, start: Callable[[], Any], stack: ExitStack, lines: list[str],
         describe: Callable[[Any], list[str]]) -> None:
    try:
        bed = start()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a missing Debian package (pytest.skip) or a busy port: start the rest
        lines.append(f"[{name}] not started: {exc}".splitlines()[0])
        return
    lines.append(f"[{name}]")
    lines.extend("  " + d for d in describe(bed))
    if hasattr(bed, "stop"):
        stack.callback(bed.stop)


def _resolve_args(resolve: dict[tuple[str, int], str]) -> str:
    return " ".join(f"--resolve {h}:{p}:{a}" for (h, p), a in sorted(resolve.items()))


def _stop_on_term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds the ExitStack, which stops every server


def main() -> None:
    import signal

    # Background jobs ignore Ctrl-C; SIGTERM must stop the servers too, not leave them running.
    signal.signal(signal.SIGTERM, _stop_on_term)
    signal.signal(signal.SIGINT, _stop_on_term)
    from tests.testbed import exposure, knot
    from tests.testbed.http_sites import start_testbed
    from tests.testbed.tls import start_tls_bed

    work = Path(tempfile.mkdtemp(prefix="pledgescan-testbed-"))
    lines: list[str] = []
    with ExitStack() as stack:
        _try("tls", lambda: start_tls_bed(work / "tls"), stack, lines, lambda b: [
            f"CA bundle: {b.ca_bundle}",
            *(f"https://{s.name}:{s.port}/ -> {s.address}" for s in b.sites.values())])

        def http() -> Any:
            (work / "http").mkdir(exist_ok=True)
            return stack.enter_context(contextlib.contextmanager(start_testbed)(work / "http"))

        _try("http", http, stack, lines, lambda b: [f"CA bundle: {b.ca_path}", _resolve_args(b.resolve())])

        for name, starter in (("exposure-nginx", exposure._start_nginx), ("exposure-apache",
                                                                         exposure._start_apache)):
            def start(starter: Any = starter) -> Any:
                bed, stop = starter()
                stack.callback(stop)
                return bed

            _try(name, start, stack, lines, lambda b: [f"CA bundle: {b.ca_file}", _resolve_args(b.resolve)])
        _try("dns", knot.start_knot, stack, lines, lambda k: [
            f"--nameserver {k.nameserver} --trust-anchor {k.trust_anchor}",
            f"domains: good.{knot.PARENT}, weak.{knot.PARENT}, nothing.{knot.PARENT}, ..."])
        print("\n".join(lines))
        print("\ntestbed running; Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
