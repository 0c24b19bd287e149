"""Drive Debian's headless Chromium from tests over the Chrome DevTools Protocol (CDP).

Why CDP and not Playwright/Selenium: those download their own browser or driver, which fails offline; CDP
needs only ``/usr/bin/chromium`` and the small pure-Python ``websocket-client``. Chromium is started with
``--remote-debugging-port=0`` (it picks a free port and writes it to ``DevToolsActivePort`` in a fresh
user-data-dir), we attach to its page target, navigate to the file, wait for ``load``, and evaluate
JavaScript with ``returnByValue`` so the result comes back as JSON.

The browser runs in its own process group and is always killed (SIGTERM, then SIGKILL) and its profile
removed, on success, on error and on timeout. Tests skip, with the reason, only where /usr/bin/chromium is
missing; CI installs it (``apt-get install -y --no-install-recommends chromium``).

Usage::

    from browser import page_eval, screenshot
    n = page_eval(path, "document.images.length")
    screenshot(path, "shot.png")
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

CHROMIUM = os.environ.get("EDGENAS_CHROMIUM", "/usr/bin/chromium")
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0
FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root (CI containers)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-allow-origins=*",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    """Chromium did not start, a CDP call failed, or the page threw."""


def chromium_available() -> bool:
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def require_chromium() -> None:
    """pytest.skip the calling test when the browser is not installed (CI installs it, so it runs there)."""
    if not chromium_available():
        import pytest

        pytest.skip(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the browser check"
        )


class Browser:
    """One headless Chromium with one page; use as a context manager so the process is always cleaned up."""

    def __init__(self, *, width: int = 1280, height: int = 900, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile: str | None = None
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        import websocket  # websocket-client

        if not chromium_available():
            raise BrowserError(f"{CHROMIUM} not found")
        self._profile = tempfile.mkdtemp(prefix="edgenas-chromium-")
        log = open(os.path.join(self._profile, "chromium.log"), "wb")  # noqa: SIM115 (closed right after Popen)
        self._proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        port_file = Path(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + START_TIMEOUT_S
        port = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self._proc.returncode}: {self._log_tail()}")
            if port_file.exists():
                lines = port_file.read_text().split()
                if lines and lines[0].isdigit():
                    port = int(lines[0])
                    break
            time.sleep(0.05)
        if port is None:
            raise BrowserError(f"chromium did not open its DevTools port in {START_TIMEOUT_S:.0f}s: {self._log_tail()}")
        ws_url = None
        while time.monotonic() < deadline and ws_url is None:
            # no proxy: a CI http_proxy variable must not capture a request to the local browser
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                targets = json.load(r)
            ws_url = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
            if ws_url is None:
                time.sleep(0.05)
        if ws_url is None:
            raise BrowserError("chromium has no page target")
        # Our own socket to the local port: websocket-client would otherwise honour an http_proxy variable.
        sock = socket.create_connection(("127.0.0.1", port), timeout=self.timeout_s)
        try:
            self._ws = websocket.create_connection(ws_url, timeout=self.timeout_s, suppress_origin=True, socket=sock)
        except BaseException:
            sock.close()
            raise
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _log_tail(self) -> str:
        try:
            return Path(self._profile or "", "chromium.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def close(self) -> None:
        """Close the browser (politely, then by killing its process group) and remove its profile. Idempotent."""
        asked = False
        if self._ws is not None:
            # A clean exit lets chromium reap its own helper processes; if it fails, the group is killed below.
            with contextlib.suppress(Exception):
                self.timeout_s = min(self.timeout_s, 5.0)
                self.call("Browser.close")
                asked = True
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if self._proc is not None:
            pgid = self._proc.pid  # start_new_session: the browser leads its own process group
            try:
                if asked:
                    self._proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
            if self._proc.poll() is None or not _wait_group_gone(pgid, 2.0):
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(pgid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        self._proc.wait(timeout=5.0)
                    except subprocess.TimeoutExpired:
                        continue
                    if _wait_group_gone(pgid, 5.0):
                        break
            self._proc = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # -- CDP ---------------------------------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result; events that arrive meanwhile are kept for wait_event."""
        if self._ws is None:
            raise BrowserError("browser is not started")
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = self._recv(deadline, method)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)

    def wait_event(self, name: str) -> dict[str, Any]:
        for i, ev in enumerate(self._events):
            if ev["method"] == name:
                return self._events.pop(i).get("params", {})
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = self._recv(deadline, name)
            if msg.get("method") == name:
                return msg.get("params", {})
            if "method" in msg:
                self._events.append(msg)

    def _recv(self, deadline: float, what: str) -> dict[str, Any]:
        import websocket

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"timed out after {self.timeout_s:.0f}s waiting for {what}")
        self._ws.settimeout(remaining)
        try:
            return json.loads(self._ws.recv())
        except websocket.WebSocketTimeoutException as e:
            raise BrowserError(f"timed out after {self.timeout_s:.0f}s waiting for {what}") from e

    # -- page --------------------------------------------------------------------------------------------
    def open(self, path: str | os.PathLike[str]) -> None:
        """Load a local file and wait until it, its images and its fonts are ready."""
        url = Path(path).resolve().as_uri()
        self._events.clear()
        res = self.call("Page.navigate", url=url)
        if res.get("errorText"):
            raise BrowserError(f"cannot open {url}: {res['errorText']}")
        self.wait_event("Page.loadEventFired")
        self.evaluate(
            "Promise.all([document.fonts.ready,"
            " ...Array.from(document.images, i => i.decode().catch(() => null))]).then(() => true)"
        )

    def evaluate(self, expression: str) -> Any:
        """Evaluate a JS expression in the page (promises awaited) and return its value as JSON."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise BrowserError(f"JS error: {d.get('exception', {}).get('description') or d.get('text')}")
        return res["result"].get("value")

    def screenshot(self, png_path: str | os.PathLike[str], *, full_page: bool = True) -> None:
        """Write a PNG of the page: the whole document height when full_page, else the viewport."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            m = self.call("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        Path(png_path).write_bytes(base64.b64decode(data))


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in the group; Linux /proc, else ask the kernel."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path("/proc", d, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def _wait_group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def page_eval(html_path: str | os.PathLike[str], js_expression: str, *, timeout_s: float = CALL_TIMEOUT_S) -> Any:
    """Open ``html_path`` in a fresh headless Chromium and return ``js_expression``'s value (JSON)."""
    with Browser(timeout_s=timeout_s) as b:
        b.open(html_path)
        return b.evaluate(js_expression)


def screenshot(
    html_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    *,
    width: int = 1280,
    full_page: bool = True,
    timeout_s: float = CALL_TIMEOUT_S,
) -> None:
    """Open ``html_path`` in a fresh headless Chromium and save a PNG screenshot of it."""
    with Browser(width=width, timeout_s=timeout_s) as b:
        b.open(html_path)
        b.screenshot(png_path, full_page=full_page)
