"""The app's settings page, opened by the emulated portal as its iframe would: portal calendar,
SMS gateway (see also test_sms.py) and date watches, for portal admins only.

The app's clock is a FixedClock (set to now), so a form token's expiry is reached by moving
it, not by waiting.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from app.calendar import FixedClock
from app.pages import FORM_TTL
from handlers import date_watch
from handlers.calendar import country as portal_country


@pytest.fixture
def stack_clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


def token_of(body: str) -> str:
    tokens = set(re.findall(r'name="form_token" value="([^"]+)"', body))
    assert len(tokens) == 1, tokens  # every form of the page carries the same token
    return html.unescape(tokens.pop())


def admin_token(stack) -> str:
    page = stack.open_settings()
    assert page["status"] == 200, page["body"][:300]
    return token_of(page["body"])


def send(stack, token: str, action: str, **fields: str) -> requests.Response:
    data = {"member_id": stack.member_id, "form_token": token, "action": action, **fields}
    return requests.post(f"{stack.app_url}/settings", data=data, timeout=10)


def calendar(stack) -> Any:
    return stack.services.store.get_setting(stack.member_id, "calendar")


def test_page_is_for_admins_and_changes_need_a_fresh_token_of_the_portal(stack) -> None:
    stack.install()
    page = stack.open_settings(user_id=2)  # a seeded employee, not an admin
    assert page["status"] == 403 and "administrator" in page["body"]
    assert "form_token" not in page["body"]

    page = stack.open_settings()
    assert page["status"] == 200
    for section in ("Portal calendar", "SMS gateway", "Date watches"):
        assert section in page["body"]
    token = token_of(page["body"])
    expires, _, signature = token.partition(".")

    good = {"timezone": "Europe/Warsaw", "country": "PL"}
    other = "B" if signature[0] == "A" else "A"
    forged = send(stack, f"{expires}.{other}{signature[1:]}", "calendar", **good)
    assert forged.status_code == 403 and "expired" in forged.text
    longer = send(stack, f"{int(expires) + 3600}.{signature}", "calendar", **good)
    assert longer.status_code == 403  # the expiry is signed too
    no_token = send(stack, "", "add_watch", field="UF_CRM_X", stage="WON")
    assert no_token.status_code == 403
    stack.services.clock.advance(timedelta(seconds=FORM_TTL + 1))
    expired = send(stack, token, "calendar", **good)
    assert expired.status_code == 403 and "Open the page again" in expired.text
    assert calendar(stack) is None
    assert date_watch.watches(stack.services.store, stack.member_id) == []
    assert "x-frame-options" not in {k.lower() for k in expired.headers}

    fresh = admin_token(stack)
    unknown = send(stack, fresh, "drop_everything")
    assert unknown.status_code == 400 and "Unknown action" in unknown.text
    saved = send(stack, fresh, "calendar", **good)
    assert saved.status_code == 200, saved.text[:500]
    assert calendar(stack) == {"timezone": "Europe/Warsaw", "country": "PL"}


def test_calendar_is_validated_stored_and_read_by_the_portals_context(stack) -> None:
    stack.install()
    token = admin_token(stack)

    bad_zone = send(stack, token, "calendar", timezone="Europe/Atlantis", country="PL")
    assert bad_zone.status_code == 400
    assert "unknown time zone &#39;Europe/Atlantis&#39;" in bad_zone.text
    bad_country = send(stack, token, "calendar", timezone="Europe/Warsaw", country="XX")
    assert bad_country.status_code == 400
    assert "no public holidays known for country &#39;XX&#39;" in bad_country.text
    no_zone = send(stack, token, "calendar", timezone=" ", country="PL")
    assert no_zone.status_code == 400 and "a time zone is required" in no_zone.text
    markup = send(stack, token, "calendar", timezone="<b>x</b>", country="PL")
    assert markup.status_code == 400 and "<b>x</b>" not in markup.text
    assert "&lt;b&gt;x&lt;/b&gt;" in markup.text
    assert calendar(stack) is None  # nothing stored by a refused form

    saved = send(stack, token, "calendar", timezone="America/New_York", country="us")
    assert saved.status_code == 200, saved.text[:500]
    assert "Saved: time zone America/New_York, public holidays of US." in saved.text
    assert calendar(stack) == {"timezone": "America/New_York", "country": "US"}
    assert 'name="timezone" value="America/New_York"' in saved.text
    cal = stack.context().calendar
    assert cal.tz == ZoneInfo("America/New_York") and cal.country == "US"
    assert not cal.is_working_day(datetime(2026, 7, 3).date())  # Independence Day (observed)
    assert portal_country(stack.context()) == "US"  # SMS reads the same


def test_sms_country_comes_from_the_calendar_and_the_old_setting_only_until_then(stack) -> None:
    stack.install()
    store = stack.services.store
    store.set_setting(stack.member_id, "sms_country", "PL")  # set by an older version
    page = stack.open_settings()
    assert 'name="country" value="PL"' in page["body"]  # offered for the calendar
    assert portal_country(stack.context()) == "PL"

    token = token_of(page["body"])
    saved = send(stack, token, "calendar", timezone="Europe/Berlin", country="")
    assert saved.status_code == 200 and "no public holidays" in saved.text
    assert calendar(stack) == {"timezone": "Europe/Berlin", "country": ""}
    assert portal_country(stack.context()) == ""  # the calendar decides
    assert store.get_setting(stack.member_id, "sms_country") == "PL"  # never written again
    saved = send(stack, token, "calendar", timezone="Europe/Berlin", country="DE")
    assert portal_country(stack.context()) == "DE"
    assert stack.context().calendar.country == "DE"


def test_watches_are_listed_added_refused_with_a_reason_and_removed(stack) -> None:
    stack.install()
    store = stack.services.store
    token = admin_token(stack)
    assert "No date watches yet." in stack.open_settings()["body"]

    added = send(
        stack, token, "add_watch", name="<script>alert(1)</script>", category_id="0",
        field="uf_crm_warranty_end", within_days="3", working_days="1", then="move",
        stage="LOSE", trigger="date_due",
    )  # fmt: skip
    assert added.status_code == 200, added.text[:500]
    assert "Watching: funnel 0: 3 working days before UF_CRM_WARRANTY_END" in added.text
    [watch] = date_watch.watches(store, stack.member_id)
    assert (watch.category_id, watch.field, watch.within_days, watch.working_days) == (
        0, "UF_CRM_WARRANTY_END", 3, True,
    )  # fmt: skip
    assert (watch.action, watch.target, watch.name) == ("move", "LOSE", "<script>alert(1)</script>")
    assert "<script>" not in added.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in added.text
    row = re.search(rf'<tr id="watch-{watch.id}">(.*?)</tr>', added.text).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[1:7] == [
        "0", "UF_CRM_WARRANTY_END", "3 working days before the date", "move to stage", "LOSE",
        "not yet",
    ]  # fmt: skip
    assert "<th>Stage or trigger</th><th>Last checked</th>" in added.text

    fired = send(
        stack, token, "add_watch", category_id="0", field="CLOSEDATE", within_days="-1",
        then="trigger", stage="", trigger="date_due",
    )  # fmt: skip
    assert fired.status_code == 200 and "1 day after CLOSEDATE, fire date_due" in fired.text
    assert "<td>1 day after the date</td>" in fired.text

    for fields, reason in [
        ({"field": "TITLE", "then": "move", "stage": "WON"}, "must be a deal user field"),
        ({"field": "UF_CRM_X", "then": "move", "stage": ""}, "a stage to move the deals to"),
        ({"field": "UF_CRM_X", "category_id": "2", "then": "move", "stage": "WON"},
         "stage WON is not a stage of funnel 2"),
        ({"field": "UF_CRM_X", "then": "trigger", "trigger": "nope"}, "trigger nope is not"),
        ({"field": "UF_CRM_X", "then": "move", "stage": "WON", "within_days": "three"},
         "the number of days must be a whole number"),
        ({"field": "UF_CRM_X", "then": "move", "stage": "WON", "category_id": "two"},
         "Not added: the funnel id must be a whole number."),
        ({"field": "UF_CRM_X", "then": "explode"}, "unknown action"),
    ]:  # fmt: skip
        refused = send(stack, token, "add_watch", **fields)
        assert refused.status_code == 400, (fields, refused.text[:300])
        assert reason in html.unescape(refused.text), (fields, refused.text[-1500:])
    assert len(date_watch.watches(store, stack.member_id)) == 2

    # The hourly sweep runs: the list shows when (in the portal's time zone, UTC here).
    stack.enqueue("schedule", {"schedule": "date_watch"})
    stack.settle()
    page = stack.open_settings()["body"]
    row = re.search(rf'<tr id="watch-{watch.id}">(.*?)</tr>', page).group(1)
    swept = datetime.fromtimestamp(stack.services.clock.now().timestamp(), UTC)
    assert swept.strftime("%Y-%m-%d %H:%M UTC") in row

    removed = send(stack, token, "remove_watch", watch_id=str(watch.id))
    assert removed.status_code == 200 and f"Watch {watch.id} removed." in removed.text
    assert f'id="watch-{watch.id}"' not in removed.text
    assert [w.field for w in date_watch.watches(store, stack.member_id)] == ["CLOSEDATE"]
    again = send(stack, token, "remove_watch", watch_id=str(watch.id))
    assert again.status_code == 400 and "not there" in again.text
    not_a_number = send(stack, token, "remove_watch", watch_id="one")
    assert not_a_number.status_code == 400
    assert "Not removed: the watch id must be a whole number." in not_a_number.text


def gateway_blocks(body: str) -> dict[str, str]:
    """The SMS section's gateways: each one's ``<details>`` opening tag by the gateway's name."""
    blocks = re.findall(r'(<details class="gateway"[^>]*>)\s*<summary>.*?value="([a-z]+)"', body)
    return {name: tag for tag, name in blocks}


def test_sms_gateways_are_folded_and_the_chosen_one_is_open(stack) -> None:
    stack.install()
    page = stack.open_settings()["body"]
    blocks = gateway_blocks(page)
    assert list(blocks) == ["serwersms", "smsru", "twilio", "http"]
    assert not [tag for tag in blocks.values() if " open" in tag]  # none chosen: all closed
    assert "No gateway is chosen yet: open one, select it and fill in its settings." in page
    assert "Set the portal calendar's country: numbers without + cannot be read until then." in (
        page
    )
    assert 'name="smsru.api_id"' in page and 'name="http.url"' in page  # every field is there

    saved = send(stack, token_of(page), "sms", gateway="smsru", **{"smsru.api_id": "k"})
    assert saved.status_code == 200, saved.text[-1500:]
    assert "Saved: SMS messages go through SMS.ru." in saved.text
    blocks = gateway_blocks(saved.text)
    assert [name for name, tag in blocks.items() if " open" in tag] == ["smsru"]
    assert "No gateway is chosen yet" not in saved.text
    assert re.search(r'<summary><label class="inline"><input type="radio" name="gateway" '
                     r'value="smsru" checked', saved.text)  # fmt: skip

    refused = send(stack, token_of(page), "sms", gateway="twilio", **{"twilio.account_sid": "AC1"})
    assert refused.status_code == 400
    assert "Not saved: twilio: missing settings: auth_token." in refused.text
