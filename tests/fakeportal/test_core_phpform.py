"""PHP bracket forms: parsing what clients send, building what the portal sends."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fakeportal.phpform import build_query, flatten, parse_pairs, parse_query, split_key


def test_split_key_segments() -> None:
    assert split_key("a") == ["a"]
    assert split_key("a[b][0]") == ["a", "b", "0"]
    assert split_key("a[]") == ["a", ""]
    assert split_key("[x]") == ["[x]"]


def test_nested_dicts_and_lists() -> None:
    parsed = parse_pairs(
        [
            ("auth[access_token]", "t"),
            ("document_id[0]", "crm"),
            ("document_id[1]", "CCrmDocumentDeal"),
            ("document_id[2]", "DEAL_7"),
            ("data[FIELDS][ID]", "7"),
            ("select[]", "ID"),
            ("select[]", "TITLE"),
        ]
    )
    assert parsed == {
        "auth": {"access_token": "t"},
        "document_id": ["crm", "CCrmDocumentDeal", "DEAL_7"],
        "data": {"FIELDS": {"ID": "7"}},
        "select": ["ID", "TITLE"],
    }


def test_keys_not_0_to_n_stay_a_dict() -> None:
    assert parse_pairs([("a[1]", "x"), ("a[2]", "y")]) == {"a": {"1": "x", "2": "y"}}
    assert parse_pairs([("a[1]", "x"), ("a[0]", "y")]) == {"a": {"1": "x", "0": "y"}}


def test_fast_bitrix24_batch_query() -> None:
    query = "crm.deal.list?order[ID]=ASC&filter[%3EID]=0&select[0]=ID&select[1]=TITLE&start=50&"
    params = parse_query(query.partition("?")[2])
    assert params == {
        "order": {"ID": "ASC"},
        "filter": {">ID": "0"},
        "select": ["ID", "TITLE"],
        "start": "50",
    }


def test_build_round_trip() -> None:
    data = {
        "fields": {"TITLE": "Deal & co", "OPPORTUNITY": 10.5, "CLOSED": False},
        "select": ["ID", "TITLE"],
        "skip": None,
        "flag": True,
    }
    pairs = flatten(data)
    assert ("fields[CLOSED]", "0") in pairs and ("flag", "1") in pairs
    assert all(k != "skip" for k, _ in pairs)
    text = build_query(data)
    assert "fields[TITLE]=Deal%20%26%20co" in text
    assert parse_pairs(parse_qsl(text)) == {
        "fields": {"TITLE": "Deal & co", "OPPORTUNITY": "10.5", "CLOSED": "0"},
        "select": ["ID", "TITLE"],
        "flag": "1",
    }
