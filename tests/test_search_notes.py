"""The note a query's caveat prints (a single CJK character): with ``--json`` on standard error,
so standard output stays JSON lines, and also when the page shown is empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from search_support import (
    dataset,
    no_user_config,  # noqa: F401  (autouse: no caller's config)
    vigil,
    write_archive,
)

NOTE = "note: 確: the embedded engine finds a single CJK character anywhere"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("notes") / "archive", dataset())


def _argv(archive: Path, *more: str) -> list[str]:
    return ["search", "--archive", str(archive), "--role", "officer", "確", *more]


def test_table_prints_the_note(archive: Path, capsys) -> None:
    assert vigil(*_argv(archive)) == 0
    assert NOTE in " ".join(capsys.readouterr().out.split())


def test_json_prints_the_note_on_standard_error_only(archive: Path, capsys) -> None:
    assert vigil(*_argv(archive, "--json")) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines and all(json.loads(line)["record_id"] for line in lines)
    assert err.startswith(NOTE)


@pytest.mark.parametrize("more", [["--page", "5"], ["conversation:none"], ["--page", "5", "--json"]])
def test_an_empty_page_still_prints_the_note(archive: Path, capsys, more: list[str]) -> None:
    assert vigil(*_argv(archive, *more)) == 0
    out, err = capsys.readouterr()
    shown = out if "--json" not in more else err
    assert NOTE in " ".join(shown.split())
    if "--json" in more:
        assert out == ""
