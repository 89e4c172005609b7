"""The browser fixture itself: a page renders and its text is readable."""

from __future__ import annotations


def test_chrome_renders_a_local_page(chrome, tmp_path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><h1 id='t'>hello browser</h1></body></html>")
    chrome.get(page.as_uri())
    assert chrome.find_element("id", "t").text == "hello browser"
    assert chrome.get_window_size()["width"] == 1400
