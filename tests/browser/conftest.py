"""Browser tests: a session-wide headless Chromium driven by Selenium.

Playwright's own browser download is unreachable, so the tests drive Debian's `chromium` and
`chromium-driver` by executable path (`make browser-deps` installs them when missing). Every
test in this folder is marked `browser`: `make test` skips them, `make test-browser` runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.chromium import CHROMEDRIVER, CHROMIUM, new_driver


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
    driver = new_driver()
    try:
        yield driver
    finally:
        driver.quit()
