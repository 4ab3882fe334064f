"""The case view in a real browser: Debian's headless Chromium, driven by Selenium.

One browser for the module (starting one takes seconds). Nothing is downloaded at run time: the
driver is the distribution's chromedriver, named explicitly so that Selenium Manager stays idle.
``MAILBOT_WEB_SCREENSHOTS=DIR`` saves the board and a case page there (the README's pictures).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from mailbot.deadlines.watch import deadline_of
from tests.servers.chromium import chromium
from tests.servers.dovecot import ImapTestServer
from tests.website import PASSWORD, RLO, USER, Site, build_site

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, dovecot_server: ImapTestServer,
         ) -> Iterator[Site]:
    yield from build_site(tmp_path_factory.mktemp("web"), dovecot_server)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    yield from chromium()


@pytest.fixture(scope="module")
def logged_in(site: Site, browser: WebDriver) -> WebDriver:
    browser.get(site.web.url + "/")
    assert "/login" in browser.current_url  # sent to the login form first
    browser.find_element(By.NAME, "name").send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda d: "/login" not in d.current_url)
    assert browser.current_url.rstrip("/") == site.web.url
    return browser


def screenshot(browser: WebDriver, name: str) -> None:
    folder = os.environ.get("MAILBOT_WEB_SCREENSHOTS")
    if folder:
        browser.set_window_size(1280, 1500)  # the thread, not only its first lines
        browser.save_screenshot(str(Path(folder) / name))
        browser.set_window_size(1280, 900)


def browser_log(browser: WebDriver) -> list[dict[str, Any]]:
    """The console entries since the last call (Chromium's driver has get_log; the remote
    WebDriver type that the fixture is declared with does not say so)."""
    entries: list[dict[str, Any]] = cast(Any, browser).get_log("browser")
    return entries


def no_dialog(browser: WebDriver) -> bool:
    try:
        browser.switch_to.alert  # noqa: B018 - raises when there is none
    except NoAlertPresentException:
        return True
    return False


def test_the_board_lists_the_most_urgent_case_first(site: Site, logged_in: WebDriver) -> None:
    rows = logged_in.find_elements(By.CSS_SELECTOR, "table.board tbody tr[data-case]")
    order = [r.get_attribute("data-case") for r in rows]
    # The soonest running deadline first: the oldest report is the longest overdue.
    never = datetime.max.replace(tzinfo=UTC)
    due = {}
    for case in site.flow.cases():
        deadline = deadline_of(case)
        due[case.id] = deadline.due if deadline else never
    assert order == sorted(due, key=lambda i: (due[i], i))
    assert order[:2] == [site.cases["older"], site.cases["overdue"]]
    assert "overdue" in (rows[0].get_attribute("class") or "")
    assert "overdue by" in rows[0].text
    screenshot(logged_in, "web-board.png")


def test_a_case_page_shows_its_thread(site: Site, logged_in: WebDriver) -> None:
    logged_in.get(site.web.url + "/")
    logged_in.find_element(By.LINK_TEXT, site.cases["fresh"]).click()
    WebDriverWait(logged_in, 10).until(
        lambda d: d.current_url.endswith("/cases/" + site.cases["fresh"]))
    messages = logged_in.find_elements(By.CSS_SELECTOR, "article.message")
    kinds = [m.find_element(By.CSS_SELECTOR, ".kind").text for m in messages]
    assert kinds[:3] == ["report", "receipt", "team"]
    assert "The login form reflects the next parameter." in messages[0].text
    assert "Thanks Rita, we can reproduce it." in messages[2].text
    timeline = logged_in.find_element(By.CSS_SELECTOR, "section.timeline").text
    assert "acknowledged" in timeline
    screenshot(logged_in, "web-case.png")


def test_hostile_mail_renders_as_inert_text(site: Site, logged_in: WebDriver) -> None:
    browser_log(logged_in)  # start from an empty console
    logged_in.get(site.web.url + "/")
    logged_in.get(f"{site.web.url}/cases/{site.cases['hostile']}")
    page = logged_in.find_element(By.TAG_NAME, "main").text
    assert no_dialog(logged_in)
    # Every payload is on the page, as the characters it is made of.
    assert "<script>alert('subject')</script>" in page
    assert "<script>alert('body')</script>" in page
    assert '<a href="javascript:alert(3)">click me</a>' in page
    assert "<img src=" in page and "onerror=alert(8)>" in page  # the attachment name
    # Intake already blanks controls in header fields; the body keeps them, shown by name.
    assert "[U+202E]txt.exe" in page and RLO not in page
    # ... and none of it became an element.
    main = logged_in.find_element(By.TAG_NAME, "main")
    assert main.find_elements(By.CSS_SELECTOR, "script, img, iframe") == []
    hrefs = [a.get_attribute("href") or "" for a in main.find_elements(By.TAG_NAME, "a")]
    assert not [h for h in hrefs if not h.startswith(site.web.url)]
    # Nothing left the page: no request to the other origin, no CSP violation anywhere.
    assert site.canary.requests == []
    console = [e["message"] for e in browser_log(logged_in)]
    assert not [m for m in console if "Content Security Policy" in m], console
    assert "content security policy report" not in site.web.log_text()
    screenshot(logged_in, "web-hostile.png")


def test_the_report_page_links_the_missed_deadlines(site: Site, logged_in: WebDriver) -> None:
    logged_in.get(site.web.url + "/report")
    links = {a.text for a in logged_in.find_elements(By.CSS_SELECTOR, "table.report td.id a")}
    assert {site.cases["older"], site.cases["overdue"]} <= links
    screenshot(logged_in, "web-report.png")
