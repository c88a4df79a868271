"""The built course website (`make site`) in Chromium: every page renders and every figure loads.

Run with `make sitetest` after `make site` (marker `site`: not part of make test's browser phase).
Requests to other hosts are blocked, as on a machine offline: the site must not need them for its
pages and figures (MathJax from its CDN is the one thing that then stays untypeset; it is counted,
not failed).
"""
from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

from tools import website

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parent.parent.parent
SITE = Path(os.environ.get("COURSEKIT_SITE", ROOT / "build" / "site"))
HTML = SITE / "_build" / "html"
PAGES = ["intro"] + [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


@pytest.fixture(autouse=True)
def only_when_asked(request):
    if "site" not in (request.config.getoption("-m") or ""):
        pytest.skip("checks the built site: `make site`, then `make sitetest` (-m site)")


@pytest.fixture(scope="module")
def site_url():
    if not (HTML / "index.html").is_file():
        pytest.fail(f"no built site at {HTML}: run `make site` (or `make site SITE_QUICK=1`) first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright
    from .conftest import CHROMIUM_ARGS
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def figures_in_notebook(name: str) -> int:
    """How many figures (image outputs) the site's copy of a notebook holds."""
    if name == "intro":
        return 0
    nb = nbformat.read(SITE / "source" / f"{name}.ipynb", as_version=4)
    return sum(1 for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
               if "image/png" in out.get("data", {}))


@pytest.mark.parametrize("page_name", PAGES)
def test_page_renders_and_its_figures_load(browser, site_url, page_name):
    page = browser.new_page()
    failed, blocked = [], []
    page.route(lambda url: urlparse(url).hostname != "127.0.0.1",
               lambda route: blocked.append(route.request.url) or route.abort())
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda response: response.status >= 400 and failed.append(f"{response.status} {response.url}"))
    try:
        response = page.goto(f"{site_url}/{page_name}.html", wait_until="load")
        assert response is not None and response.ok, f"{page_name}.html: HTTP {response and response.status}"
        article = page.locator("article").first
        assert article.locator("h1").count() >= 1, f"{page_name}: no heading rendered"
        assert len(article.inner_text()) > 500, f"{page_name}: the page is (nearly) empty"
        images = page.evaluate("""() => [...document.querySelectorAll('article img')].map(
            img => ({src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0}))""")
        broken = [img["src"] for img in images if not img["ok"]]
        assert not broken, f"{page_name}: images that did not load: {broken}"
        wanted = figures_in_notebook(page_name)
        assert len(images) >= wanted, f"{page_name}: {len(images)} images on the page, the notebook has {wanted} figures"
        local_failures = [url for url in failed if urlparse(url.split(" ")[-1]).hostname == "127.0.0.1"]
        assert not local_failures, f"{page_name}: files of the site that failed to load: {local_failures}"
        if page_name == "intro":  # the landing page links to every notebook, in lecture order
            hrefs = page.evaluate("() => [...document.querySelectorAll('article a')].map(a => a.getAttribute('href'))")
            for name in PAGES[1:]:
                assert any(h and h.split("#")[0] == f"{name}.html" for h in hrefs), f"the landing page has no link to {name}"
        other_hosts = sorted({urlparse(url).hostname for url in blocked})
        print(f"{page_name}: {len(images)} images, all loaded; requests to other hosts blocked: {other_hosts or 'none'}")
    finally:
        page.close()


def test_every_notebook_is_in_the_table_of_contents_in_lecture_order():
    toc = (SITE / "source" / "_toc.yml").read_text()
    files = [line.split("file:")[1].strip() for line in toc.splitlines() if "file:" in line]
    assert files == PAGES[1:] == sorted(files)
    assert all(f'caption: "{caption}"' in toc for caption, _ in website.PARTS)


def test_the_front_page_leads_to_the_landing_page(browser, site_url):
    page = browser.new_page()
    try:
        page.goto(f"{site_url}/index.html")
        page.wait_for_url("**/intro.html", timeout=10_000)
        assert "questions" in page.locator("article").first.inner_text()
    finally:
        page.close()
