"""A real headless Chromium driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``:
JSON messages ending in NUL on file descriptors 3 and 4), so no WebDriver or websocket library is needed.

``Browser().open(path, width)`` loads a local file at a phone or desktop width; ``evaluate`` runs an
expression in the page (DevTools evaluation is not subject to the page's CSP); ``pdf_pages`` prints it
to A4 as Chromium does; ``screenshot`` saves a PNG. The browser is stopped by its own pid.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """Debian's chromium; missing: skip locally, fail in CI (``.ci/run`` installs it)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is missing: `make testbed-deps` installs it in CI")
    pytest.skip("chromium is not installed (sudo make testbed-deps)")
    raise AssertionError  # unreachable: skip raises


class Browser:
    """One headless Chromium process and one page."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="pledgescan-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium_path(), "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--hide-scrollbars", f"--user-data-dir={self._profile.name}", "about:blank"],
            close_fds=False, preexec_fn=child_fds, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._next_id = 0
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")

    # -- protocol ----------------------------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any], session: str | None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def _call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
              wait_event: str | None = None) -> dict[str, Any]:
        msg_id = self._send(method, params or {}, session)
        result: dict[str, Any] | None = None
        seen_event = wait_event is None
        while result is None or not seen_event:
            msg = self._read()
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result = msg.get("result", {})
            elif wait_event and msg.get("method") == wait_event:
                seen_event = True
        return result

    def call(self, method: str, params: dict[str, Any] | None = None, wait_event: str | None = None
             ) -> dict[str, Any]:
        return self._call(method, params, self.session, wait_event)

    # -- page --------------------------------------------------------------------------------------
    def open(self, path: Path, width: int = 390, height: int = 844) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700})
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, wait_event="Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def pdf_pages(self, out: Path | None = None) -> int:
        """Print to A4 (as the reader's print dialog would) and count the pages."""
        data = base64.b64decode(self.call("Page.printToPDF", {
            "paperWidth": 8.27, "paperHeight": 11.69, "printBackground": True})["data"])
        if out is not None:
            out.write_bytes(data)
        return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))

    def screenshot(self, out: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            h = self.evaluate("document.documentElement.scrollHeight")
            w = self.evaluate("document.documentElement.clientWidth")
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": min(h, 16000), "scale": 1}
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", params)["data"]))
        return out

    def close(self) -> None:
        try:
            self._send("Browser.close", {}, None)
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()  # our own child, by its pid
            self.proc.wait(timeout=10)
        finally:
            for fd in (self._to_browser, self._from_browser):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Elements sticking out of the viewport on either side (right in LTR, left in RTL pages), except inside a
# box that scrolls on its own (evidence tables) and the off-screen skip link / screen-reader texts.
OVERFLOW_JS = """
(() => {
  const vw = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('.skip, .sr')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || scrolls(el)) continue;
    if (r.left < -1 || r.right > vw + 1) {
      out.push(el.tagName + '.' + el.className + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
    }
  }
  return {viewport: vw, page: document.documentElement.scrollWidth, dir: document.documentElement.dir,
          lang: document.documentElement.lang, wide: out.slice(0, 20)};
})()
"""
