"""The page at ``/`` in a real headless browser (Selenium + Debian's chromium and
chromium-driver, over a real uvicorn process): find products, build a basket, see the
recommendations with their reasons and the similar items of one, then the model card with
its verdict, checks and audit pictures; a server with an API key, which the page asks
for; and the API's /docs (Swagger UI) rendering its operations. The browser resolves no
host but 127.0.0.1: the page and /docs must work with no network. Skipped where chromium, chromedriver or selenium are missing (``.ci/run`` installs
them on Debian)."""

from __future__ import annotations

import shutil
from contextlib import contextmanager

import pandas as pd
import pytest

from tests.serving.conftest import running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
KEY = "browser-key-93c1"
WAIT_S = 20

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def served(releases, server_logs):
    yield from running(releases("itemknn"), server_logs / "page.log", kind="itemknn")


@pytest.fixture(scope="module")
def catalog(served) -> pd.DataFrame:
    return pd.read_parquet(served.release / "items.parquet").set_index("item_id", drop=False)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-extensions", "--no-first-run", "--disable-background-networking",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):  # no network beyond the server
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, message: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(lambda d: condition(d), message=message)


def entries(driver, list_id: str):
    return driver.find_elements(By.CSS_SELECTOR, f"#{list_id} > li")


def ids_of(driver, list_id: str) -> list[str]:
    return [e.get_attribute("data-item-id") for e in entries(driver, list_id)]


def search(driver, query: str) -> None:
    field = driver.find_element(By.ID, "search-input")
    field.clear()
    field.send_keys(query)
    driver.find_element(By.ID, "search-button").click()
    wait(driver, lambda d: f"“{query}”" in d.find_element(By.ID, "search-summary").text, f"no search answer for {query!r}")


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_basket_recommendations_similar_items_and_model_card(browser, served, catalog):
    brand = catalog["brand"].value_counts().index[0]
    browser.get(f"{served.url}/")
    wait(browser, lambda d: "itemknn" in d.find_element(By.ID, "release-info").text, "the release line never showed")
    wait(browser, lambda d: entries(d, "results"), "the catalog never listed")

    # search by brand: every listed item has it
    search(browser, brand.lower())
    assert ids_of(browser, "results") and all(catalog.loc[i, "brand"] == brand for i in ids_of(browser, "results"))

    # strings from the server or the user go in as text: markup typed into the search stays text
    search(browser, "<img src=x onerror=alert(1)>")
    assert browser.find_elements(By.CSS_SELECTOR, "#search-summary *") == []
    assert "0 item(s)" in browser.find_element(By.ID, "search-summary").text

    # two items of the brand into the basket, in order
    search(browser, brand)
    add_buttons = browser.find_elements(By.CSS_SELECTOR, "#results > li button.add")
    chosen = ids_of(browser, "results")[:2]
    add_buttons[0].click()
    wait(browser, lambda d: ids_of(d, "basket") == chosen[:1], "the first item never reached the basket")
    add_buttons[1].click()
    wait(browser, lambda d: ids_of(d, "basket") == chosen, "the basket does not hold the two items in order")
    assert not add_buttons[0].is_enabled() and add_buttons[0].text == "In basket"

    # its recommendations: catalog items with reasons, none of the basket
    wait(browser, lambda d: "2 basket item(s) used" in d.find_element(By.ID, "recs-summary").text and entries(d, "recommendations"),
         "no recommendations for the basket")
    recommended = ids_of(browser, "recommendations")
    assert len(recommended) == 10 and len(set(recommended)) == 10
    assert not set(recommended) & set(chosen)
    assert all(i in catalog.index for i in recommended)
    reasons = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#recommendations > li .reason")]
    assert len(reasons) == len(recommended) and all(reasons)
    assert any(any(f"({i})" in r for i in chosen) or brand in r for r in reasons), reasons  # a basket item, by name (id)

    # the similar items of the first recommendation
    browser.find_element(By.CSS_SELECTOR, "#recommendations > li button.similar").click()
    wait(browser, lambda d: d.find_element(By.ID, "similar-box").is_displayed() and entries(d, "similar"), "no similar items")
    assert catalog.loc[recommended[0], "name"] in browser.find_element(By.ID, "similar-title").text  # by its catalog name
    similar = ids_of(browser, "similar")
    assert recommended[0] not in similar and all(i in catalog.index for i in similar)
    assert all(e.text for e in browser.find_elements(By.CSS_SELECTOR, "#similar > li .reason"))

    # removing an item updates the basket and its recommendations
    browser.find_element(By.CSS_SELECTOR, "#basket > li button.remove").click()
    wait(browser, lambda d: ids_of(d, "basket") == chosen[1:], "the item was not removed")
    wait(browser, lambda d: "1 basket item(s) used" in d.find_element(By.ID, "recs-summary").text, "recommendations not redrawn")

    # the model card: verdict, checks with thresholds, metrics with intervals, pictures
    browser.find_element(By.ID, "tab-card").click()
    wait(browser, lambda d: d.find_element(By.ID, "verdict").text == "Release verdict: passed", "no verdict")
    assert not browser.find_element(By.ID, "view-shop").is_displayed()
    checks = browser.find_elements(By.CSS_SELECTOR, "#checks tbody tr")
    assert checks and all(len(row.find_elements(By.TAG_NAME, "td")) == 5 for row in checks)
    assert any("≥" in row.text for row in checks)
    assert any("[" in row.text for row in browser.find_elements(By.CSS_SELECTOR, "#metrics tbody tr"))
    assert "differential privacy" in browser.find_element(By.ID, "privacy").text
    assert browser.find_elements(By.CSS_SELECTOR, "#intended-use li") and browser.find_elements(By.CSS_SELECTOR, "#limitations li")
    loaded = wait(browser, lambda d: d.execute_script(
        "const imgs = [...document.querySelectorAll('#pictures img')];"
        "return imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 0) ? imgs.map(i => i.dataset.picture) : null;"),
        "the audit pictures did not load")
    assert sorted(loaded) == ["exposure_curve.png", "group_utility.png", "popularity.png"]
    assert console_errors(browser) == []


def test_with_an_api_key_the_page_asks_for_it(browser, releases, server_logs):
    with contextmanager(running)(releases("itemknn"), server_logs / "page_key.log", kind="itemknn", api_key=KEY) as server:
        browser.get(f"{server.url}/")
        wait(browser, lambda d: "API key" in d.find_element(By.ID, "status").text, "no request for the key")
        assert entries(browser, "results") == []

        browser.find_element(By.ID, "api-key").send_keys(KEY)
        browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        wait(browser, lambda d: entries(d, "results") and entries(d, "recommendations"), "the key did not unlock the page")
        assert browser.execute_script("return sessionStorage.getItem('fedrec.apiKey')") == KEY
        assert "fallback" in browser.find_element(By.ID, "recs-summary").text  # an empty basket: the popular items

        browser.find_element(By.ID, "tab-card").click()
        wait(browser, lambda d: d.execute_script(
            "const imgs = [...document.querySelectorAll('#pictures img')];"
            "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"), "pictures did not load with the key")
        browser.get_log("browser")  # the 401s before the key was given are expected console errors


def test_the_api_docs_render_with_no_network(browser, served):
    browser.get(f"{served.url}/docs")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"), "Swagger UI listed no operation")

    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock-summary-path")}
    assert {"/recommend", "/items/{item_id}/similar", "/items", "/livez", "/readyz"} <= paths
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(served.url + "/") for url in loaded), loaded
    assert console_errors(browser) == []
