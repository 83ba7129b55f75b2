"""The spawn form at scale in a real browser (Debian's headless Chromium), served by a real
JupyterHub through configurable-http-proxy, spawning on the test bed.

A 30-entry catalog under several categories (tests/form_catalog.py): the filter box narrows the
cards, the keyboard alone picks an entry and a size and submits, each card's resources line
follows its size, and the hub then starts the server with exactly those options. With the
mouse, changing another card's options (or typing its image) chooses that card.

Selenium blocks: the browser is driven in a thread, so that the hub (on this event loop)
answers it.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from jupyterhub.tests.utils import api_request, public_url
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from tests.browser import chromium, log_in
from tests.form_catalog import LARGE_TEXT, MEDIUM_TEXT, SMALL_TEXT, many_entries
from tycho_spawner.profiles import merge

from .conftest import api_json, wait_for_spawn

pytestmark = pytest.mark.cluster

#: The entries whose name has "Spark" (i % 7 == 2), in the form's order: by category
#: (Notebooks: 16, Statistics: 9, Web apps: 2, none: 23).
SPARK = ["app-16", "app-09", "app-02", "app-23"]


async def _user_with_thirty_entries(hub, name, catalog=None):
    """A user created through the hub's REST API, whose spawner offers only the 30 entries."""
    r = await api_request(hub, "users", name, method="post")
    assert r.status_code == 201, r.text
    spawner = hub.users[name].spawners[""]
    spawner.builtin_catalog = False
    spawner.catalog = catalog or many_entries(30)
    assert len(spawner.tycho_catalog.profiles) == 30
    return spawner


def _shown_cards(browser):
    return [c.get_attribute("data-profile") for c in browser.find_elements(By.CSS_SELECTOR, ".tycho-card")
            if c.is_displayed()]


def _active(browser):
    return browser.switch_to.active_element


def _tab_until(browser, predicate, limit=40):
    """Press Tab until the focused element satisfies ``predicate``; the keyboard is all there is."""
    for _ in range(limit):
        if predicate(_active(browser)):
            return _active(browser)
        _active(browser).send_keys(Keys.TAB)
    raise AssertionError(f"Tab never reached it; focus is on {_active(browser).get_attribute('outerHTML')[:200]}")


def _drive(url: str, name: str, shots) -> dict:
    """Log in, filter, pick an entry and a size, submit: with keys only. Returns what was seen;
    screenshots of the form as it opened and as it was submitted go to ``shots`` (a directory)."""
    seen: dict = {}
    browser = chromium()
    try:
        wait = log_in(browser, url, name)
        wait.until(EC.visibility_of_element_located((By.ID, "tycho-filter-input")))
        browser.save_screenshot(str(shots / "form-opened.png"))
        seen["cards_before"] = _shown_cards(browser)
        seen["headings"] = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".tycho-group h2")]

        box = _tab_until(browser, lambda el: el.get_attribute("id") == "tycho-filter-input")
        box.send_keys("spark")
        status = browser.find_element(By.ID, "tycho-filter-status")
        wait.until(lambda b: "match" in status.text)
        seen["cards_filtered"] = _shown_cards(browser)
        seen["status_filtered"] = status.text
        seen["headings_filtered"] = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".tycho-group h2")
                                     if h.is_displayed()]
        box.send_keys(Keys.ENTER)  # in the filter box: filters, does not start
        seen["url_after_enter_in_filter"] = browser.current_url

        # Tab: into the radio group, on the chosen entry (the default, kept shown)
        radio = _tab_until(browser, lambda el: el.get_attribute("name") == "profile", limit=2)
        seen["first_radio"] = radio.get_attribute("value")
        # Arrows: to the next shown entries, skipping the filtered-out ones
        radio.send_keys(Keys.ARROW_DOWN)
        _active(browser).send_keys(Keys.ARROW_DOWN)
        seen["radio"] = _active(browser).get_attribute("value")
        seen["radio_checked"] = _active(browser).is_selected()
        seen["cards_after_arrows"] = _shown_cards(browser)
        seen["status_after_arrows"] = status.text
        chosen = seen["radio"]

        # Tab: to the chosen entry's size (the next control the keyboard reaches)
        size = _tab_until(browser, lambda el: el.tag_name == "select", limit=2)
        seen["select"] = size.get_attribute("name")
        resources = browser.find_element(By.CSS_SELECTOR, f'.tycho-card[data-profile="{chosen}"] .tycho-resources-text')
        seen["resources"] = [resources.text]
        size.send_keys(Keys.ARROW_DOWN)
        seen["resources"].append(resources.text)
        _active(browser).send_keys(Keys.ARROW_DOWN)
        seen["resources"].append(resources.text)
        seen["size"] = _active(browser).get_attribute("value")

        # Tab: to the hub's Start button; Enter submits
        browser.save_screenshot(str(shots / "form-filtered.png"))
        start = _tab_until(browser, lambda el: el.get_attribute("type") == "submit", limit=3)
        seen["start_text"] = start.text
        start.send_keys(Keys.ENTER)
        wait.until(lambda b: "/hub/spawn/" not in b.current_url)
        seen["url_after_submit"] = browser.current_url
    finally:
        browser.quit()
    return seen


async def test_thirty_entries_filtered_and_started_with_the_keyboard_only(hub, tmp_path):
    name = "formkeys"
    spawner = await _user_with_thirty_entries(hub, name)
    url = public_url(hub, path=f"hub/spawn/{name}")

    seen = await asyncio.to_thread(_drive, url, name, tmp_path)
    print(f"screenshots: {tmp_path}")

    assert len(seen["cards_before"]) == 30
    assert seen["headings"] == ["Notebooks", "Statistics", "Web apps", "Databases", "Other applications"]
    # typing narrows the cards to the matching ones, and the chosen (default) entry stays
    assert seen["cards_filtered"] == ["app-00"] + SPARK
    assert seen["status_filtered"] == "4 of 30 applications match. The chosen one, Application 00, stays shown."
    assert seen["headings_filtered"] == ["Notebooks", "Statistics", "Web apps", "Other applications"]
    assert seen["url_after_enter_in_filter"] == url
    # arrows move the choice through the shown entries; the default, no longer chosen, goes
    assert seen["first_radio"] == "app-00"
    assert seen["radio"] == "app-09" and seen["radio_checked"]
    assert seen["cards_after_arrows"] == SPARK
    assert seen["status_after_arrows"] == "4 of 30 applications match."
    # Tab goes from the chosen entry to its own size, not to other cards' selects
    assert seen["select"] == "app-09.size"
    # the resources line follows the size
    assert seen["resources"] == [SMALL_TEXT, MEDIUM_TEXT, LARGE_TEXT]
    assert seen["size"] == "large"
    assert seen["start_text"] == "Start"
    assert f"/user/{name}/" in seen["url_after_submit"] or "spawn-pending" in seen["url_after_submit"]

    # the hub starts the server with exactly those options
    await wait_for_spawn(hub, hub.users[name], "")
    r = await api_request(hub, "users", name)
    server = api_json(r)["servers"][""]
    assert server["user_options"] == {"profile": "app-09", "choices": {"size": "large"}}
    assert spawner.user_options == {"profile": "app-09", "choices": {"size": "large"}}

    r = await api_request(hub, "users", name, "server", method="delete")
    assert r.status_code in (202, 204), r.text
    deadline = time.monotonic() + 60
    while (spawner.pending or spawner.active) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not spawner.active


def _pick_with_the_mouse(url: str, name: str) -> dict:
    """Log in, then change selects of a card that is not the chosen one, with the mouse."""
    seen: dict = {}
    browser = chromium()
    try:
        wait = log_in(browser, url, name)
        wait.until(EC.visibility_of_element_located((By.ID, "tycho-filter-input")))
        card = browser.find_element(By.CSS_SELECTOR, '.tycho-card[data-profile="app-03"]')
        resources = card.find_element(By.CSS_SELECTOR, ".tycho-resources-text")
        seen["resources"] = [resources.text]
        Select(card.find_element(By.NAME, "app-03.gpu")).select_by_value("one")
        seen["resources"].append(resources.text)
        Select(card.find_element(By.NAME, "app-03.size")).select_by_value("large")
        seen["resources"].append(resources.text)
        seen["checked"] = [r.get_attribute("value") for r in browser.find_elements(By.NAME, "profile") if r.is_selected()]
        # typing in another card's image field chooses that card
        image = browser.find_element(By.NAME, "app-05.image")
        image.clear()
        image.send_keys("python:3.12")
        seen["checked_after_typing"] = [r.get_attribute("value") for r in browser.find_elements(By.NAME, "profile")
                                        if r.is_selected()]
        # the chosen card's selects are Tab stops; the others' are skipped by Tab
        seen["tab_stops"] = sorted(s.get_attribute("name") for s in browser.find_elements(By.CSS_SELECTOR, ".tycho-control")
                                   if s.get_attribute("tabindex") != "-1")
    finally:
        browser.quit()
    return seen


async def test_changing_another_cards_options_chooses_it_and_shows_what_they_give(hub):
    name = "formmouse"
    catalog = merge(many_entries(30), {"app-05": {"choices": {"image": {
        "kind": "image", "display_name": "Python image", "pattern": r"python:3\.1[0-9]", "default": "python:3.11"}}}})
    await _user_with_thirty_entries(hub, name, catalog)
    url = public_url(hub, path=f"hub/spawn/{name}")
    seen = await asyncio.to_thread(_pick_with_the_mouse, url, name)
    # two choices change this entry's resources (size and GPU): the line follows both
    assert seen["resources"] == [SMALL_TEXT, SMALL_TEXT + ", 1 GPU", LARGE_TEXT + ", 1 GPU"]
    assert seen["checked"] == ["app-03"]
    assert seen["checked_after_typing"] == ["app-05"]
    assert seen["tab_stops"] == ["app-05.image", "app-05.size"]
