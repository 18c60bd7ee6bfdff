"""batch over real HTTP: labels, references, halt, errors, limits, fast_bitrix24's encoding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fast_bitrix24 import Bitrix
from fast_bitrix24.server_response import ErrorInServerResponseException

from fakeportal.api import METHODS, ApiError, Call, Page, method
from fakeportal.rest import paginate
from fakeportal.state import Portal
from tests.support import EXAMPLES

NAMES = ("test.batch.add", "test.batch.get", "test.batch.list", "test.batch.fail")


def _add(call: Call) -> int:
    table = call.portal.table("batch_rows")
    new_id = call.portal.next_id("batch_rows")
    table[new_id] = {"ID": str(new_id), **call.params.get("fields", {})}
    return new_id


def _get(call: Call) -> dict[str, Any]:
    row = call.portal.table("batch_rows").get(int(call.get("id", 0) or 0))
    if row is None:
        raise ApiError("", "Not found", 400)
    return row


def _list(call: Call) -> Page:
    rows = [r for _, r in sorted(call.portal.table("batch_rows").items())]
    wanted = call.params.get("filter", {}).get(">ID")
    if wanted is not None:
        rows = [r for r in rows if int(r["ID"]) > int(wanted)]
    return paginate(rows, call.params, wrap=call.params.get("wrap"))


def _fail(call: Call) -> Any:
    raise ApiError("ERROR_TEST", "always fails", 400)


@pytest.fixture(autouse=True)
def batch_methods() -> Iterator[None]:
    for name, handler in zip(NAMES, (_add, _get, _list, _fail), strict=True):
        assert name not in METHODS
        method(name)(handler)
    try:
        yield
    finally:
        for name in NAMES:
            METHODS.pop(name, None)


def _batch(hook: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(hook + "batch", json=body)


def test_labels_results_and_references(fake_webhook: str) -> None:
    reply = _batch(
        fake_webhook,
        {
            "halt": 0,
            "cmd": {
                "a": "test.batch.add?fields[TITLE]=first&fields[TAGS][0]=x",
                "b": "test.batch.add?fields[TITLE]=second%20one&fields[PARENT]=$result[a]",
                "g": "test.batch.get?id=$result[b]",
                "deep": "test.batch.add?fields[TITLE]=$result[g][TITLE]-copy"
                "&fields[FIRST_ID]=$result[l][0][ID]",
                "l": "test.batch.list",
            },
        },
    )
    assert reply.status_code == 200
    body = reply.json()["result"]
    assert body["result"]["a"] == 1 and body["result"]["b"] == 2
    assert body["result"]["g"] == {"ID": "2", "TITLE": "second one", "PARENT": "1"}
    # "l" runs after "deep": its reference stays as sent
    assert body["result"]["deep"] == 3
    assert body["result_error"] == []
    assert body["result_total"] == {"l": 3} and body["result_next"] == []
    assert set(body["result_time"]) == {"a", "b", "g", "deep", "l"}
    assert "operating" in body["result_time"]["a"]
    after = _batch(
        fake_webhook,
        {"cmd": {"l": "test.batch.list", "c": "test.batch.get?id=$result[l][2][ID]"}},
    ).json()["result"]
    assert after["result"]["c"]["TITLE"] == "second one-copy"
    assert after["result"]["c"]["FIRST_ID"] == "$result[l][0][ID]"


def test_cmd_as_array_gives_lists(fake_webhook: str) -> None:
    body = _batch(
        fake_webhook,
        {"cmd": ["test.batch.add?fields[T]=1", "test.batch.add?fields[T]=$result[0]"]},
    ).json()["result"]
    assert body["result"] == [1, 2]
    assert body["result_error"] == []


def test_errors_without_halt_run_on(fake_webhook: str) -> None:
    body = _batch(
        fake_webhook,
        {"halt": 0, "cmd": {"x": "test.batch.fail", "y": "nope.method", "z": "test.batch.add"}},
    )
    assert body.status_code == 200
    data = body.json()["result"]
    assert data["result_error"] == {
        "x": {"error": "ERROR_TEST", "error_description": "always fails"},
        "y": {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"},
    }
    assert data["result"] == {"z": 1}


def test_halt_stops_at_first_error(fake_webhook: str) -> None:
    data = _batch(
        fake_webhook,
        {"halt": 1, "cmd": {"a": "test.batch.add", "x": "test.batch.fail", "z": "test.batch.add"}},
    ).json()["result"]
    assert data["result"] == {"a": 1}
    assert list(data["result_error"]) == ["x"]
    assert "z" not in data["result_time"]


def test_pages_inside_batch(fake_portal: Portal, fake_webhook: str) -> None:
    table = fake_portal.table("batch_rows")
    for i in range(1, 121):
        table[i] = {"ID": str(i)}
    data = _batch(
        fake_webhook,
        {
            "cmd": {
                "p0": "test.batch.list",
                "p2": "test.batch.list?start=100",
                "w": "test.batch.list?wrap=items&start=-1&filter[%3EID]=60",
            }
        },
    ).json()["result"]
    assert len(data["result"]["p0"]) == 50 and len(data["result"]["p2"]) == 20
    assert data["result_total"] == {"p0": 120, "p2": 120, "w": 0}
    assert data["result_next"] == {"p0": 50}
    assert data["result"]["w"]["items"][0] == {"ID": "61"}


def test_fast_bitrix24_encoded_commands(fake_portal: Portal, fake_webhook: str) -> None:
    table = fake_portal.table("batch_rows")
    for i in range(1, 4):
        table[i] = {"ID": str(i), "TITLE": f"T{i}"}
    example = EXAMPLES["batch_request_fast_bitrix24_style"]["payload"]
    cmd = {k: v.replace("crm.deal.list", "test.batch.list") for k, v in example["cmd"].items()}
    cmd["cmd0000000002"] = (
        "test.batch.list?__order=order0000000000&order[ID]=ASC&filter[%3EID]=1&start=0&"
    )
    data = _batch(fake_webhook, {"halt": 0, "cmd": cmd}).json()["result"]
    assert data["result_error"] == []
    assert [r["ID"] for r in data["result"]["cmd0000000002"]] == ["2", "3"]


def test_fast_bitrix24_call_batch_and_errors(fake_webhook: str) -> None:
    client = Bitrix(fake_webhook, verbose=False)
    result = client.call_batch(
        {
            "halt": 0,
            "cmd": {
                "a": "test.batch.add?fields[TITLE]=one",
                "g": "test.batch.get?id=$result[a]",
            },
        }
    )
    assert result["a"] == 1 and result["g"]["TITLE"] == "one"
    with pytest.raises(ErrorInServerResponseException) as caught:
        client.call("test.batch.fail", {"x": 1})
    assert "ERROR_TEST" in str(caught.value)


def test_length_limit_and_nested_batch(fake_portal: Portal, fake_webhook: str) -> None:
    too_long = _batch(fake_webhook, {"cmd": {f"c{i}": "server.time" for i in range(51)}})
    assert too_long.status_code == 400
    assert too_long.json() == {
        "error": "ERROR_BATCH_LENGTH_EXCEEDED",
        "error_description": "Max batch length exceeded",
    }
    fifty = _batch(fake_webhook, {"cmd": {f"c{i}": "server.time" for i in range(50)}})
    assert fifty.status_code == 200 and len(fifty.json()["result"]["result"]) == 50
    nested = _batch(
        fake_webhook, {"cmd": {"n": "batch?cmd[a]=server.time", "t": "server.time"}}
    ).json()["result"]
    assert nested["result_error"]["n"] == {
        "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
        "error_description": "Method is not allowed for batch usage",
    }
    assert "t" in nested["result"]


def test_batch_via_form_and_query(fake_webhook: str) -> None:
    form = {
        "halt": "0",
        "cmd[a]": "test.batch.add?fields[TITLE]=f",
        "cmd[g]": "test.batch.get?id=$result[a]",
    }
    by_form = requests.post(fake_webhook + "batch", data=form).json()["result"]
    assert by_form["result"]["g"]["TITLE"] == "f"
    by_query = requests.get(fake_webhook + "batch.json", params=form).json()["result"]
    assert by_query["result"]["g"]["ID"] == "2"


def test_inner_calls_counted_per_method(fake_portal: Portal, fake_webhook: str) -> None:
    _batch(
        fake_webhook, {"cmd": {"a": "test.batch.add", "b": "test.batch.add", "t": "server.time"}}
    )
    assert fake_portal.request_total == 1
    assert fake_portal.requests["batch"] == 1
    assert fake_portal.requests["test.batch.add"] == 2
    assert fake_portal.requests["server.time"] == 1


def test_scope_errors_inside_batch_have_empty_description(
    fake_world: Any, fake_portal: Portal
) -> None:
    from fakeportal import admin

    hook = admin.create_webhook(fake_world, fake_portal.member_id, scope="user")["url"]
    name = "calendar.resource.delete"
    method(name)(lambda call: True)
    try:
        data = _batch(hook, {"cmd": {"r": f"{name}?resourceId=1"}}).json()["result"]
    finally:
        METHODS.pop(name, None)
    assert data["result_error"] == {"r": {"error": "insufficient_scope", "error_description": ""}}
