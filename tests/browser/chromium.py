"""Find the Chromium the browser tests drive. `python -m tests.browser.chromium` prints its path and
exits 0, or says why there is none and exits 1: `make test` runs the notebooks in JupyterLab where
there is one, and under nbval where there is not, so every notebook runs once either way."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def find_chromium() -> str | None:
    """COURSEKIT_CHROMIUM, else a system Chromium/Chrome, else Playwright's own download if present;
    None also when Playwright itself is missing (the browser tests cannot drive a page without it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    names = [os.environ.get("COURSEKIT_CHROMIUM", ""), "chromium", "chromium-browser",
             "google-chrome", "google-chrome-stable"]
    for name in filter(None, names):
        if path := shutil.which(name):
            return path
    try:
        with sync_playwright() as p:
            bundled = p.chromium.executable_path
        return bundled if bundled and Path(bundled).exists() else None
    except Exception:
        return None


if __name__ == "__main__":
    found = find_chromium()
    print(found or "no Chromium (or no Playwright) here: the notebooks run under nbval instead "
                   "(tools/install_chromium.sh, or COURSEKIT_CHROMIUM, gives the browser tests one)")
    sys.exit(0 if found else 1)
