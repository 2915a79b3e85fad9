"""A headless Chromium for the tests: Debian's ``chromium``, installed when missing, driven offline.

The browser is the system's ``/usr/bin/chromium`` driven by Playwright (never Playwright's own
download, which this network refuses). ``install_chromium`` runs ``apt-get install chromium``
when the binary is missing and we are root with apt-get; it returns why not when it cannot.
``launch`` starts it with the background services off: the machine's network is closed, and
Chromium's own calls home (component updates, sync, QUIC probes) would only be refused.
``visit`` opens one page and returns a ``PageVisit``: its title and heading, every image as the
browser decoded it, the console errors and every request the page made, and a full-page
screenshot.

Run as a script, it shows a report the way the tests see it:
``.venv/bin/python tests/browser.py runs/x/report.html /tmp/report.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from playwright.sync_api import Browser, ConsoleMessage, Playwright, ViewportSize, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
_IMAGES = """() => Array.from(document.images, img => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight }))"""


class ImageShown(NamedTuple):
    """One ``<img>`` as the browser has it: decoded when complete with a non-zero natural size."""

    alt: str
    complete: bool
    width: int
    height: int


class PageVisit(NamedTuple):
    """What one page load showed and did."""

    url: str
    title: str
    headings: list[str]  # the text of each <h1>
    images: list[ImageShown]
    console_errors: list[str]  # console.error, failed loads and uncaught exceptions
    requests: list[str]  # every URL the page asked for, the page itself first
    screenshot: Path


def install_chromium(timeout: float = 900.0) -> str | None:
    """Install Debian's chromium when ``/usr/bin/chromium`` is missing.

    Returns:
        None when the browser is there (already, or now); otherwise why it cannot be installed.
    """
    if CHROMIUM.exists():
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install it"
    if os.geteuid() != 0:
        return f"{CHROMIUM} is missing and installing it needs root: sudo apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "chromium"]
    try:
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run([apt, "update", "-q"], env=env, capture_output=True, timeout=timeout)
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"apt-get install chromium took over {timeout:g} s"
    if done.returncode != 0 or not CHROMIUM.exists():
        return f"apt-get install chromium failed: {done.stderr.strip()[-500:]}"
    return None


def launch(playwright: Playwright) -> Browser:
    """Start the system's Chromium, headless and with its background networking off."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)


def visit(browser: Browser, page_file: Path, screenshot: Path) -> PageVisit:
    """Open ``page_file`` in a fresh context, wait for its load event, and record what it did.

    Raises:
        playwright.sync_api.Error: the page did not load within 30 s.
    """
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda message: _keep_error(message, errors))
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        page.on("requestfailed", lambda request: errors.append(f"failed: {request.url[:80]}"))
        page.on("request", lambda request: requests.append(request.url))
        url = page_file.resolve().as_uri()
        page.goto(url, wait_until="load", timeout=30_000)
        images = [ImageShown(**shown) for shown in page.evaluate(_IMAGES)]
        headings = [h.strip() for h in page.locator("h1").all_inner_texts()]
        page.screenshot(path=str(screenshot), full_page=True)
        return PageVisit(url, page.title(), headings, images, errors, requests, screenshot)
    finally:
        context.close()


def _keep_error(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(message.text)


def main(page_file: str, screenshot: str) -> None:
    """Screenshot one page and say what it did (``tests/browser.py PAGE PNG``)."""
    missing = install_chromium()
    if missing:
        sys.exit(missing)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        shown = visit(browser, Path(page_file), Path(screenshot))
        browser.close()
    print(f"{shown.title!r}: {len(shown.images)} images, {len(shown.console_errors)} console errors, "
          f"requests {shown.requests}; screenshot {shown.screenshot}")
    for image in shown.images:
        print(f"  {image.alt}: {image.width}x{image.height}{'' if image.complete else ', not complete'}")
    for error in shown.console_errors:
        print(f"  error: {error}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: tests/browser.py PAGE.html SCREENSHOT.png")
    main(sys.argv[1], sys.argv[2])
