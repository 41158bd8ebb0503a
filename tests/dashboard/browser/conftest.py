"""Browser fixtures: one headless Debian Chromium per session (driven by Playwright), a fresh page per test.

`open_page(url)` opens the dashboard in a new browser context and records what must not happen on a
page: console errors, uncaught exceptions and dialogs (an `alert` a hostile name managed to run).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
#: How long a page may take to draw (a loaded 2-core machine runs several suites at once).
PAGE_TIMEOUT_MS = 30_000


@dataclass
class WatchedPage:
    """A dashboard page and what went wrong on it: console errors, uncaught exceptions, dialogs."""

    page: Any
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def open(self, route: str) -> None:
        """Go to a route of the app (e.g. "#/experiments/1") and wait until it has drawn once."""
        self.page.goto(f"{self.base_url}/{route}")
        self.wait_for_refreshes(1)

    def wait_for_refreshes(self, count: int) -> None:
        """Wait until the current page has loaded its data `count` times (it polls while live)."""
        self.page.wait_for_function(
            "count => { const marked = document.querySelector('[data-refreshes]');"
            " return document.getElementById('app').dataset.route === (location.hash || '#/')"
            " && marked !== null && Number(marked.dataset.refreshes) >= count; }",
            arg=count, timeout=PAGE_TIMEOUT_MS)

    def graph(self, selector: str) -> Any:
        """The Plotly figure drawn in the element `selector`: its `data` (traces) and `layout`."""
        return self.page.evaluate(
            "selector => { const node = document.querySelector(selector);"
            " return node && node.data ? {data: node.data, layout: node.layout} : null; }", selector)

    def problems(self) -> list[str]:
        """Everything that went wrong on the page so far."""
        return ([f"console error: {text}" for text in self.console_errors]
                + [f"uncaught: {text}" for text in self.page_errors] + [f"dialog: {text}" for text in self.dialogs])


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"the browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium: Any) -> Iterator[Callable[[str], WatchedPage]]:
    contexts = []

    def open_dashboard(base_url: str) -> WatchedPage:
        context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        watched = WatchedPage(context.new_page(), base_url.rstrip("/"))
        watched.page.on("console", lambda message: watched.console_errors.append(message.text)
                        if message.type == "error" else None)
        watched.page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
        watched.page.on("dialog", lambda dialog: (watched.dialogs.append(dialog.message), dialog.dismiss()))
        return watched

    yield open_dashboard
    for context in contexts:
        context.close()
