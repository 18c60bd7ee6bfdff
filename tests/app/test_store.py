"""The store on a real database: tokens encrypted at rest, settings, runs, uninstall."""

from __future__ import annotations

from sqlalchemy import select

from app.store import Store, installations, portal_settings

SECRET = "s" * 32


def install(store: Store, member_id: str = "m1", token: str = "app-token") -> None:
    store.save_installation(
        member_id=member_id,
        domain=f"{member_id}.bitrix24.test",
        client_endpoint=f"https://{member_id}.bitrix24.test/rest/",
        server_endpoint="",
        application_token=token,
        access_token="access-secret",
        refresh_token="refresh-secret",
        expires_at=123.0,
        scope="crm,bizproc",
    )


def test_tokens_are_encrypted_at_rest_and_read_back(database_url: str) -> None:
    store = Store(database_url, SECRET)
    install(store)
    with store.engine.connect() as db:
        row = db.execute(select(installations)).mappings().one()
    raw = " ".join(str(v) for v in row.values())
    for secret in ("access-secret", "refresh-secret", "app-token"):
        assert secret not in raw
    inst = store.installation("m1")
    assert inst is not None and inst.token_matches("app-token") and not inst.token_matches("x")
    assert "app-token" not in repr(inst)


def test_settings_are_encrypted_and_per_portal(database_url: str) -> None:
    store = Store(database_url, SECRET)
    store.set_setting("m1", "gateway", {"password": "hunter2"})
    store.set_setting("m2", "gateway", {"password": "other"})
    store.set_setting("m1", "gateway", {"password": "changed"})
    assert store.get_setting("m1", "gateway") == {"password": "changed"}
    assert store.get_setting("m2", "gateway") == {"password": "other"}
    assert store.get_setting("m3", "gateway", "none") == "none"
    with store.engine.connect() as db:
        values = [r.value for r in db.execute(select(portal_settings))]
    assert values and not any("changed" in v or "hunter2" in v for v in values)


def test_uninstall_wipes_tokens_and_clean_wipes_data(database_url: str) -> None:
    store = Store(database_url, SECRET)
    install(store, "m1")
    install(store, "m2")
    store.set_setting("m1", "k", 1)
    store.set_setting("m2", "k", 2)
    store.record_run(member_id="m1", kind="robot", name="r", status="ok", started_at=0)
    store.deactivate("m1")
    assert store.installation("m1") is None
    assert store.installation("m1", active_only=False) is not None
    assert store.load_tokens("m1") is None
    assert store.get_setting("m1", "k") == 1  # kept without CLEAN
    store.deactivate("m1", clean=True)
    assert store.installation("m1", active_only=False) is None
    assert store.get_setting("m1", "k") is None and store.runs("m1") == []
    assert store.get_setting("m2", "k") == 2 and store.installation("m2") is not None


def test_reinstall_replaces_tokens(database_url: str) -> None:
    store = Store(database_url, SECRET)
    install(store, "m1", token="old")
    store.deactivate("m1")
    install(store, "m1", token="new")
    inst = store.installation("m1")
    assert inst is not None and inst.token_matches("new")


def test_a_store_opened_with_another_key_cannot_read_tokens(database_url: str) -> None:
    install(Store(database_url, SECRET))
    other = Store(database_url, "t" * 32)
    try:
        other.installation("m1")
    except Exception as exc:
        assert "SECRET_KEY" in str(exc)
    else:
        raise AssertionError("tokens were readable with a different SECRET_KEY")


def test_runs_are_recorded_and_found_by_key(database_url: str) -> None:
    store = Store(database_url, SECRET)
    store.record_run(
        member_id="m1",
        kind="robot",
        name="copy_deal",
        document="DEAL_1",
        key="robot:tok",
        inputs={"a": 1},
        result={"deal_id": 2},
        status="ok",
        started_at=1.0,
        finished_at=1.5,
    )
    run = store.run_by_key("robot:tok")
    assert run is not None and run["result"] == {"deal_id": 2} and run["duration_ms"] == 500
    assert store.run_by_key("robot:other") is None
