"""Selenium steps for the demo's tabs, shared by the browser test and `make demo-screenshots`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers import REPO

TITLES = {
    "image_classifier": "Lesion image",
    "tabular_gbm": "Lesion metadata",
    "retrieval_qa": "Science QA",
    "captioning": "Captioning",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m tools.demo.app port=<port>` in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "tools.demo.app", f"port={port}"],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def wait_ready(url: str, proc: subprocess.Popen, log: Path, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"demo not ready in {limit} s:\n{log.read_text()[-3000:]}")


def open_tab(driver, project: str) -> None:
    title = TITLES[project]
    tab = WebDriverWait(driver, 60).until(
        lambda d: d.find_element(By.XPATH, f"//button[@role='tab'][contains(., '{title}')]")
    )
    tab.click()
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, f"{project}-model").text)


def text_of(driver, elem_id: str) -> str:
    return driver.find_element(By.ID, elem_id).text


def wait_text(driver, elem_id: str, needle: str, timeout: float = 180) -> str:
    """The element's text once it contains `needle` (a clear failure message otherwise)."""
    try:
        WebDriverWait(driver, timeout).until(lambda d: needle in text_of(d, elem_id))
    except Exception:
        raise AssertionError(
            f"#{elem_id} never showed {needle!r}; it shows {text_of(driver, elem_id)!r}"
        ) from None
    return text_of(driver, elem_id)


def click(driver, elem_id: str) -> None:
    button = driver.find_element(By.ID, elem_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def upload(driver, elem_id: str, path: Path) -> None:
    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]")
    field.send_keys(str(path))


def screenshot(driver, folder: Path, project: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0);")
    path = folder / f"{project}.png"
    driver.save_screenshot(str(path))
    return path


# --- one use of each tab: click its button, wait for its output, return the output's text ---


def use_image_tab(driver) -> str:
    open_tab(driver, "image_classifier")
    click(driver, "image_classifier-run")
    return wait_text(driver, "image_classifier-score", "Malignancy score:")


def use_tabular_tab(driver) -> str:
    open_tab(driver, "tabular_gbm")
    click(driver, "tabular_gbm-run")
    wait_text(driver, "tabular_gbm-contrib", "feature")
    return wait_text(driver, "tabular_gbm-prob", "Malignancy probability:")


def use_retrieval_tab(driver) -> str:
    open_tab(driver, "retrieval_qa")
    click(driver, "retrieval_qa-run")
    return wait_text(driver, "retrieval_qa-ranked", "probability")


def use_captioning_tab(driver) -> str:
    open_tab(driver, "captioning")
    click(driver, "captioning-run")
    wait_text(driver, "captioning-tokens", "probability")
    return wait_text(driver, "captioning-caption", "Caption:")


USE = {
    "image_classifier": use_image_tab,
    "tabular_gbm": use_tabular_tab,
    "retrieval_qa": use_retrieval_tab,
    "captioning": use_captioning_tab,
}


def main(argv: list[str] | None = None) -> None:
    """`make demo-screenshots`: serve the current store's champions (mlflow.db, or
    MLFLOW_TRACKING_URI), use every tab once in headless Chromium, save docs/demo/<project>.png."""
    import argparse
    import signal
    import tempfile

    from tests.browser.chromium import new_driver

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "demo")
    args = parser.parse_args(argv)
    port, log = free_port(), Path(tempfile.mkdtemp(prefix="demo-shots-")) / "demo.log"
    proc = start_app(port, log)
    driver = None
    try:
        wait_ready(f"http://127.0.0.1:{port}/", proc, log)
        driver = new_driver()
        driver.get(f"http://127.0.0.1:{port}/")
        for project, use in USE.items():
            print(f"{project}: {use(driver).splitlines()[0]}")
            print(f"  -> {screenshot(driver, args.out, project)}")
    finally:
        if driver is not None:
            driver.quit()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
