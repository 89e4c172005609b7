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
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},  # the log is read live
        start_new_session=True,
    )


def wait_ready(url: str, proc: subprocess.Popen, log: Path, limit: float = 600) -> None:
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
    tab = WebDriverWait(driver, 120).until(
        lambda d: d.find_element(By.XPATH, f"//button[@role='tab'][contains(., '{title}')]")
    )
    tab.click()
    WebDriverWait(driver, 120).until(lambda d: d.find_element(By.ID, f"{project}-model").text)


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


def wait_until(driver, condition, what: str = "condition", timeout: float = 180) -> None:
    """Poll `condition(driver)` until true (a generous deadline: the machine may be loaded)."""
    try:
        WebDriverWait(driver, timeout, poll_frequency=1).until(condition)
    except Exception:
        raise AssertionError(f"{what} not met in {timeout} s") from None


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


def loaded(driver, project: str) -> bool:
    """Whether the tab's champion loaded (else its first line says why and there is no form)."""
    return "could not be loaded" not in text_of(driver, f"{project}-model")


def use_image_tab(driver) -> str:
    open_tab(driver, "image_classifier")
    if not loaded(driver, "image_classifier"):
        return text_of(driver, "image_classifier-model")
    click(driver, "image_classifier-run")
    return wait_text(driver, "image_classifier-score", "Malignancy score:")


def use_tabular_tab(driver) -> str:
    open_tab(driver, "tabular_gbm")
    if not loaded(driver, "tabular_gbm"):
        return text_of(driver, "tabular_gbm-model")
    click(driver, "tabular_gbm-run")
    wait_text(driver, "tabular_gbm-waterfall", "log-odds")
    return wait_text(driver, "tabular_gbm-prob", "Malignancy probability:")


def waterfall_values(driver) -> dict[str, list[tuple[str, float]]]:
    """Per model, the waterfall's (term, exact value) rows: base value, ..., log-odds."""
    out: dict[str, list[tuple[str, float]]] = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#tabular_gbm-waterfall tbody tr"):
        term = row.find_element(By.CSS_SELECTOR, "td").text
        for cell in row.find_elements(By.CSS_SELECTOR, "td[data-model]"):
            model = cell.get_attribute("data-model")
            out.setdefault(model, []).append((term, float(cell.get_attribute("data-value"))))
    return out


def use_retrieval_tab(driver) -> str:
    open_tab(driver, "retrieval_qa")
    if not loaded(driver, "retrieval_qa"):
        return text_of(driver, "retrieval_qa-model")
    click(driver, "retrieval_qa-run")
    return wait_text(driver, "retrieval_qa-ranked", "probability")


def use_captioning_tab(driver) -> str:
    open_tab(driver, "captioning")
    if not loaded(driver, "captioning"):
        return text_of(driver, "captioning-model")
    click(driver, "captioning-run")
    wait_text(driver, "captioning-tokens", "beam 1")
    return wait_text(driver, "captioning-caption", "Caption:")


USE = {
    "image_classifier": use_image_tab,
    "tabular_gbm": use_tabular_tab,
    "retrieval_qa": use_retrieval_tab,
    "captioning": use_captioning_tab,
}


def main(argv: list[str] | None = None) -> None:
    """`make demo-screenshots`: serve the current store's champions (mlflow.db, or
    MLFLOW_TRACKING_URI), use every tab once in headless Chromium, save docs/demo/<project>.png
    (a tab whose champion cannot be loaded is named and its old picture kept)."""
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
            text = use(driver)
            if not loaded(driver, project):  # keep the old picture rather than an error
                print(f"{project}: NOT captured, {text.splitlines()[-1]}")
                continue
            print(f"{project}: {text.splitlines()[0]}")
            print(f"  -> {screenshot(driver, args.out, project)}")
    finally:
        if driver is not None:
            driver.quit()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
