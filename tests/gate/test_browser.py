"""A real browser (Debian's headless Chromium) logging in and using an app behind the gate."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from ..browser import chromium
from .conftest import PASSWORD

pytestmark = pytest.mark.gate


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def test_browser_login_lands_on_the_app_and_its_websocket_and_xhr_work(hub, alice_server, browser):
    browser.get(alice_server)
    wait = WebDriverWait(browser, 20)
    wait.until(EC.presence_of_element_located((By.NAME, "username")))
    assert urlsplit(browser.current_url).path == "/hub/login"
    browser.find_element(By.NAME, "username").send_keys("alice")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    heading = wait.until(EC.presence_of_element_located((By.ID, "app")))
    assert heading.text == "Hello from the app"
    assert urlsplit(browser.current_url).path == "/user/alice/"
    assert "token" not in browser.current_url
    assert "token" not in browser.page_source.lower()

    # The page's own scripts: a websocket (cookie, Origin and Sec-Fetch-* as a browser
    # sends them) and a same-origin POST, neither of which knows the hub's XSRF token.
    echoed = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const ws = new WebSocket(location.href.replace('http', 'ws') + 'ws');
        ws.onopen = () => ws.send('from the browser');
        ws.onmessage = (e) => { done(e.data); ws.close(); };
        ws.onerror = () => done('websocket error');
        """
    )
    assert echoed == "from the browser"
    posted = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch('echo', {method: 'POST', body: 'x'}).then(r => r.json()).then(j => done(j.method), e => done(String(e)));
        """
    )
    assert posted == "POST"
