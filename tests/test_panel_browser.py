"""The admin panel as a person uses it: real headless Chromium (Selenium, Debian's chromium and chromium-driver)
against the gateway under gunicorn, providers on the local fake, API calls through `requests`. One browser and one
gateway serve the whole module; each test makes the keys it needs. Every step leaves a screenshot in
tests/artifacts/panel/ (git-ignored), and no page may log a Content-Security-Policy violation or a script error."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import requests

from tests.gateway import MASTER_KEY, Gateway, fake_env

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="the browser tests need Chromium and chromedriver "
                                "(Debian: apt-get install chromium chromium-driver)")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "panel"
XSS = "<img src=x onerror=alert(1)>"
WAIT = 15  # seconds for what the page shows by itself (the overview refreshes every 5)


@pytest.fixture(scope="module")
def gateway(fake_server, tmp_path_factory):
    gateway = Gateway(fake_env(fake_server, ["groq", "gemini"]), tmp_path_factory.mktemp("panel")).start()
    yield gateway
    gateway.kill()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def signed_in(browser, gateway):
    sign_in(browser, gateway)
    return browser


def sign_in(browser, gateway: Gateway, key: str = MASTER_KEY) -> None:
    browser.delete_all_cookies()
    browser.get(f"{gateway.url}/admin/")
    labelled(browser, "Master key").send_keys(key)
    click(browser, button(browser, "Sign in"))


def loads(browser, action) -> None:
    """Do what loads a new page, and wait until it has replaced this one: the mark put on this page's window
    is gone and the new one has loaded. (Selenium's staleness_of asks about the old element while the page is
    going away, which chromedriver now and then answers with "unhandled inspector error".)"""
    browser.execute_script("window.__leaving = true")
    action()
    WebDriverWait(browser, WAIT, ignored_exceptions=(WebDriverException,)).until(lambda driver: driver.execute_script(
        "return window.__leaving === undefined && document.readyState === 'complete'"))


def click(browser, element) -> None:
    loads(browser, element.click)


def labelled(browser, label: str):
    """The form control a <label> names: how a person (and a screen reader) finds it."""
    found = browser.find_element(By.XPATH, f"//label[normalize-space()='{label}']")
    return browser.find_element(By.ID, found.get_attribute("for"))


def button(scope, text: str):
    return scope.find_element(By.XPATH, f".//button[normalize-space()='{text}']")


def row(browser, name: str):
    return browser.find_element(By.XPATH, f"//tr[.//span[@class='name' and text()={xpath_text(name)}]]")


def xpath_text(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'


def go(browser, link: str) -> None:
    click(browser, browser.find_element(By.XPATH, f"//nav//a[normalize-space()='{link}']"))
    assert browser.find_element(By.TAG_NAME, "h1").text == link


def shot(browser, name: str) -> None:
    """A screenshot of this step, and the console checked: no CSP violation, no script error, no alert."""
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    problems = [entry["message"] for entry in browser.get_log("browser")
                if "Content Security Policy" in entry["message"] or "Uncaught" in entry["message"]]
    assert problems == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


def create_key(browser, name: str) -> str:
    """Create a key on the Keys page; the key, read from where the page shows it once."""
    go(browser, "Keys")
    labelled(browser, "Name").send_keys(name)
    click(browser, button(browser, "Create key"))
    return labelled(browser, "New API key").get_attribute("value")


def chat(gateway: Gateway, key: str) -> requests.Response:
    return requests.post(f"{gateway.url}/chat", json={"messages": [{"role": "user", "content": "hi"}]},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_signing_in_with_the_master_key_shows_the_overview(browser, gateway):
    browser.delete_all_cookies()
    browser.get(f"{gateway.url}/admin/")
    assert browser.switch_to.active_element.get_attribute("id") == "master_key"  # the keyboard starts there
    shot(browser, "01-sign-in")
    loads(browser, lambda: browser.switch_to.active_element.send_keys(MASTER_KEY + Keys.ENTER))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    links = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert links == ["Overview", "Keys", "Usage", "Requests"] and button(browser, "Sign out")
    assert {card.get_attribute("data-provider") for card in browser.find_elements(By.CSS_SELECTOR, "[data-provider]")} \
        == {"groq", "gemini"}
    assert MASTER_KEY not in str(browser.get_cookies())
    shot(browser, "02-overview")
    click(browser, button(browser, "Sign out"))
    assert browser.find_elements(By.ID, "master_key")


def test_a_wrong_master_key_shows_an_error_and_the_fifth_try_is_throttled(browser, start_gateway):
    gateway = start_gateway(providers=["groq"])  # its own, so this address stays welcome at the module's gateway
    for attempt in range(1, 5):
        sign_in(browser, gateway, key=f"wrong-{attempt}")
        assert browser.find_element(By.CSS_SELECTOR, "[role=alert]").text == "Wrong master key."
    shot(browser, "03-wrong-master-key")
    sign_in(browser, gateway)
    assert browser.find_element(By.CSS_SELECTOR, "[role=alert]").text.startswith(
        "Too many wrong master keys from your address: try again in")
    assert not browser.find_elements(By.CSS_SELECTOR, "nav")
    shot(browser, "04-throttled")
    assert "wrong-" not in gateway.log() and MASTER_KEY not in gateway.log()


def test_a_new_key_is_shown_once_copied_and_then_masked(signed_in, gateway):
    browser = signed_in
    key = create_key(browser, "alice")
    assert re.fullmatch(r"sk_[0-9a-f]{48}", key) and labelled(browser, "New API key").text == key
    assert "only time it is shown" in browser.find_element(By.CSS_SELECTOR, ".new-key .warning").text
    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": gateway.url,
                                                         "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    button(browser, "Copy").click()
    WebDriverWait(browser, WAIT).until(lambda b: b.find_element(By.ID, "copy-status").text == "Copied to the clipboard.")
    pasted = browser.execute_async_script("navigator.clipboard.readText().then(arguments[0], e => arguments[0](String(e)))")
    assert pasted == key
    shot(browser, "05-new-key")
    go(browser, "Keys")
    assert key not in browser.page_source
    assert row(browser, "alice").find_element(By.CSS_SELECTOR, ".masked").text == f"{key[:7]}...{key[-4:]}"
    shot(browser, "06-keys-masked")


def test_reloading_the_page_that_shows_a_new_key_neither_shows_it_again_nor_makes_another(signed_in):
    browser = signed_in
    key = create_key(browser, "alma")
    loads(browser, browser.refresh)
    assert key not in browser.page_source and not browser.find_elements(By.ID, "new-key")
    assert len(browser.find_elements(By.XPATH, "//span[@class='name' and text()='alma']")) == 1


def test_a_key_in_use_shows_its_usage_and_the_overview_rises_by_itself(signed_in, gateway):
    browser = signed_in
    key = create_key(browser, "bob")
    go(browser, "Overview")
    before = int(browser.find_element(By.CSS_SELECTOR, "[data-top=totalRequests]").text)
    assert [chat(gateway, key).status_code for _ in range(3)] == [200, 200, 200]
    # No reload: the page's script fetches the figures every few seconds.
    WebDriverWait(browser, WAIT).until(
        lambda b: b.find_element(By.CSS_SELECTOR, "[data-top=totalRequests]").text == str(before + 3))
    served = sum(int(dd.text) for dd in browser.find_elements(By.CSS_SELECTOR, "[data-field=requests]"))
    assert served >= 3 and browser.find_elements(By.CSS_SELECTOR, "svg[data-minutes] rect.bar")
    shot(browser, "07-overview-after-requests")
    go(browser, "Keys")
    assert "3 requests" in row(browser, "bob").text
    go(browser, "Usage")
    usage_row = browser.find_element(By.XPATH, "//caption[text()='By key']/..//th[starts-with(text(), 'bob')]/..")
    assert usage_row.find_elements(By.TAG_NAME, "td")[0].text == "3"
    assert browser.find_elements(By.CSS_SELECTOR, "svg[data-usage=requests] rect.c0, svg[data-usage=requests] rect.c1")
    shot(browser, "08-usage")
    go(browser, "Requests")
    outcomes = [r.find_elements(By.TAG_NAME, "td")[4].text for r in browser.find_elements(By.CSS_SELECTOR, "tbody tr")
                if r.find_elements(By.TAG_NAME, "td")[1].text == "bob"]
    assert outcomes == ["ok", "ok", "ok"]
    shot(browser, "09-requests")


def test_a_budget_set_in_the_edit_form_refuses_the_request_beyond_it(signed_in, gateway):
    browser = signed_in
    key = create_key(browser, "carol")
    go(browser, "Keys")
    click(browser, button(row(browser, "carol"), "Edit"))
    labelled(browser, "Requests per day").send_keys("2")
    labelled(browser, "Tokens per day").send_keys("100000")
    shot(browser, "10-edit-budget")
    click(browser, button(browser, "Save"))
    assert browser.find_element(By.CSS_SELECTOR, ".notice").text == "Saved key 'carol'."
    assert [chat(gateway, key).status_code for _ in range(2)] == [200, 200]
    refused = chat(gateway, key)
    assert (refused.status_code, refused.json()["error"]) == (429, "Daily request budget exhausted")
    browser.refresh()
    assert "2 / 2 requests" in row(browser, "carol").text
    assert row(browser, "carol").find_element(By.CSS_SELECTOR, "meter").get_attribute("value") == "2"
    shot(browser, "11-budget-used")


def test_a_disabled_then_revoked_key_is_refused(signed_in, gateway):
    browser = signed_in
    key = create_key(browser, "dave")
    go(browser, "Keys")
    click(browser, button(row(browser, "dave"), "Disable"))
    assert chat(gateway, key).status_code == 403
    click(browser, button(row(browser, "dave"), "Enable"))
    assert chat(gateway, key).status_code == 200
    click(browser, button(row(browser, "dave"), "Revoke"))
    assert "Revoke “dave”?" in browser.find_element(By.TAG_NAME, "h1").text
    assert chat(gateway, key).status_code == 200  # not yet: only the second Revoke revokes
    assert browser.switch_to.active_element.text == "Cancel"  # so a second Enter does not revoke either
    shot(browser, "12-revoke-confirm")
    click(browser, button(browser, "Revoke"))
    assert "Revoked key 'dave'" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    refused = chat(gateway, key)
    assert (refused.status_code, refused.json()["error"]) == (403, "Invalid or disabled API key")
    assert not browser.find_elements(By.XPATH, "//span[@class='name' and text()='dave']")
    shot(browser, "13-revoked")


def test_a_key_named_like_markup_shows_as_text_and_runs_nothing(signed_in, gateway):
    browser = signed_in
    key = create_key(browser, XSS)
    assert browser.find_element(By.ID, "new-key-title").text == f"Key created for “{XSS}”"
    assert chat(gateway, key).status_code == 200
    for page in ("Keys", "Usage", "Requests"):
        go(browser, page)
        assert XSS in browser.find_element(By.TAG_NAME, "main").text
        assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
        shot(browser, f"14-markup-name-{page.lower()}")  # also: no alert is open


def test_a_form_posted_without_its_csrf_token_is_refused(signed_in):
    browser = signed_in
    go(browser, "Keys")
    browser.execute_script("document.querySelector('form[action$=\"/panel/keys\"] [name=csrf_token]').remove()")
    labelled(browser, "Name").send_keys("mallory")
    click(browser, button(browser, "Create key"))
    assert "security token is missing or out of date" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert browser.find_element(By.TAG_NAME, "h1").text == "Error 403"
    shot(browser, "15-csrf-refused")
    go(browser, "Keys")
    assert "mallory" not in browser.find_element(By.TAG_NAME, "main").text


def on_a_phone(browser, width: int = 390) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": 844,
                                                                    "deviceScaleFactor": 1, "mobile": True})


def test_a_long_name_without_spaces_wraps_on_a_phone_instead_of_widening_the_page(signed_in):
    browser, name = signed_in, "x" * 80
    on_a_phone(browser, 320)
    try:
        create_key(browser, name)
        widths = {"new key": browser.execute_script("return document.documentElement.scrollWidth")}
        for action in ("Edit", "Revoke"):
            go(browser, "Keys")
            click(browser, button(row(browser, name), action))
            widths[action] = browser.execute_script("return document.documentElement.scrollWidth")
        shot(browser, "17-phone-long-name")
        assert widths == {"new key": 320, "Edit": 320, "Revoke": 320}
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_panel_fits_a_phone_in_dark_mode_and_stays_light(signed_in):
    browser = signed_in
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme",
                                                                          "value": "dark"}]})
    on_a_phone(browser)
    try:
        for page in ("Overview", "Keys", "Usage", "Requests"):
            go(browser, page)
            # Wide tables scroll inside their own box; the page itself never scrolls sideways.
            wider = browser.execute_script("return [...document.querySelectorAll('body *')].filter(e => "
                                           "e.getBoundingClientRect().right > innerWidth + 1 && !e.closest('.table-wrap'))"
                                           ".map(e => e.tagName + '.' + e.className)")
            assert wider == [], page
            assert browser.execute_script("return document.documentElement.scrollWidth") <= 390, page
            background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(18, 21, 26)"
            weight = browser.execute_script(
                "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
                ".reduce((sum, e) => sum + e.encodedBodySize, 0)")
            assert 0 < weight < 200_000, page
            shot(browser, f"16-phone-dark-{page.lower()}")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
