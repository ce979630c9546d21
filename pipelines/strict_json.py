"""JSON from outside Vigil, read strictly: an object that names the same key twice is refused.

``{"body": "Cancel the order", "body": "Confirm the order"}`` is valid JSON, but parsers disagree
on what it says: Python's ``json`` and pydantic keep the last value, others the first. A compliance
archive must not pick one reading silently, so ingest dead-letters such a line and ``vigil dlp
scan`` reports it as an error.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any


class RepeatedKeyError(Exception):
    """An object names ``key`` twice (deliberately not a ``ValueError``: nothing that catches
    malformed JSON should mistake it for that)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key

    def describe(self) -> str:
        return (
            f"key {self.key[:64]!r} appears twice in one JSON object; parsers disagree on which "
            "value counts, so the line is refused rather than read one way; fix the sender"
        )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKeyError(key)
            seen.add(key)
    return obj


def loads(data: str | bytes) -> Any:
    """``json.loads``, raising :class:`RepeatedKeyError` for an object that names a key twice and
    :class:`json.JSONDecodeError` for what Python's ``json`` reads but JSON does not have (other
    readers turn it into null, a huge number or an error): ``NaN``, ``Infinity`` and ``-Infinity``,
    a number too large for a 64-bit float (``1e400`` reads as ``Infinity``), and an integer with
    more digits than Python converts (4,300 by default)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data

    def refuse(token: str, problem: str) -> Any:
        raise json.JSONDecodeError(problem, text, _position(text, token))

    def constant(name: str) -> Any:
        return refuse(name, f"{name} is not a JSON value")

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            refuse(
                number,
                f"number {number[:32]} is too large for a 64-bit float (it would read as "
                f"{'-' if value < 0 else ''}Infinity, which JSON does not have)",
            )
        return value

    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=constant, parse_float=finite)
    except json.JSONDecodeError as exc:
        # Python ends some messages in "at", made for its "... at: line 1 column 8"; callers add
        # their own "at column 8" ("Invalid control character at at column 8")
        problem = exc.msg.removesuffix(" at")
        if problem == "Invalid control character" and exc.pos < len(text):
            problem = f"invalid control character U+{ord(text[exc.pos]):04X} in a string (escape it)"
        if problem == exc.msg:
            raise
        raise json.JSONDecodeError(problem, text, exc.pos) from None
    except ValueError as exc:  # an integer with more digits than sys.get_int_max_str_digits()
        # (not a hook on every integer: that would slow every line down)
        limit = sys.get_int_max_str_digits()
        digits = next(
            (
                token
                for token in (m.group() for m in _TOKEN.finditer(text))
                if token.lstrip("-").isdigit() and len(token.lstrip("-")) > limit
            ),
            None,
        )
        if digits is None or not limit:
            raise
        refuse(digits, f"integer with {len(digits.lstrip('-')):,} digits is too long to read")
        raise exc from None  # not reached: refuse raises


#: a JSON string (skipped: the token is looked for outside strings) or a bare token
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\w.+-]+')


def _position(text: str, token: str) -> int:
    """Where ``token`` (a number or constant the decoder read) first stands outside a string."""
    for found in _TOKEN.finditer(text):
        if found.group() == token:
            return found.start()
    return 0
