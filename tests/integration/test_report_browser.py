"""The HTML report in a real headless browser (Debian's Chromium, driven by Selenium): it loads
from a file with nothing fetched from the network and no script run, every chart is a drawn SVG,
and a hostile subject shows as cut, escaped text."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from mailbot.report.html import render_html
from mailbot.report.service import Period, build_figures
from tests import report_world as world

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("MAILBOT_TEST_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium "
                    "chromium-driver)", pytrace=False)
    pytest.skip("no Chromium (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1700"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver named explicitly: Selenium must not try to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("report-html")
    app, _stories = world.make_world(tmp, count=80)
    try:
        figures = build_figures(app.db, app.calendar, app.settings.policy,
                                Period(date(2026, 3, 1), date(2026, 12, 2)), world.NOW)
    finally:
        app.close()
    path = tmp / "mailbot-report.html"
    path.write_text(render_html(figures), "utf-8")
    yield path


@pytest.fixture(scope="module")
def loaded(browser: webdriver.Chrome, report_file: Path) -> webdriver.Chrome:
    browser.get(report_file.as_uri())
    return browser


def test_report_loads_without_any_network_request(loaded: webdriver.Chrome) -> None:
    assert loaded.title == "Security report: response times"
    resources = loaded.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources == []
    logs = loaded.get_log("browser")  # type: ignore[no-untyped-call]
    errors = [e for e in logs if e["level"] == "SEVERE"]
    assert errors == []


def test_every_chart_is_a_drawn_svg(loaded: webdriver.Chrome) -> None:
    charts = loaded.find_elements(By.CSS_SELECTOR, "figure.chart")
    assert [c.get_attribute("id") for c in charts] == [
        "chart-reports", "chart-ack_distribution", "chart-on_time_share"]
    for chart in charts:
        svg = chart.find_element(By.TAG_NAME, "svg")
        assert svg.size["width"] > 300 and svg.size["height"] > 100
        drawn = loaded.execute_script(
            "return arguments[0].querySelectorAll('path, rect, use').length", svg)
        assert drawn > 10
        # Real text: the chart's title is readable in the page.
        assert chart.text.strip()


def test_screenshot_of_the_report(loaded: webdriver.Chrome, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    assert loaded.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("MAILBOT_REPORT_SCREENSHOT")
    if keep:  # how docs/report-example.png is made
        shutil.copy(shot, keep)


def test_hostile_subject_is_text_cut_and_never_run(loaded: webdriver.Chrome) -> None:
    with pytest.raises(NoAlertPresentException):
        loaded.switch_to.alert.text  # noqa: B018
    assert loaded.find_elements(By.TAG_NAME, "script") == []
    assert loaded.find_elements(By.CSS_SELECTOR, "#at-risk img") == []
    cells = [c.text for c in loaded.find_elements(By.CSS_SELECTOR, "#at-risk td.subject")]
    [hostile] = [c for c in cells if "script" in c]
    assert hostile.startswith("<script>alert('pwned')</script>")
    assert "\u202e" not in hostile
    assert len(hostile) <= 80 and hostile.endswith("…")
