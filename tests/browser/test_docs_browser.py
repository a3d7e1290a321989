"""The built documentation opens in Chromium from its files, and its navigation leads from page to page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(out / "doctrees"),
                           str(ROOT / "docs"), str(out / "html")], check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "html"


def test_three_pages_through_the_navigation(page: Any, site: Path) -> None:
    from playwright.sync_api import expect

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((site / "index.html").as_uri())
    expect(page.locator("h1").first).to_have_text(re.compile("gridllm_nb"))
    nav = page.locator(".sidebar-tree")
    for title in ("The %%gridllm magic", "Compare and recover runs", "Architecture"):
        nav.get_by_role("link", name=title, exact=True).click()
        expect(page.locator("article h1").first).to_contain_text(title)
    assert page.url.endswith("architecture.html")
    expect(page.locator("article pre").filter(has_text="The one door from the client side")).to_have_count(1)
    page.go_back()
    expect(page.locator("article h1").first).to_contain_text("Compare and recover runs")
    # Everything the pages showed came from the built files: nothing from the network.
    assert requests and all(url.startswith(("file://", "data:")) for url in requests), \
        [u for u in requests if not u.startswith(("file://", "data:"))]
