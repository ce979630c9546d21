"""JSON Lines out: one object per line, whatever the text inside it holds.

``json.dumps(..., ensure_ascii=False)`` keeps text readable (``"卡号"``, not ``"\\u5361\\u53f7"``) but
writes some characters raw that break "one object per line" or steer a terminal: DEL and the C1
controls (U+0085 is a line break to Python's ``str.splitlines``), LINE SEPARATOR and PARAGRAPH
SEPARATOR (U+2028, U+2029: line breaks to ``splitlines`` and to JavaScript), and the bidirectional
marks, embeddings, overrides and isolates. They only occur inside JSON strings, where ``\\uXXXX``
reads back as the same character, so escaping them changes nothing a JSON reader sees.
"""

from __future__ import annotations

import json
import re

_ESCAPED = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def dumps(value: object) -> str:
    """``value`` as one line of JSON, UTF-8 text as written, the characters above escaped. A float
    that is not finite raises ``ValueError``: Python's ``json`` would write ``NaN`` or ``Infinity``,
    which is not JSON."""
    return _ESCAPED.sub(
        lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False, allow_nan=False)
    )


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: Python hands over bytes that were not UTF-8 (a
    file name, a command-line argument) as lone surrogates, which cannot be encoded."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
