import json, time, requests
from tests.test_panel_browser import *  # noqa
from tests.test_panel_browser import gateway, browser, signed_in  # fixtures

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
