"""The pages in a real browser: headless Debian Chromium driven by Selenium through chromedriver.

Skipped, with the reason, where Chromium or its driver is not installed (`make test` installs them
where it may: as root on Debian)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import live_server

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra has it)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless Chromium is absent: install Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver)",
)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Background networking off: this machine's closed network refuses those connections.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1100,1400"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(small_model_dir):
    from bertfit.serving.app import create_app

    with live_server(create_app(small_model_dir)) as base:
        yield base


def wait_for(browser, condition, seconds: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds).until(condition)


def test_page_predicts_a_typed_message(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    wait_for(browser, lambda b: "labels: neg, pos" in b.find_element(By.ID, "about").text)
    browser.find_element(By.ID, "text").send_keys(
        "what a lovely wonderful day ☀ café"
    )  # chromedriver types BMP characters only
    browser.find_element(By.ID, "predict").click()
    label = wait_for(browser, lambda b: b.find_element(By.ID, "label").text)
    assert label in ("neg", "pos")
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar")
    assert [bar.text.split()[0] for bar in bars] == ["neg", "pos"]
    assert browser.find_element(By.CSS_SELECTOR, "#bars .chosen").text.split()[0] == label
    # the words of the text, each tinted by its attribution
    words = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#why span.word"))
    assert [w.text for w in words] == ["what", "a", "lovely", "wonderful", "day", "☀", "café"]
    assert all(w.get_attribute("data-score") for w in words)
    assert f"why {label}" in browser.find_element(By.ID, "why").text
    screenshot = tmp_path / "page.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_shows_the_error_of_an_empty_text(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    browser.find_element(By.ID, "predict").click()
    assert "empty text" in wait_for(browser, lambda b: b.find_element(By.ID, "error").text)


def test_report_renders_every_section(browser, server, small_model_dir, tmp_path):
    from selenium.webdriver.common.by import By

    from test_tasks import REPORT_SECTIONS

    browser.get(server + "/")
    browser.find_element(By.LINK_TEXT, "training report").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "wrong"))
    for section in REPORT_SECTIONS:
        element = browser.find_element(By.ID, section)
        assert element.is_displayed() and element.find_element(By.TAG_NAME, "h2").text, section
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 5  # balance, lengths, curves, confusion, precision-recall
    assert all(browser.execute_script("return arguments[0].naturalWidth", image) > 100 for image in images)
    assert browser.find_elements(By.CSS_SELECTOR, "#wrong span.word")  # the wrong rows' words, tinted
    # The same page opened straight from the folder, as a user would from a file manager.
    browser.get(Path(small_model_dir, "report.html").as_uri())
    assert browser.find_element(By.ID, "pr-curve").is_displayed()
    browser.set_window_size(1100, browser.execute_script("return document.body.scrollHeight") + 100)
    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 50_000


def test_report_shows_the_label_audit(browser, small_model_dir, tiny_bert, tmp_path):
    import shutil

    from selenium.webdriver.common.by import By

    from bertfit.cli import main
    from conftest import sentiment_rows, write_csv

    folder = tmp_path / "model"
    shutil.copytree(small_model_dir, folder)
    rows = sentiment_rows(40)
    rows[9] = (rows[2][0], "neg" if rows[2][1] == "pos" else "pos")  # the same text under both labels
    train = write_csv(tmp_path / "data.csv", rows)
    args = ["audit", "--train", str(train), "--model", str(tiny_bert), "--output", str(folder / "label_issues.csv")]
    assert main([*args, "-q"]) == 0
    browser.get((folder / "report.html").as_uri())
    section = browser.find_element(By.ID, "label-issues")
    assert section.is_displayed() and section.find_element(By.TAG_NAME, "h2").text
    cells = [cell.text for cell in section.find_elements(By.TAG_NAME, "td")]
    assert rows[9][0] in cells and "3" in cells  # the duplicate row, naming the row it repeats
    browser.execute_script("arguments[0].scrollIntoView()", section)
    screenshot = tmp_path / "report-label-issues.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
