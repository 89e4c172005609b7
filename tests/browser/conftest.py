"""Browser tests: a session-wide headless Chromium driven by Selenium.

Playwright's own browser download is unreachable, so the tests drive Debian's `chromium` and
`chromium-driver` by executable path (`make browser-deps` installs them when missing). Every
test in this folder is marked `browser`: `make test` skips them, `make test-browser` runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1400, 1000)
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/browser `browser` (deselected by `make test`)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


def _missing() -> list[str]:
    return [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]


@pytest.fixture(scope="session")
def chrome() -> Iterator:
    """A headless `selenium.webdriver.Chrome` on Debian's chromium, window 1400x1000.

    Skips (naming the missing files and the fix) only when chromium or chromedriver is absent
    and `make browser-deps` could not install them (no root, no package index).
    """
    missing = _missing()
    if missing:
        pytest.skip(
            f"Chromium is not installed ({', '.join(missing)} missing); "
            "run `make browser-deps` as root (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_window_size(*WINDOW)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
