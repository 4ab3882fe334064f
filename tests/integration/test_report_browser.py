"""The HTML report in a real headless browser (Debian's Chromium, driven by Selenium): it loads
from a file with nothing fetched from the network and no script run, every chart is a drawn SVG,
and a hostile subject shows as cut, escaped text."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from mailbot.report.html import render_html
from mailbot.report.service import Period, build_figures
from tests import report_world as world
from tests.servers.chromium import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    yield from chromium("1280,1700")


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
def loaded(browser: WebDriver, report_file: Path) -> WebDriver:
    browser.get(report_file.as_uri())
    return browser


def test_report_loads_without_any_network_request(loaded: WebDriver) -> None:
    assert loaded.title == "Security report: response times"
    resources = loaded.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources == []
    logs: list[dict[str, Any]] = cast(Any, loaded).get_log("browser")  # Chromium's driver has it
    errors = [e for e in logs if e["level"] == "SEVERE"]
    assert errors == []


def test_every_chart_is_a_drawn_svg(loaded: WebDriver) -> None:
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


def test_screenshot_of_the_report(loaded: WebDriver, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    assert loaded.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("MAILBOT_REPORT_SCREENSHOT")
    if keep:  # how docs/report-example.png is made
        shutil.copy(shot, keep)


def test_hostile_subject_is_text_cut_and_never_run(loaded: WebDriver) -> None:
    with pytest.raises(NoAlertPresentException):
        loaded.switch_to.alert.text  # noqa: B018
    assert loaded.find_elements(By.TAG_NAME, "script") == []
    assert loaded.find_elements(By.CSS_SELECTOR, "#at-risk img") == []
    cells = [c.text for c in loaded.find_elements(By.CSS_SELECTOR, "#at-risk td.subject")]
    [hostile] = [c for c in cells if "script" in c]
    assert hostile.startswith("<script>alert('pwned')</script>")
    assert "\u202e" not in hostile
    assert len(hostile) <= 80 and hostile.endswith("…")
