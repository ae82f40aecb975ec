"""The fast path of JSON record decoding: orjson, for the records whose result it cannot get wrong.

The json module defines what a record becomes (`records.decode_json_record`). orjson agrees with it on
every record orjson accepts, except in three places, which `plain_doc_fields` declines so the caller decodes
those records with the json module: integers beyond 64 bits (orjson reads them as floats), floats in general
(their text form is left to the json module), and nesting deeper than PLAIN_DEPTH (the json module gives up
at the interpreter's recursion limit, orjson at 1024). orjson rejects what the json module would flag as
`invalid_utf8`, `malformed_json` or `invalid_unicode` (lone surrogates), so those never take the fast path.
For the records it takes, `orjson.dumps` writes the same text as `json.dumps(ensure_ascii=False,
separators=(",", ":"))`: strings, 64-bit integers, booleans, null, lists and objects print alike.
"""

from __future__ import annotations

from typing import Any

import orjson

PLAIN_DEPTH = 64


def _plain(value: Any, depth: int) -> bool:
    """True when `value` (from orjson) holds no float and nests at most PLAIN_DEPTH levels below the record."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float or depth >= PLAIN_DEPTH:
        return False
    for v in value.values() if t is dict else value:
        if not _plain(v, depth + 1):
            return False
    return True


def plain_doc_fields(value: bytes, id_field: str, text_field: str) -> tuple[str | None, str, str | None] | None:
    """(doc_id, text, metadata JSON) as `records.doc_fields` gives them, for a record that parses with orjson
    into an object with a string text, a string/integer/absent id and plain other fields; None otherwise
    (malformed, not a document, or not plain): the caller then decodes it with the json module.
    """
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    text = obj.get(text_field)
    if type(text) is not str:
        return None
    raw_id = obj.get(id_field)
    doc_id: str | None
    if raw_id is None or raw_id == "":
        doc_id = None
    elif type(raw_id) is str:
        doc_id = raw_id
    elif type(raw_id) is int:
        doc_id = str(raw_id)
    else:
        return None
    rest = {k: v for k, v in obj.items() if k != text_field and k != id_field}
    if not rest:
        return doc_id, text, None
    for v in rest.values():
        if type(v) is not str and not _plain(v, 1):
            return None
    return doc_id, text, orjson.dumps(rest).decode()
