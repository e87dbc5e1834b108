"""Driving the MLflow UI (3.17) in headless Chromium: pages that reach one server only, and its pickers.

Shared by the browser tests and ``benchmarks/bench_step_logging.py``.
"""

from __future__ import annotations

from urllib.parse import urlparse

TIMEOUT_MS = 60_000
"""Default wait for an element: two slow cores, and the UI's first render can take a while."""


def new_page(browser, server_url: str, width: int = 1500, height: int = 1000):
    """A page that may reach the test server only (anything else is aborted and recorded)."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="ja-JP")
    context.set_default_timeout(TIMEOUT_MS)
    blocked: list[str] = []
    host = urlparse(server_url).netloc

    def route(route):
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == host:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return context.new_page(), blocked


def close_assistant(page) -> None:
    """MLflow 3 opens its Assistant panel over a quarter of the page on first load."""
    button = page.get_by_role("button", name="Close", exact=True).first
    try:
        button.wait_for(state="visible", timeout=15_000)
        button.click()
    except Exception:
        pass


def pick(page, combobox, option: str, *, deselect: tuple[str, ...] = ()) -> None:
    """Select ``option`` in one of the artifact view's pickers and unselect the ``deselect`` options."""
    combobox.click()
    item = page.get_by_role("option", name=option, exact=True)
    if item.get_attribute("aria-selected") != "true":
        item.click()
    for name in deselect:
        other = page.get_by_role("option", name=name, exact=True)
        if other.count() and other.get_attribute("aria-selected") == "true":
            other.click()
    page.keyboard.press("Escape")
