import json, time, requests
from tests.test_panel_browser import *  # noqa
from tests.test_panel_browser import gateway, browser, signed_in  # fixtures
from tests.gateway import MASTER_KEY

def logs(b):
    return [e["message"] for e in b.get_log("browser")]

def test_explore(signed_in, gateway):
    b = signed_in
    out = {}
    out["cookies"] = b.get_cookies()
    key = create_key(b, "eve")
    out["newkey_logs"] = logs(b)
    go(b, "Keys")
    click(b, button(row(b, "eve"), "Edit"))
    out["edit_logs"] = logs(b)
    for v in ("2027-01-01T00:00", "2027-01-01", "2027-01-01 10:00"):
        f = labelled(b, "Expires"); f.clear(); f.send_keys(v)
        click(b, button(b, "Save"))
        out["expires " + v] = b.find_element(By.TAG_NAME, "h1").text + " | " + (b.find_elements(By.CSS_SELECTOR, ".notice, .error")[0].text)
        go(b, "Keys"); click(b, button(row(b, "eve"), "Edit"))
        out["expires shown " + v] = labelled(b, "Expires").get_attribute("value")
    # resave unchanged
    click(b, button(b, "Save"))
    out["resave"] = b.find_elements(By.CSS_SELECTOR, ".notice, .error")[0].text
    go(b, "Keys"); click(b, button(row(b, "eve"), "Edit"))
    f = labelled(b, "Tokens per day"); f.clear(); f.send_keys("1")
    f = labelled(b, "Expires"); f.clear()
    click(b, button(b, "Save"))
    r1 = chat(gateway, key); r2 = chat(gateway, key)
    out["tokens per day"] = [r1.status_code, r2.status_code, r2.text[:200]]
    go(b, "Keys"); click(b, button(row(b, "eve"), "Edit"))
    f = labelled(b, "Tokens per day"); f.clear()
    f = labelled(b, "Max concurrent"); f.clear(); f.send_keys("0")
    click(b, button(b, "Save"))
    out["maxconc0"] = b.find_elements(By.CSS_SELECTOR, ".notice, .error")[0].text
    out["maxconc0 chat"] = chat(gateway, key).status_code
    # revoke page
    go(b, "Keys"); click(b, button(row(b, "eve"), "Revoke"))
    out["revoke_logs"] = logs(b)
    b.get(gateway.url + "/admin/panel/keys/nope/edit")
    out["404"] = b.find_element(By.TAG_NAME, "main").text
    out["404_logs"] = logs(b)
    b.get(gateway.url + "/admin")
    out["noslash"] = (b.current_url, b.find_element(By.TAG_NAME, "h1").text)
    b.get(gateway.url + "/admin/panel/usage?by=provider")
    out["usage_provider_logs"] = logs(b)
    b.get(gateway.url + "/admin/panel/usage?from=2020-13-01")
    out["usage_bad"] = b.find_element(By.TAG_NAME, "main").text[:300]
    b.get(gateway.url + "/admin/panel/requests?outcome=ok")
    out["req_logs"] = logs(b)
    b.get(gateway.url + "/admin/panel/nothing")
    out["unknown"] = b.page_source[:300]
    b.get(gateway.url + "/admin/")
    time.sleep(6)
    out["overview_logs"] = logs(b)
    json.dump(out, open("/tmp/panelx/out.json", "w"), indent=1, default=str)


def test_race(start_gateway):
    import re, concurrent.futures as cf
    from tests.databases import REDIS_URL
    import redis
    redis.Redis.from_url(REDIS_URL).flushdb()
    g = start_gateway(providers=["groq"], workers=2, REDIS_URL=REDIS_URL)
    sessions = []
    for _ in range(150):
        s = requests.Session()
        form = s.get(f"{g.url}/admin/", timeout=10).text
        sessions.append((s, re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)))
    def go(arg):
        s, tok = arg
        return s.post(f"{g.url}/admin/panel/sign-in", data={"csrf_token": tok, "master_key": "wrong"},
                      allow_redirects=False, timeout=10, headers={"Connection": "close"}).status_code
    with cf.ThreadPoolExecutor(150) as ex:
        codes = list(ex.map(go, sessions))
    print("CODES", sorted(codes))
    assert codes.count(401) <= 4


def wide(b):
    return b.execute_script("return [...document.querySelectorAll('body *')].filter(e => "
        "e.getBoundingClientRect().right > innerWidth + 1 && !e.closest('.table-wrap'))"
        ".map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))"), \
        b.execute_script("return document.documentElement.scrollWidth")


def test_phone(signed_in, gateway):
    b = signed_in
    out = {}
    key = create_key(b, "frank with a rather long name that goes on and on and on")
    for width in (320, 390):
        b.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": True})
        b.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        go(b, "Keys")
        labelled(b, "Name").send_keys("x" * 60)
        click(b, button(b, "Create key"))
        out[f"{width} newkey"] = wide(b); b.save_screenshot(f"/tmp/panelx/newkey{width}.png")
        for page in ("Overview", "Keys", "Usage", "Requests"):
            go(b, page); out[f"{width} {page}"] = wide(b); b.save_screenshot(f"/tmp/panelx/{page}{width}.png")
        go(b, "Keys")
        click(b, button(row(b, "x" * 60), "Edit"))
        out[f"{width} edit"] = wide(b); b.save_screenshot(f"/tmp/panelx/edit{width}.png")
        go(b, "Keys")
        click(b, button(row(b, "x" * 60), "Revoke"))
        out[f"{width} revoke"] = wide(b); b.save_screenshot(f"/tmp/panelx/revoke{width}.png")
        click(b, button(b, "Revoke"))
        b.get(gateway.url + "/admin/panel/keys/nope/edit")
        out[f"{width} error"] = wide(b)
    b.delete_all_cookies(); b.get(gateway.url + "/admin/")
    out["signin"] = wide(b); b.save_screenshot("/tmp/panelx/signin320.png")
    out["logs"] = [e["message"] for e in b.get_log("browser")]
    b.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    b.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    json.dump(out, open("/tmp/panelx/phone.json", "w"), indent=1, default=str)


def test_keyboard(signed_in, gateway):
    b = signed_in
    go(b, "Keys")
    seq = []
    body = b.find_element(By.TAG_NAME, "body")
    for _ in range(20):
        b.switch_to.active_element.send_keys(Keys.TAB)
        el = b.switch_to.active_element
        seq.append(el.tag_name + ":" + (el.text or el.get_attribute("name") or el.get_attribute("id") or ""))
    json.dump(seq, open("/tmp/panelx/kbd.json", "w"), indent=1)


def test_csv(signed_in, gateway, tmp_path):
    b = signed_in
    b.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": "/tmp/panelx/dl"})
    go(b, "Usage")
    b.find_element(By.LINK_TEXT, "Download CSV").click()
    time.sleep(3)
    import os
    json.dump({"files": os.listdir("/tmp/panelx/dl") if os.path.exists("/tmp/panelx/dl") else None,
               "logs": [e["message"] for e in b.get_log("browser")]}, open("/tmp/panelx/csv.json", "w"))


def test_refresh(signed_in, gateway):
    b = signed_in
    key = create_key(b, "gina")
    out = {}
    try:
        b.refresh()
        out["after"] = b.find_element(By.TAG_NAME, "main").text[:400]
    except Exception as e:
        out["exc"] = repr(e)[:500]
    out["names"] = [e.text for e in b.find_elements(By.CSS_SELECTOR, "span.name")]
    r = requests.get(f"{gateway.url}/admin/keys", headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    out["api"] = [k["name"] for k in r["keys"]]
    json.dump(out, open("/tmp/panelx/refresh.json", "w"), indent=1)
