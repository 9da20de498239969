"""Headless Debian chromium through Playwright for Python, or a clear skip (a failure under CI=true)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cxrlab.annotate.trial import CHROMIUM, CHROMIUM_ARGS  # one set of headless-chromium settings


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser; skips where chromium or Playwright is absent."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _missing(f"{CHROMIUM} is absent: install Debian's chromium package for the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (python) is not installed: pip install the test extra")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
