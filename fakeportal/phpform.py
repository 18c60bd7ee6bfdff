"""PHP bracket-key forms: ``a[b][0]=x`` <-> ``{"a": {"b": ["x"]}}``.

Bitrix24 speaks PHP: every form it sends or receives flattens nested data into bracket keys,
and every scalar travels as a string. Parsing follows PHP's rules closely enough for the
portal's traffic: ``a[]`` appends, the last value of a repeated key wins, and a dict whose
keys are exactly ``0..n-1`` (in that order) becomes a list, as b24pysdk does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

_SEGMENT = re.compile(r"\[([^\]]*)\]")


def split_key(key: str) -> list[str]:
    """``'a[b][]'`` -> ``['a', 'b', '']``; a key with no brackets is one segment."""
    head, bracket, _ = key.partition("[")
    if not bracket or not head:
        return [key]
    rest = key[len(head) :]
    parts = [head]
    pos = 0
    for match in _SEGMENT.finditer(rest):
        if match.start() != pos:
            break  # PHP ignores what follows a malformed bracket
        parts.append(match.group(1))
        pos = match.end()
    if pos == 0:
        return [key]
    return parts


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and list(value.keys()) == [str(i) for i in range(len(value))]:
            return list(value.values())
    return value


def parse_pairs(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Nest flat ``(key, value)`` pairs with PHP bracket keys into dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = split_key(key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "" and i > 0:
                part = str(_next_index(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return {k: _listify(v) for k, v in root.items()}


def _next_index(node: dict[str, Any]) -> int:
    ints = [int(k) for k in node if k.lstrip("-").isdigit()]
    return max(ints) + 1 if ints else 0


def parse_query(query: str) -> dict[str, Any]:
    """Parse a query string (``a[b]=1&c=2&``, keys and values percent-encoded)."""
    return parse_pairs(parse_qsl(query, keep_blank_values=True))


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested data to PHP bracket pairs, as PHP's ``http_build_query`` does.

    Lists become ``key[0]``, ``key[1]``; ``True``/``False`` become ``1``/``0``; ``None``
    is left out (PHP drops nulls). Empty lists and dicts produce nothing.
    """
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            pairs.extend(flatten(value, name))
        elif isinstance(value, (list, tuple)):
            pairs.extend(flatten({str(i): v for i, v in enumerate(value)}, name))
        else:
            text = _scalar(value)
            if text is not None:
                pairs.append((name, text))
    return pairs


def build_query(data: Mapping[str, Any]) -> str:
    """Nested data -> ``a[b]=1&c=2`` (brackets kept literal, names and values quoted)."""
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in flatten(data))
