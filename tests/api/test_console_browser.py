"""The console in a real browser: Debian's headless Chromium, driven through its chromedriver.

`.ci/run` installs both and sets REQUIRE_BROWSER=1, so in CI a missing browser fails instead of skipping.
`make screenshots` runs this file with CONSOLE_SCREENSHOTS=DIR: a PNG of every page is written there.
"""

import json
import os
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from tests.api.test_http import llm_agent
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 30


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail("chromium and chromium-driver are required (apt-get install chromium chromium-driver)")
        pytest.skip("no chromium/chromedriver here (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    size = "--window-size=1500,1000"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", size):
        options.add_argument(arg)  # --no-sandbox: CI runs as root
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # its profile and the singleton socket it keeps in TMPDIR: in pytest's temporary folders, which pytest
    # prunes, not one more directory in /tmp per run
    own = tmp_path_factory.mktemp("chromium")
    options.add_argument(f"--user-data-dir={own / 'profile'}")
    service = Service(executable_path=DRIVER, env={**os.environ, "TMPDIR": str(own)})
    driver = webdriver.Chrome(service=service, options=options)
    yield driver
    driver.quit()


def wait(driver, css: str, text: str | None = None):  # type: ignore[no-untyped-def]
    """The element matching ``css`` once it is shown (and holds ``text``, when given)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d):  # type: ignore[no-untyped-def]
        for el in d.find_elements(By.CSS_SELECTOR, css):
            if el.is_displayed() and (text is None or text in el.text):
                return el
        return False

    return WebDriverWait(driver, WAIT_S).until(found, f"{css} holding {text!r}")


def shoot(driver, name: str) -> None:  # type: ignore[no-untyped-def]
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def open_page(driver, service, page: str) -> None:  # type: ignore[no-untyped-def]
    driver.get(f"{service.url}/ui#{page}")


def test_the_console_loads_routes_a_query_and_registers_an_agent(browser, service, openai_server):
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, service, "overview")
    wait(driver, "#status", "admin key")  # keys are configured: the page asks for one, and shows nothing else
    driver.find_element(By.ID, "key").send_keys(ADMIN_KEY)
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait(driver, "#requests")
    assert driver.execute_script("return sessionStorage.getItem('swarm_route_key')") == ADMIN_KEY
    assert driver.execute_script("return localStorage.length") == 0, "the key must not outlive the session"

    # Try: the route first (a dry run), then the answer
    open_page(driver, service, "try")
    wait(driver, "#query").send_keys("what is 6 * 7")
    driver.find_element(By.ID, "route-button").click()
    assert "calculator" in wait(driver, "#route", "Chosen").text
    driver.find_element(By.ID, "ask-button").click()
    assert wait(driver, "#answer", "42").text.endswith("= 42")
    wait(driver, "#walk")
    shoot(driver, "try")
    request_id = wait(driver, "#decision h2", "Decision").text.split()[-1]
    query = driver.find_element(By.ID, "query")
    query.clear()
    query.send_keys("what time is it in Tokyo and what is 15% of 80")  # two things: each agent is shown its part
    driver.find_element(By.ID, "route-button").click()
    shown = wait(driver, "#parts", "calculator").text
    assert "“what time is it in Tokyo”" in shown and "“what is 15% of 80”" in shown
    graded = httpx.post(
        f"{service.url}/v1/feedback",
        json={"request_id": request_id, "score": 1.0},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    assert graded.status_code == 202, graded.text  # so the Trails page below has a trail to draw

    # Agents: a registration typed into the page is routable by the next query
    skill = f"knitting{uuid.uuid4().hex[:6]}"  # a topic no other test's agents touch: they share the registry
    examples = ["how to cast on stitches for knitting", "a knitting pattern for a wool scarf", "knit and purl stitches"]
    name = f"knitter-{skill}"
    open_page(driver, service, "agents")
    wait(driver, "#agents-table", "calculator")
    driver.find_element(By.ID, "spec").send_keys(json.dumps(llm_agent(openai_server, name, skill, examples)))
    driver.find_element(By.ID, "register").click()
    wait(driver, "#registered", f"registered {name}")
    wait(driver, "#agents-table", name)
    shoot(driver, "agents")
    open_page(driver, service, "try")
    wait(driver, "#query").send_keys("how do I cast on stitches for a knitted hat")
    driver.find_element(By.ID, "route-button").click()
    try:
        assert name in wait(driver, "#route", "Chosen").text
    finally:
        httpx.delete(f"{service.url}/v1/agents/{name}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)

    # Decisions: the query asked above opens into its walk
    open_page(driver, service, "decisions")
    wait(driver, "tr.clickable", "6 * 7").click()
    assert "calculator" in wait(driver, "#decision", "Candidates").text
    wait(driver, "#walk")
    shoot(driver, "decisions")

    open_page(driver, service, "trails/arithmetic")
    cells = wait(driver, "#heatmap", "calculator/ast-eval").find_elements(By.CSS_SELECTOR, "td.cell[title]")
    assert max(float(c.text.split()[0]) for c in cells) > 1.0  # the graded answer's trail, above τ_init
    shoot(driver, "trails")
    open_page(driver, service, "overview")
    wait(driver, "#requests")
    shoot(driver, "overview")

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
    assert not errors, errors


def test_the_console_fetches_nothing_from_elsewhere(service):
    page = httpx.get(f"{service.url}/ui", timeout=30)
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace('charset="utf-8"', "")
    assert httpx.get(f"{service.url}/ui/static/console.js", timeout=30).headers["content-type"].startswith(
        "text/javascript"
    )
    assert httpx.get(f"{service.url}/ui/static/..%2Fservice.py", timeout=30).status_code == 404
