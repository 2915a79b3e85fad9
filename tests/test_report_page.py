"""report.html as a reader gets it: opened in a real headless Chromium, offline.

tests/test_lab.py checks the bundle's files; this opens the page of a small ``run`` bundle and a
small ``compare`` bundle (2,000 customers, 14 days) and checks that every figure of the bundle
decoded with a non-zero size, that the page has its title and heading, and that it logged no
console error and asked for nothing but its own file (the figures are data: URIs). A full-page
screenshot of each is left in the session's temporary folder, to look at.

The browser is Debian's chromium (tests/browser.py), installed here when it is missing; these
tests are skipped only when it cannot be installed, and say why.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import PageVisit, install_chromium, launch, visit
from playwright.sync_api import Browser, sync_playwright

CART = "cart_abandonment"
SMALL = ["--customers", "2000", "--days", "14", "--quiet"]
BUNDLES = {"run": ["run", CART, *SMALL], "compare": ["compare", CART, *SMALL]}


@pytest.fixture(scope="session")
def chromium() -> None:
    """Debian's chromium at /usr/bin/chromium, installed with apt-get when missing."""
    missing = install_chromium()
    if missing:
        pytest.skip(f"no headless Chromium: {missing}")


@pytest.fixture(scope="module")
def browser(chromium: None) -> Iterator[Browser]:
    # module scope: Playwright's event loop is gone before the next module's tests run
    with sync_playwright() as playwright:
        started = launch(playwright)
        yield started
        started.close()


@pytest.fixture(scope="module", params=sorted(BUNDLES))
def kind(request: pytest.FixtureRequest) -> str:
    """The command that wrote the bundle: run or compare."""
    return str(request.param)


@pytest.fixture(scope="module")
def bundle(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle written by the command line."""
    out = tmp_path_factory.mktemp(f"bundle_{kind}")
    command = [sys.executable, "-m", "engine", *BUNDLES[kind], "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def shown(browser: Browser, kind: str, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> PageVisit:
    """The bundle's report.html opened once, with a full-page screenshot."""
    screenshots = tmp_path_factory.getbasetemp() / "report_screenshots"
    screenshots.mkdir(exist_ok=True)
    return visit(browser, bundle / "report.html", screenshots / f"report_{kind}.png")


def test_every_figure_of_the_bundle_is_shown_decoded(shown: PageVisit, bundle: Path) -> None:
    figures = sorted(png.name for png in bundle.glob("*.png"))
    assert figures, "the bundle has no figures"
    assert sorted(image.alt for image in shown.images) == figures
    undecoded = [image for image in shown.images
                 if not (image.complete and image.width > 0 and image.height > 0)]
    assert not undecoded, undecoded


def test_the_page_has_a_title_and_a_heading(shown: PageVisit, kind: str) -> None:
    assert shown.title.startswith(f"Touchpoint {kind}:")
    assert shown.headings == [shown.title]


def test_the_page_logs_no_error_and_asks_for_nothing_but_itself(shown: PageVisit) -> None:
    assert shown.console_errors == []
    assert shown.requests[0] == shown.url
    elsewhere = [url for url in shown.requests[1:] if not url.startswith("data:")]
    assert not elsewhere, f"the page asked the network for {elsewhere}"


def test_the_screenshot_is_the_whole_page(shown: PageVisit) -> None:
    with shown.screenshot.open("rb") as png:
        header = png.read(24)
    assert header.startswith(b"\x89PNG\r\n\x1a\n")
    height = int.from_bytes(header[20:24], "big")  # IHDR: width at 16, height at 20
    assert height > 900, "full page: taller than the viewport, with every figure"
