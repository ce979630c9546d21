"""JSON Lines out: one object per line, whatever the text inside it holds.

``json.dumps(..., ensure_ascii=False)`` keeps text readable (``"卡号"``, not ``"\\u5361\\u53f7"``) but
writes some characters raw that break "one object per line" or steer a terminal: DEL and the C1
controls (U+0085 is a line break to Python's ``str.splitlines``), LINE SEPARATOR and PARAGRAPH
SEPARATOR (U+2028, U+2029: line breaks to ``splitlines`` and to JavaScript), and the bidirectional
marks, embeddings, overrides and isolates. They only occur inside JSON strings, where ``\\uXXXX``
reads back as the same character, so escaping them changes nothing a JSON reader sees.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import sys

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


def _escape_as_json(error: UnicodeError) -> tuple[str, int]:
    """An encoding error handler that writes what the encoding cannot hold the JSON way
    (``\\u6c47``, a surrogate pair beyond U+FFFF): in a JSON line such characters occur only
    inside strings, where the escape reads back as the same character."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = []
    for ch in error.object[error.start : error.end]:
        code = ord(ch)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out), error.end


#: the name :func:`json_stdout` gives standard output's error handler
JSON_ESCAPE = "vigil-json-escape"
codecs.register_error(JSON_ESCAPE, _escape_as_json)


def json_stdout() -> None:
    """Make standard output fit for JSON lines whatever its encoding: with ``PYTHONIOENCODING``
    latin-1 (or any encoding short of Unicode) a Chinese body is written as ``\\u`` escapes, still
    the same JSON, instead of ending the command with an encoding error half-way."""
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    if not encoding.startswith("utf") and isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors=JSON_ESCAPE)
