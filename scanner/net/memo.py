"""Answers a target's collectors share: a URL fetched once is not fetched again for another collector."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a response is fetched: a scan without HTTP never loads the HTTP stack
    from scanner.net.fetcher import Fetcher, HttpResponse

_Headers = tuple[tuple[str, str], ...]


class ResponseMemo:
    """The GET answers one target's collectors already got: a URL asked again with the same headers (the
    http:// chain landing on the https:// page, the exposure collector's landing probe) is answered from
    here instead of going out twice. Kept for the target's collection only, then dropped."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, _Headers], tuple[int, asyncio.Task[HttpResponse]]] = {}
        self.saved = 0  # requests not sent

    async def fetch(self, fetcher: Fetcher, url: str, headers: dict[str, str] | None = None,
                    max_bytes: int | None = None, bulk: bool = False) -> HttpResponse:
        limit = max_bytes or fetcher.settings.max_body_bytes
        key = (url, tuple(sorted({"accept-encoding": "identity",
                                  **{k.lower(): v for k, v in (headers or {}).items()}}.items())))
        # An answer asked with a smaller limit serves too when it was read whole (not truncated): the
        # exposure collector's landing probe (64 KB) and the http collector's page fetch (512 KB) of the
        # same URL are one request, whichever of them asks first.
        known = self._answers.get(key)
        while known is not None:
            try:
                resp = await asyncio.shield(known[1])
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise
                from scanner.net.fetcher import HttpResponse

                resp = HttpResponse(url=url)  # the first asker was cancelled: ask again below
            encoded = (resp.header("content-encoding") or "identity").strip().lower() != "identity"
            if not encoded and resp.status is not None and (known[0] >= limit or not resp.body_truncated):
                self.saved += 1
                if len(resp.body) >= limit:  # as a fetch with this smaller limit would have read it
                    return resp.model_copy(update={"body": resp.body[:limit], "body_truncated": True})
                return resp
            latest = self._answers.get(key)
            if latest is known:
                break
            known = latest  # another asker went out meanwhile (with a larger limit): its answer may do
        task = asyncio.ensure_future(fetcher.fetch(url, headers=headers, max_bytes=limit, bulk=bulk))
        known = self._answers.get(key)
        if known is None or known[0] < limit:
            self._answers[key] = (limit, task)
        return await task
