"""Headless Chromium driven over the W3C WebDriver protocol, with the standard library only.

Debian's ``chromium`` and ``chromium-driver`` (.ci/browser.sh installs them; the driver always
matches the browser) are started by the tests: nothing is downloaded at run time, no driver
manager is involved. The protocol is a few JSON calls over HTTP, so a ~100-line client here
replaces a Selenium dependency.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1360,1000",
    "--lang=en-US",
]
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class WebDriverError(AssertionError):
    pass


def installed() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


class Browser:
    """One WebDriver session of one chromedriver (``url``: where the driver listens)."""

    def __init__(self, url: str, profile: Path) -> None:
        self.url = url.rstrip("/")
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": str(CHROMIUM), "args": [*ARGS, f"--user-data-dir={profile}"]},
        }
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> Any:
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            doc = json.loads(exc.read() or b"{}")
            value = doc.get("value") or {}
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {str(value.get('message'))[:500]}") from None
        return doc.get("value")

    def _s(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body, timeout)

    # --- navigation and script ---------------------------------------------------------
    def get(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    @property
    def title(self) -> str:
        return self._s("GET", "/title")

    def execute(self, script: str, *args: Any) -> Any:
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def execute_async(self, script: str, *args: Any, timeout: float = 60) -> Any:
        """``script`` ends by calling ``arguments[arguments.length - 1](result)``."""
        self._s("POST", "/timeouts", {"script": int(timeout * 1000)})
        return self._s("POST", "/execute/async", {"script": script, "args": list(args)}, timeout=timeout + 10)

    def resize(self, width: int, height: int) -> None:
        self._s("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._s("GET", "/screenshot")))
        return path

    # --- elements ------------------------------------------------------------------------
    def find(self, css: str) -> str:
        return self._s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self._s("POST", "/elements", {"using": "css selector", "value": css})]

    def click(self, css: str) -> None:
        self._s("POST", f"/element/{self.find(css)}/click")

    def type(self, css: str, text: str) -> None:
        """Type into an input (for a file input: the path of a file, which the page then reads)."""
        element = self.find(css)
        if self.prop(css, "type") != "file":
            self._s("POST", f"/element/{element}/clear")
        self._s("POST", f"/element/{element}/value", {"text": text})

    def text(self, css: str) -> str:
        return self._s("GET", f"/element/{self.find(css)}/text")

    def prop(self, css: str, name: str) -> Any:
        return self._s("GET", f"/element/{self.find(css)}/property/{name}")

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        """``check()``'s first truthy value, polled; AssertionError naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except WebDriverError as exc:  # the element is not there yet
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}"[:2000])

    def wait_text(self, css: str, needle: str, timeout: float = 60) -> str:
        """The text of ``css`` once it holds ``needle``."""

        def check() -> str | None:
            text = self.text(css)
            return text if needle in text else None

        return self.wait(f"{needle!r} in {css}", check, timeout)

    def quit(self) -> None:
        try:
            self._s("DELETE", "", timeout=30)
        except (OSError, WebDriverError):
            pass


def start_driver(popen: Callable[..., subprocess.Popen], port: int, log: Path) -> subprocess.Popen:
    """chromedriver listening on ``port`` (``popen``: how to start it, e.g. inside a namespace)."""
    return popen(
        [str(CHROMEDRIVER), f"--port={port}", f"--log-path={log}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_driver(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _OPENER.open(url.rstrip("/") + "/status", timeout=5) as resp:
                if json.loads(resp.read())["value"]["ready"]:
                    return
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"chromedriver at {url} not ready in {timeout} s")
        time.sleep(0.2)
