"""Readers racing a writer: a compaction committed between a reader's listing and its reading.

A compaction (``vigil compact``, or ``vigil run --follow`` between its batches) commits ``remove``
entries and then deletes the files it merged. A search, conversation view, DLP dry-run or
Elasticsearch backfill that listed the live files just before then finds one gone: that is a
normal race, not damage, and the reader reads again on the newer listing. A file gone without a
commit (removed behind the manifest's back) is still damage.

The race is made deterministic with a hook on the readers' listing
(``pipelines.archive.reader.live_view``): the first listing is taken, then a real compaction runs
on the real files, then the reader goes on with what it listed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from search_support import DANA, WEI, at, audit_entries, dataset, no_user_config, row, vigil

from exporters.elasticsearch.archive_source import iter_archive_rows
from pipelines.archive import compact, layout, manifest_index, reader, writer
from pipelines.archive.manifest import load_state
from pipelines.dlp import load_policy_set
from pipelines.dlp.dryrun import dry_run
from pipelines.errors import ArchiveError
from pipelines.search import conversation, embedded
from pipelines.search.access import AccessRole, Identity
from pipelines.search.parse import parse_query
from pipelines.search.results import Page

__all__ = ["no_user_config"]  # an autouse fixture: no config file of the tester decides a role

RULES = Path(__file__).parent.parent / "dlp_rules"
OFFICER = Identity(user="officer-1", role=AccessRole.OFFICER)
CRM = Identity(user="crm-1", role=AccessRole.CRM)
DAMAGE = "is missing: the manifest lists it, so it was damaged, replaced or removed"


def _archive(root: Path) -> Path:
    """The shared rows in three commits, so most partitions have several small files to merge."""
    rows = dataset()
    for n in range(3):
        writer.commit_rows(root, rows[n::3], kind=layout.RECORDS, action="test")
    assert compact.plan(load_state(root).files(layout.RECORDS))  # something to compact
    return root


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return _archive(tmp_path / "archive")


@pytest.fixture
def twin(tmp_path: Path) -> Path:
    """The same archive, compacted before anything reads it: what a reader must see."""
    root = _archive(tmp_path / "twin")
    compact.compact(root)
    return root


def _compact(root: Path) -> None:
    before = {f.path for f in load_state(root).files(layout.RECORDS)}
    report = compact.compact(root)
    assert report.commit is not None and report.files_before >= 2
    gone = before - {f.path for f in load_state(root).files(layout.RECORDS)}
    assert gone and not any((root / rel).exists() for rel in gone)  # deleted right after the commit


def _remove_behind_the_manifests_back(root: Path) -> None:
    victim = load_state(root).files(layout.RECORDS)[0]
    (root / victim.path).unlink()


@pytest.fixture
def after_listing(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[Path], None]], list[int]]:
    """``after_listing(action)``: the first listing a reader takes is returned as it was, then
    ``action(archive)`` runs (before anything is read). Returns the list of listings taken."""

    def install(action: Callable[[Path], None]) -> list[int]:
        real = reader.live_view
        listings: list[int] = []

        def hooked(root: Path, **kw: Any) -> manifest_index.LiveView:
            view = real(root, **kw)
            listings.append(view.state.committed_lines)
            if len(listings) == 1:
                action(Path(root))
            return view

        monkeypatch.setattr(reader, "live_view", hooked)
        return listings

    return install


def _hits(root: Path, text: str, identity: Identity = OFFICER, page: Page | None = None) -> Any:
    result = embedded.search(root, parse_query([text]), identity, page)
    return result.total, [h.record_id for h in result.hits], [h.text for h in result.hits]


def _rows(rows: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        ({k: v for k, v in r.items() if k != "ingest_time"} for r in rows), key=lambda r: r["record_id"]
    )


# ---------------------------------------------------------------------------------------------
# a compaction committed between listing and reading: the same result as reading after it


@pytest.mark.parametrize(
    ("text", "identity", "page"),
    [
        ("", OFFICER, None),  # every record
        ("channel:whatsapp", OFFICER, Page(number=2, size=3)),  # a page past the first
        ("card", CRM, None),  # the CRM role reads candidates for its own view first
    ],
)
def test_search_over_a_compaction_committed_after_its_listing_reads_the_new_files(
    archive: Path, twin: Path, after_listing: Any, text: str, identity: Identity, page: Page | None
) -> None:
    expected = _hits(twin, text, identity, page)
    assert expected[0] > 0
    listings = after_listing(_compact)
    assert _hits(archive, text, identity, page) == expected
    assert len(listings) == 2 and listings[1] > listings[0]  # read again, on the compaction's listing


def test_search_on_the_command_line_logs_once_what_it_showed(
    archive: Path, after_listing: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    after_listing(_compact)
    assert vigil("search", "--archive", str(archive), "--role", "officer", "--json", "channel:whatsapp") == 0
    captured = capsys.readouterr()
    shown = [json.loads(line)["record_id"] for line in captured.out.splitlines()]
    assert shown and "error" not in captured.err
    (entry,) = audit_entries(archive)  # one entry, though the search read twice
    assert entry["details"]["returned"] == shown and entry["results"] == len(shown)


def test_a_participant_hint_over_a_compaction_still_suggests(archive: Path, after_listing: Any) -> None:
    query = parse_query(["participant:Whitfield"])
    expected = embedded.closest_parties(archive, query, OFFICER)
    assert expected
    after_listing(_compact)
    assert embedded.closest_parties(archive, query, OFFICER) == expected


@pytest.mark.parametrize("time_from", [None, at(5, 9, 6)])
def test_a_conversation_over_a_compaction_is_the_conversation_after_it(
    archive: Path, twin: Path, after_listing: Any, time_from: dt.datetime | None
) -> None:
    expected = _rows(conversation.iter_conversation(twin, "conv-en", time_from=time_from))
    assert expected
    after_listing(_compact)
    got = conversation.load_conversation(archive, "conv-en", time_from=time_from)
    assert _rows(iter(got)) == expected
    # in order, and the rows before the window (who is present) come first
    assert got == conversation.load_conversation(archive, "conv-en", time_from=time_from)


def test_a_conversation_on_the_command_line_logs_once_what_it_showed(
    archive: Path, after_listing: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = [r["record_id"] for r in conversation.load_conversation(archive, "conv-en")]
    after_listing(_compact)
    assert vigil("conversation", "conv-en", "--archive", str(archive), "--role", "officer") == 0
    assert "error" not in capsys.readouterr().err
    (entry,) = audit_entries(archive)
    assert entry["details"]["returned"] == expected and entry["results"] == len(expected)


@pytest.mark.parametrize(
    "read",
    [
        lambda root: iter_archive_rows(root),  # vigil es index
        lambda root: reader.iter_rows(root),
    ],
    ids=["iter_archive_rows", "iter_rows"],
)
def test_archive_rows_over_a_compaction_are_the_rows_after_it(
    archive: Path, twin: Path, after_listing: Any, read: Callable[[Path], Iterator[dict[str, Any]]]
) -> None:
    expected = _rows(read(twin))
    after_listing(_compact)
    assert _rows(read(archive)) == expected


def test_rows_already_streaming_when_a_compaction_commits_are_one_committed_state(
    archive: Path, twin: Path
) -> None:
    """The files are opened before the first is read: a compaction deleting them mid-stream
    takes nothing from the reader, which returns exactly the state it listed."""
    expected = _rows(reader.iter_rows(twin))
    rows = iter_archive_rows(archive)
    first = next(rows)
    _compact(archive)
    assert _rows(iter([first, *rows])) == expected


def test_dry_run_over_a_compaction_reports_what_it_reports_after_it(
    archive: Path, twin: Path, after_listing: Any
) -> None:
    policy = load_policy_set(RULES)
    expected = dry_run(policy, twin).to_json()
    assert expected["messages"] > 0
    after_listing(_compact)
    assert dry_run(policy, archive).to_json() == expected


def test_a_file_a_commit_is_still_moving_into_place_is_waited_for(
    archive: Path, monkeypatch: pytest.MonkeyPatch, after_listing: Any
) -> None:
    """A writer between its manifest append and moving the new file into place: the file is
    listed but still in ``_staging/<commit>/``. The reader reads again once it is in place."""
    publish = writer._publish
    pending: list[tuple[Any, ...]] = []
    monkeypatch.setattr(writer, "_publish", lambda *args: pending.append(args))
    new = row("late-1", at(5, 23), body="settlement arrives late", participants=[DANA, WEI])
    writer.commit_rows(archive, [new], kind=layout.RECORDS, action="test")
    monkeypatch.setattr(writer, "_publish", publish)
    (args,) = pending
    real = reader.live_view
    calls: list[int] = []

    def finishing(root: Path, **kw: Any) -> manifest_index.LiveView:
        calls.append(1)
        if len(calls) == 2:  # the writer finishes while the reader looks again
            publish(*args)
        return real(root, **kw)

    monkeypatch.setattr(reader, "live_view", finishing)
    total, ids, _ = _hits(archive, "late")
    assert total == 1 and ids == [new["record_id"]]


def test_a_commit_stopped_while_moving_files_into_place_is_named_with_its_fix(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed between its manifest append and moving the file into place: readers name
    the staged file and the command that finishes the commit, not a restore from backup."""
    monkeypatch.setattr(writer, "_publish", lambda *args: None)  # never moved: the writer died
    new = row("late-2", at(5, 23), body="settlement stranded in staging", participants=[DANA, WEI])
    writer.commit_rows(archive, [new], kind=layout.RECORDS, action="test")
    monkeypatch.undo()
    monkeypatch.setattr(reader, "PUBLISH_WAIT", 0.001)
    with pytest.raises(ArchiveError) as info:
        _hits(archive, "settlement")
    message = str(info.value)
    assert "is still in _staging/" in message and f"vigil compact --archive {archive}" in message
    assert "backup" not in message
    compact.compact(archive)  # what the message says to do finishes the commit
    total, ids, _ = _hits(archive, "stranded")
    assert total == 1 and ids == [new["record_id"]]


# ---------------------------------------------------------------------------------------------
# bounded, and damage is still damage


def test_an_archive_compacted_again_at_every_listing_is_given_up_on_after_three_reads(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = reader.live_view
    extra = iter(range(100))

    def churning(root: Path, **kw: Any) -> manifest_index.LiveView:
        view = real(root, **kw)
        n = next(extra)
        # a new small file in the same partition, then a compaction that retires what was listed
        churn = row(f"churn-{n}", at(5, 12, n), body=f"churn {n}")
        writer.commit_rows(root, [churn], kind=layout.RECORDS, action="test")
        compact.compact(root)
        return view

    monkeypatch.setattr(reader, "live_view", churning)
    with pytest.raises(ArchiveError, match=r"the archive changed 3 times while this read it") as caught:
        embedded.search(archive, parse_query(["channel:whatsapp"]), OFFICER)
    assert DAMAGE not in str(caught.value)
    # three reads, each on a new listing, and the listing that showed the last one raced too
    assert next(extra) == 4


READERS: list[tuple[str, Callable[[Path], Any]]] = [
    ("search", lambda root: _hits(root, "")),
    ("conversation", lambda root: conversation.load_conversation(root, "conv-en")),
    ("iter_archive_rows", lambda root: list(iter_archive_rows(root))),
    ("dry_run", lambda root: dry_run(load_policy_set(RULES), root)),
]


@pytest.mark.parametrize("read", [r for _, r in READERS], ids=[name for name, _ in READERS])
def test_a_file_removed_behind_the_manifests_back_is_still_damage(
    archive: Path, after_listing: Any, read: Callable[[Path], Any]
) -> None:
    victim = load_state(archive).files(layout.RECORDS)[0]
    listings = after_listing(_remove_behind_the_manifests_back)
    with pytest.raises(ArchiveError, match=DAMAGE) as caught:
        read(archive)
    assert victim.path in str(caught.value) and "restore the file from a backup" in str(caught.value)
    assert len(listings) == 2  # looked again: the manifest still lists it


@pytest.mark.parametrize("read", [r for _, r in READERS], ids=[name for name, _ in READERS])
def test_a_file_missing_before_the_listing_is_damage_too(archive: Path, read: Callable[[Path], Any]) -> None:
    _remove_behind_the_manifests_back(archive)
    with pytest.raises(ArchiveError, match=DAMAGE):
        read(archive)


def test_past_the_open_files_budget_a_retired_file_is_named_as_a_race_not_damage(
    archive: Path, twin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files past what a process may hold open are read by path when their turn comes: all the
    rows without a race, and a file a compaction retired meanwhile is said to be one."""
    monkeypatch.setattr(reader, "_handle_budget", lambda: 1)
    assert _rows(iter_archive_rows(archive)) == _rows(reader.iter_rows(twin))
    rows = iter_archive_rows(archive)
    next(rows)
    _compact(archive)
    with pytest.raises(ArchiveError, match="was retired by a newer commit") as caught:
        list(rows)
    assert DAMAGE not in str(caught.value)
