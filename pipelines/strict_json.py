"""JSON from outside Vigil, read strictly: an object that names the same key twice is refused.

``{"body": "Cancel the order", "body": "Confirm the order"}`` is valid JSON, but parsers disagree
on what it says: Python's ``json`` and pydantic keep the last value, others the first. A compliance
archive must not pick one reading silently, so ingest dead-letters such a line and ``vigil dlp
scan`` reports it as an error.
"""

from __future__ import annotations

import json
import re
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
    :class:`json.JSONDecodeError` for ``NaN``, ``Infinity`` and ``-Infinity``, which Python's
    ``json`` reads but JSON does not have (other readers turn them into null or a huge number)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data

    def refuse(name: str) -> Any:
        found = _CONSTANT.search(text)
        raise json.JSONDecodeError(f"{name} is not a JSON value", text, found.start() if found else 0)

    return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=refuse)


_CONSTANT = re.compile(r"-?\b(?:NaN|Infinity)\b")
