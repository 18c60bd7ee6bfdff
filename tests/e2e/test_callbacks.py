"""Callbacks the app must refuse, replay, uninstall and reinstall, over HTTP."""

from __future__ import annotations

import requests

from app.registry import QUEUES


def robot_form(
    stack,
    *,
    code: str = "copy_deal",
    token: str | None = None,
    member_id: str | None = None,
    event_token: str = "wf1|A1|x.sig",
) -> dict:
    inst = stack.portal.apps[stack.client_id]
    return {
        "workflow_id": "wf1",
        "code": code,
        "document_id[0]": "crm",
        "document_id[1]": "CCrmDocumentDeal",
        "document_id[2]": "DEAL_1",
        "document_type[0]": "crm",
        "document_type[1]": "CCrmDocumentDeal",
        "document_type[2]": "DEAL",
        "event_token": event_token,
        "properties[category_id]": "1",
        "use_subscription": "Y",
        "timeout_duration": "600",
        "ts": "1700000000",
        "auth[member_id]": member_id or stack.member_id,
        "auth[domain]": stack.portal.domain,
        "auth[application_token]": token if token is not None else inst.application_token,
        "auth[access_token]": "user-access",
        "auth[expires_in]": "3600",
    }


def queued(stack) -> int:
    return sum(stack.services.queue(q).count for q in QUEUES)


def test_forged_unknown_and_malformed_callbacks_queue_nothing(stack) -> None:
    stack.install()
    url = f"{stack.app_url}/robots/copy_deal"
    forged = requests.post(url, data=robot_form(stack, token="0" * 32), timeout=5)
    assert forged.status_code == 401 and "application_token" in forged.json()["error_description"]
    unknown = requests.post(url, data=robot_form(stack, member_id="f" * 32), timeout=5)
    assert unknown.status_code == 401 and unknown.json()["error_description"] == "unknown portal"
    broken = robot_form(stack)
    del broken["document_id[2]"]
    answer = requests.post(url, data=broken, timeout=5)
    assert answer.status_code == 400 and "document_id" in answer.json()["error_description"]
    json_body = requests.post(url, json={"code": "copy_deal"}, timeout=5)
    assert json_body.status_code == 400 and "form" in json_body.json()["error_description"]
    junk = requests.post(url, data={"auth]x[": "1"}, timeout=5)
    assert junk.status_code == 400
    other_robot = requests.post(
        f"{stack.app_url}/robots/nope", data=robot_form(stack, code="nope"), timeout=5
    )
    assert other_robot.status_code == 400 and "unknown robot" in other_robot.text
    event = requests.post(
        f"{stack.app_url}/events",
        data={
            "event": "ONAPPUNINSTALL",
            "auth[member_id]": stack.member_id,
            "auth[application_token]": "forged",
            "data[CLEAN]": "1",
        },
        timeout=5,
    )
    assert event.status_code == 401
    assert queued(stack) == 0
    assert stack.services.store.installation(stack.member_id) is not None


def test_a_replayed_event_token_queues_one_job(stack) -> None:
    stack.install()
    url = f"{stack.app_url}/robots/copy_deal"
    first = requests.post(url, data=robot_form(stack), timeout=5)
    again = requests.post(url, data=robot_form(stack), timeout=5)
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == "queued" and again.json()["status"] == "duplicate"
    assert stack.services.queue("robots").count == 1


def test_forged_install_is_not_trusted(stack) -> None:
    """An ONAPPINSTALL with made-up tokens cannot take over a portal's installation."""
    stack.install()
    before = stack.services.store.installation(stack.member_id)
    answer = requests.post(
        f"{stack.app_url}/install",
        data={
            "event": "ONAPPINSTALL",
            "data[VERSION]": "1",
            "data[LANGUAGE_ID]": "en",
            "ts": "1",
            "auth[member_id]": stack.member_id,
            "auth[domain]": "evil.example.com",
            "auth[access_token]": "a" * 32,
            "auth[refresh_token]": "r" * 32,
            "auth[application_token]": "e" * 32,
            "auth[client_endpoint]": "https://evil.example.com/rest/",
        },
        timeout=5,
    )
    assert answer.status_code == 200  # like any install callback: answered at once
    stack.settle()
    after = stack.services.store.installation(stack.member_id)
    assert after.domain == before.domain and after.token_matches(before.application_token)
    assert after.client_endpoint == before.client_endpoint
    run = stack.services.store.runs(stack.member_id, kind="install")[0]
    assert run["status"] == "failed" and "not confirmed" in run["error"]


def test_install_page_installs_too(stack) -> None:
    page = stack.admin.install_app(
        member_id=stack.member_id, client_id=stack.client_id, mode="page"
    )
    stack.settle()
    assert stack.services.store.installation(stack.member_id) is not None
    assert "copy_deal" in stack.registrations()["robots"]
    assert page  # the emulator reports the page POST it made


def test_uninstall_then_reinstall_after_update(stack) -> None:
    stack.install()
    stack.admin.update_app(member_id=stack.member_id, client_id=stack.client_id)
    stack.settle()  # the portal wiped the registrations and sent ONAPPINSTALL again
    reg = stack.registrations()
    assert "copy_deal" in reg["robots"]
    assert any(e["event"] == "ONAPPUNINSTALL" for e in reg["events"])

    stack.admin.uninstall_app(member_id=stack.member_id, client_id=stack.client_id, clean=False)
    stack.settle()
    assert stack.services.store.installation(stack.member_id) is None
    answer = requests.post(f"{stack.app_url}/robots/copy_deal", data=robot_form(stack), timeout=5)
    assert answer.status_code == 401 and queued(stack) == 0


def test_uninstall_with_clean_forgets_the_portal(stack) -> None:
    stack.install()
    stack.services.store.set_setting(stack.member_id, "calendar", {"timezone": "Europe/Warsaw"})
    stack.admin.uninstall_app(member_id=stack.member_id, client_id=stack.client_id, clean=True)
    stack.settle()
    store = stack.services.store
    assert store.installation(stack.member_id, active_only=False) is None
    assert store.get_setting(stack.member_id, "calendar") is None


def test_clean_uninstall_leaves_no_row_of_the_portal_in_any_table(stack) -> None:
    from sqlalchemy import func, select

    from app.store import metadata
    from handlers.date_watch import record_watch

    stack.install()
    store = stack.services.store
    watch = record_watch(
        store,
        stack.member_id,
        category_id=0,
        field="UF_CRM_WARRANTY_END",
        within_days=3,
        action="move",
        target="WON",
    )
    with store.engine.begin() as db:
        db.execute(
            metadata.tables["date_watch_acts"]
            .insert()
            .values(watch_id=watch.id, deal_id=1, due_date="2026-11-12", acted_at=0)
        )
    stack.admin.uninstall_app(member_id=stack.member_id, client_id=stack.client_id, clean=True)
    stack.settle()
    with store.engine.connect() as db:
        for table in metadata.sorted_tables:
            assert db.execute(select(func.count()).select_from(table)).scalar() == 0, table.name


def test_callbacks_with_the_new_token_are_taken_right_after_a_reinstall(stack) -> None:
    """The web layer keeps installations for a few seconds; a reinstall (new
    application_token) must not make it refuse the portal's next callbacks."""
    import time

    stack.install()
    url = f"{stack.app_url}/robots/copy_deal"
    assert requests.post(url, data=robot_form(stack, event_token="a|b|c.1"), timeout=5).ok
    cache = stack.services.installations
    old = cache.get(stack.member_id)
    stack.admin.uninstall_app(member_id=stack.member_id, client_id=stack.client_id)
    stack.settle()
    stack.install()  # the portal issues a new application_token
    # As another web process would still have it: the old installation, kept for a while.
    cache._items[stack.member_id] = (time.monotonic() + 60, old)
    answer = requests.post(url, data=robot_form(stack, event_token="a|b|c.2"), timeout=5)
    assert answer.status_code == 200 and answer.json()["status"] == "queued"
