"""Callbacks parsed from the real payloads the portal sends (tests/fixtures examples)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app.errors import BadRequest
from app.payloads import (
    EventCall,
    InstallCall,
    RobotCall,
    SmsCall,
    event_call_from_dict,
    parse_form,
    robot_call_from_dict,
    to_dict,
)
from tests.support import EXAMPLES


def form(name: str) -> dict:
    fields = EXAMPLES[name].get("form_fields_derived") or EXAMPLES[name]["payload"]
    return parse_form(fields.items())


def test_brackets_nest_and_number_keys_become_lists() -> None:
    data = parse_form(
        [
            ("document_id[0]", "crm"),
            ("document_id[1]", "X"),
            ("properties[ids][0]", "1"),
            ("properties[ids][1]", "2"),
            ("data[FIELDS][ID]", "7"),
            ("plain", "v"),
        ]
    )
    assert data == {
        "document_id": ["crm", "X"],
        "properties": {"ids": ["1", "2"]},
        "data": {"FIELDS": {"ID": "7"}},
        "plain": "v",
    }


@pytest.mark.parametrize(
    "pairs, message",
    [
        ([("a]b", "1")], "malformed"),
        ([("a", "1"), ("a[b]", "2")], "both a value and a group"),
        ([("a[b]", "2"), ("a", "1")], "both a value and a group"),
        ([("a" + "[x]" * 10, "1")], "too deep"),
    ],
)
def test_malformed_forms_are_rejected_clearly(pairs: list, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_form(pairs)


def test_robot_call_from_the_real_contact_payload() -> None:
    call = RobotCall.from_form(form("robot_handler_post_captured_contact"))
    assert call.code == "test_activity"
    assert call.document_id.id == "CONTACT_109286" and call.document_id.number == 109286
    assert call.document_id.type_name == "CONTACT"
    assert call.properties == {"comment": "дефолтная строка - значение", "amount": "333"}
    assert call.use_subscription and call.timeout_duration == 660
    assert call.auth.member_id == "010b6886ebc205e43ae65000ee00addb"
    assert call.auth.application_token == "f9ac5db5ad4adbdee13eb034207d8fbd"
    assert call.auth.user_id == 16
    # It survives the trip through an RQ job argument, without the tokens.
    carried = robot_call_from_dict(json.loads(json.dumps(to_dict(call))))
    assert carried == replace(call, auth=call.auth.redacted())
    assert "4baf4f66" not in json.dumps(to_dict(call))
    assert call.auth.application_token not in json.dumps(to_dict(call))


def test_robot_call_from_the_flat_task_capture_without_use_subscription() -> None:
    call = RobotCall.from_form(form("robot_handler_post_captured_task_flat"))
    assert call.document_id.number == 49728
    assert call.properties == {"field_input_1": "6", "field_input_2": "2"}
    assert call.timeout_duration == 0
    assert call.use_subscription  # absent: the portal's current default is to wait


def test_robot_call_without_event_token_is_a_bad_request() -> None:
    data = form("robot_handler_post_deal_SYNTHESIZED")
    del data["event_token"]
    with pytest.raises(BadRequest, match="event_token"):
        RobotCall.from_form(data)


def test_robot_call_with_a_broken_document_id() -> None:
    data = form("robot_handler_post_deal_SYNTHESIZED")
    data["document_id"] = ["crm", "CCrmDocumentDeal"]
    with pytest.raises(BadRequest, match="document_id"):
        RobotCall.from_form(data)


def test_event_from_the_docs_payload() -> None:
    call = EventCall.from_form(form("event_oncrmdealupdate_docs"))
    assert call.event == "ONCRMDEALUPDATE"
    assert call.fields == {"ID": "759"}
    assert call.by_user
    carried = event_call_from_dict(json.loads(json.dumps(to_dict(call))))
    assert carried.by_user and carried.fields == call.fields and not carried.auth.access_token


def test_event_made_by_a_robot_has_no_user_tokens() -> None:
    data = form("event_oncrmdealupdate_docs")
    for key in ("access_token", "refresh_token", "expires_in", "scope", "status"):
        data["auth"].pop(key, None)
    call = EventCall.from_form(data)
    assert not call.by_user and call.auth.application_token


def test_install_event_and_install_page() -> None:
    call = InstallCall.from_form(form("onappinstall_event_docs"), {})
    assert not call.from_page and call.member_id == "a223c6b3710f85df22e9377d6c4f7553"
    assert call.refresh_token == "4s386p3q0tr8dy89xvmt96234v3dljg8"
    page = EXAMPLES["app_iframe_open_default"]["payload"]
    call = InstallCall.from_form(parse_form(page["body"].items()), page["query"])
    assert call.from_page and call.domain == "portal.bitrix24.com"
    assert call.application_token == "ec1b2074a9d3f5c81b6e40d27a95cf38"
    assert call.client_endpoint == "https://portal.bitrix24.com/rest/"


def test_install_event_without_tokens_is_refused() -> None:
    data = form("onappuninstall_event_docs")
    data["event"] = "ONAPPINSTALL"
    with pytest.raises(BadRequest):
        InstallCall.from_form(data, {})


def test_sms_call() -> None:
    data = EXAMPLES["sms_handler_post_from_robot_printr"]["payload"]
    data = json.loads(json.dumps(data))
    data["auth"] = {"member_id": "m", "application_token": "t", "domain": "d"}
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{key}[{k}]": v for k, v in value.items()})
        elif isinstance(value, list):
            flat.update({f"{key}[{i}]": v for i, v in enumerate(value)})
        else:
            flat[key] = value
    call = SmsCall.from_form(parse_form(flat.items()))
    assert call.message_id == "8b3fc6cd0cb4a7b91f6632889cdf46e0"
    assert call.message_body == "test message" and call.module_id == "bizproc"
    flat["message_id"] = "not-hex"
    with pytest.raises(BadRequest, match="message_id"):
        SmsCall.from_form(parse_form(flat.items()))
