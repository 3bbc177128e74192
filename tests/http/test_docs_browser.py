"""``/docs`` in a real headless Chromium: the page renders from the package alone and a user can predict."""
from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from support.memory import MemoryPlatform
from support.models import Pricer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(  # slow: it starts a browser
    not (CHROMIUM and CHROMEDRIVER),
    reason="no chromium/chromedriver on this machine (the Makefile installs Debian's as root: make browser)")]

WAIT_SECONDS = 20


@pytest.fixture
def live_url(memory: MemoryPlatform) -> Iterator[str]:
    data = Path(__file__).parent.parent / "data"
    import json
    memory.add("auto_pricing", {"1.0.0": Pricer("300.00", "v1")},
                 schemas={"1.0.X": json.loads((data / "schema_quote_v1.json").read_text())},
                 examples={"1.0.X": [{"input": {"vehicle": "suv", "driver_age": 40}, "description": "an SUV"}]})
    server = make_server("127.0.0.1", 0, memory.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def test_docs_page_lists_operations_and_runs_a_predict(browser, live_url: str, memory: MemoryPlatform) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_url + "/docs")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert "modelplatform" in browser.title

    operations = browser.find_elements(By.CSS_SELECTOR, "details.operation")
    operation_ids = {e.get_attribute("data-operation-id") for e in operations}
    assert {"predict_auto_pricing", "predict_auto_pricing_1_0_0", "list_models", "healthz"} <= operation_ids

    pinned = browser.find_element(By.CSS_SELECTOR, 'details[data-operation-id="predict_auto_pricing_1_0_0"]')
    pinned.find_element(By.TAG_NAME, "summary").click()
    body = pinned.find_element(By.TAG_NAME, "textarea")
    assert '"vehicle": "suv"' in body.get_attribute("value")  # prefilled from the config's example
    pinned.find_element(By.CSS_SELECTOR, "button.send").click()
    output = pinned.find_element(By.CSS_SELECTOR, "pre.response")
    wait.until(lambda d: output.get_attribute("data-status"))
    assert output.get_attribute("data-status") == "200", output.text
    assert "version 1.0.0" in output.text and '"premium": 405' in output.text

    # an invalid edit shows the problem document, not a broken page
    body.clear()
    body.send_keys('{"vehicle": 7}')
    pinned.find_element(By.CSS_SELECTOR, "button.send").click()
    wait.until(ec.text_to_be_present_in_element_attribute((By.CSS_SELECTOR,
               'details[data-operation-id="predict_auto_pricing_1_0_0"] pre.response'), "data-status", "422"))
    assert "invalid-input" in output.text

    assert [row["status"] for row in memory.rows()] == ["ok", "invalid_input"]
    # nothing was fetched from anywhere but this server, and the page raised no script errors
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "422" not in e["message"]]
    assert errors == []
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(url.startswith(live_url) for url in resources), resources
