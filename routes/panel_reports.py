"""The admin panel's Usage page (daily requests and tokens per key and provider, from what GET /admin/usage
answers, with the same CSV) and Requests page (the API's recent requests, from utils/requestlog.py)."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from flask import Response, current_app, render_template, request

from routes.panel_base import blueprint
from utils import requestlog, usage
from utils.errors import NotFound, ValidationError

bp = blueprint("panel_reports", __name__)

MAX_DAYS = 366  # days one page charts; longer spans are for the CSV or the API
OUTCOMES = ("ok", "cache_hit", "midstream", "client_closed", "denied", "limited", "rejected", "failed")
CALLERS = {"master": "master key", "public": "public key", "anonymous": "anonymous"}
FILTERS = ("from", "to", "key", "provider")


@bp.get("/panel/usage", endpoint="usage")
def usage_page():
    keys = current_app.extensions["keys"].list()
    by = "provider" if request.args.get("by") == "provider" else "key"
    asked = {name: request.args.get(name, "") for name in FILTERS}
    shown = {"keys": keys, "providers": current_app.extensions["router"].providers, "asked": asked, "by": by}
    try:
        start, end, rows = usage.query(current_app.extensions["keys"], request.args)
        days = day_range(start, end)
    except (ValidationError, NotFound) as error:
        return render_template("admin/usage.html", error=error.message, rows=[], chart=None, **shown), 400
    return render_template("admin/usage.html", rows=rows, start=start, end=end,
                           chart=chart(days, rows, key_label if by == "key" else provider_of),
                           by_key=totals(rows, key_label), by_provider=totals(rows, provider_of),
                           csv_args={k: v for k, v in asked.items() if v}, **shown)


def key_label(row: dict) -> str:
    # Names need not be unique: the id tells two keys apart.
    return f"{row['keyName'] or 'revoked key'} ({row['keyId']})"


def provider_of(row: dict) -> str:
    return row["provider"]


@bp.get("/panel/usage.csv")
def usage_csv():
    start, end, rows = usage.query(current_app.extensions["keys"], request.args)
    return Response(usage.to_csv(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="usage-{start}-to-{end}.csv"'})


def day_range(start: str, end: str) -> list[str]:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    if (last - first).days >= MAX_DAYS:
        raise ValidationError(f"Choose at most {MAX_DAYS} days here (the CSV download and GET /admin/usage "
                              "take any span)", param="from")
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def chart(days: list[str], rows: list[dict], group) -> dict:
    """Per day, each group's requests and tokens: what the page's script stacks into bars."""
    groups: dict[str, dict[str, list[int]]] = {}
    index = {day: n for n, day in enumerate(days)}
    for row in rows:
        series = groups.setdefault(group(row), {"requests": [0] * len(days), "tokens": [0] * len(days)})
        series["requests"][index[row["date"]]] += row["requests"]
        series["tokens"][index[row["date"]]] += row["promptTokens"] + row["completionTokens"]
    return {"days": days, "groups": [{"name": name, **series} for name, series in sorted(groups.items())]}


def totals(rows: list[dict], group) -> list[dict]:
    summed: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("requests", "promptTokens", "completionTokens", "errors"), 0))
    for row in rows:
        for field, total in summed[group(row)].items():
            summed[group(row)][field] = total + row[field]
    return [{"name": name, **figures} for name, figures in sorted(summed.items())]


@bp.get("/panel/requests", endpoint="requests")
def requests_page():
    keys = current_app.extensions["keys"].list()
    names = {k["id"]: k["name"] for k in keys}
    key, outcome = request.args.get("key", ""), request.args.get("outcome", "")
    entries = [dict(entry, who=who(entry, names)) for entry in requestlog.recent(current_app.extensions["store"])
               if (not key or key in (entry["keyId"], entry["caller"])) and (not outcome or entry["outcome"] == outcome)]
    return render_template("admin/requests.html", entries=entries, keys=keys, callers=CALLERS, outcomes=OUTCOMES,
                           key=key, outcome=outcome, limit=requestlog.RECENT_LIMIT)


def who(entry: dict, names: dict[str, str]) -> str:
    if entry["keyId"]:
        return names.get(entry["keyId"], f"revoked key {entry['keyId']}")
    return CALLERS.get(entry["caller"], "no key")
