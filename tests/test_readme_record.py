"""The README's table of the record (``## The record``) against the model it describes: a field
added to ``Record`` without a word in the README, or a count or version the README states that
the model no longer has, fails here."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.record import SCHEMA_VERSION, EventType, Record

README = Path(__file__).resolve().parent.parent / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The record")
    return text[start : text.index("Dead letters have their own model", start)]


def test_every_field_of_the_record_is_in_the_readme_table() -> None:
    named = set(re.findall(r"`([a-z_0-9]+)`", _section()))
    assert sorted(set(Record.model_fields) - named) == []


def test_the_schema_version_and_event_type_count_the_readme_states_are_the_models() -> None:
    section = _section()
    assert f"`schema_version` is {SCHEMA_VERSION}," in section
    (count,) = re.findall(r"`event_type` \((\d+) types:", section)
    assert int(count) == len(EventType)
