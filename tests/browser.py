"""Debian's headless Chromium through its chromedriver, as the browser tests drive it."""
from __future__ import annotations

import shutil

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def chromium() -> webdriver.Chrome:
    """A new headless Chromium; the caller quits it."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "Debian's chromium and chromium-driver are needed (bin/stage setup)"
    options = Options()
    options.binary_location = binary
    # A tall window: JupyterHub 6's pages scroll an inner container, and a card of the spawn
    # form below the fold is then "not clickable" (under the container's edge) for Selenium.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,3000"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(30)
    return browser


def log_in(browser: webdriver.Chrome, url: str, name: str) -> WebDriverWait:
    """Open ``url`` (a hub page that asks for a login), log in as ``name`` with the test hubs'
    password (the name itself) and return a 30 s wait for what comes next."""
    wait = WebDriverWait(browser, 30)
    browser.get(url)
    wait.until(EC.presence_of_element_located((By.NAME, "username"))).send_keys(name)
    browser.find_element(By.NAME, "password").send_keys(name, Keys.ENTER)
    return wait
