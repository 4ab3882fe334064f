"""Debian's headless Chromium, driven by Selenium, for the tests of what a person looks at.

Nothing is downloaded at run time: the driver is the distribution's chromedriver, named
explicitly so that Selenium Manager stays idle. Missing, it skips (fails under
``MAILBOT_TEST_REQUIRE_SERVERS=1``) like every other server the suite needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tests.servers import server_missing

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def chromium(window: str = "1280,900") -> Iterator[WebDriver]:
    """A headless browser for one test module (starting one takes seconds), quit afterwards."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        server_missing("Chromium is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window}"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
