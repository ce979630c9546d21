"""The embedded engine on a real archive: DuckDB over committed Parquet files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from search_support import at, by_event_id, dataset, employee_notice, row, write_archive

from pipelines.archive import layout, writer
from pipelines.archive.reader import live_files
from pipelines.errors import ArchiveError, QueryError
from pipelines.record import ARROW_SCHEMA
from pipelines.search import embedded, sql
from pipelines.search.access import AccessRole, Identity
from pipelines.search.parse import parse_query
from pipelines.search.results import Page

OFFICER = Identity("olivia", AccessRole.OFFICER)
REVIEWER = Identity("ravi", AccessRole.REVIEWER)
CRM = Identity("crm-sync", AccessRole.CRM)
ROWS = dataset()
IDS = by_event_id(ROWS)
NAMES = {v: k for k, v in IDS.items()}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("search") / "archive", ROWS)


def found(
    archive: Path, text: str, who: Identity = OFFICER, names: dict[str, str] = NAMES, sort: str = "-time"
) -> list[str]:
    result = embedded.search(archive, parse_query(text), who, Page(size=1000, sort=sort))
    assert result.total == len(result.hits)
    return [names[h.record_id] for h in result.hits]


SETTLEMENT = {"en-1", "en-2", "en-6", "o-1", "o-2", "o-3"}

TABLE = [
    # English words, phrases, prefixes, NOT
    ("settlement", SETTLEMENT),
    ('"settlement date"', {"en-1", "en-2", "o-3"}),
    ("settl*", SETTLEMENT | {"en-7"}),
    ("settlement NOT date", {"en-6", "o-1", "o-2"}),
    ("settlement AND (bond OR draft)", {"o-1", "o-2"}),
    ("don't", {"en-2"}),
    ("AKIAIOSFODNN7EXAMPLE", {"en-6", "k-1"}),
    # Chinese and Japanese
    ("结算日期", {"zh-1"}),
    ('"结算 日期"', {"zh-3"}),
    ("结算", {"zh-1", "zh-3"}),
    ("价格", {"zh-2"}),
    ("iPhone", {"zh-2"}),
    ("確認", {"ja-1"}),
    ('"カード番号"', {"ja-2"}),
    ("ｶｰﾄﾞ", {"ja-2"}),  # half-width katakana folds to full width, as in Elasticsearch's cjk analyzer
    ("決済日 NOT カード", {"ja-1"}),
    # participants: any side, id / handle / name, case-insensitive; repeated means all of them
    ("participant:U4af4980629", {"ja-1", "ja-2"}),
    ("participant:李美", {"zh-1", "zh-2", "zh-3"}),
    ('participant:"KENJI SATO"', {"ja-1", "ja-2"}),
    ("participant:emp-2", {"en-5", "en-6", "en-7", "en-8", "en-9", "en-10", "zh-1", "zh-2", "zh-3", "k-1"}),
    ('participant:emp-2 participant:"wei zhang"', {"en-5", "en-6", "en-7", "en-8", "en-9", "en-10"}),
    ("participant:+852-3000-1111 channel:wechat", {"zh-1", "zh-2", "zh-3"}),
    # dates (whole UTC days, both ends included)
    ("settlement from:2026-01-05 to:2026-01-05", {"en-1", "en-2", "en-6"}),
    ("to:2026-01-04", {"o-1"}),
    ("from:2026-02-01", {"o-3"}),
    ("to:20260104", {"o-1"}),  # a compact ISO date is a whole day too
    ("from:20260201", {"o-3"}),
    # a bound copied from a hit's event_time includes that very record, to the microsecond
    ("from:2026-01-08T10:30:00Z to:2026-01-08T11:00:00.000001Z", {"bl-1", "bl-2"}),
    ("from:2026-01-08T10:30:00Z to:2026-01-08T11:00:00Z", {"bl-1"}),
    ("from:2026-01-08T11:00:00.000001Z to:2026-01-08", {"bl-2"}),
    # participants written loosely: runs of spaces, a phone number without its +
    ('participant:"KENJI   SATO"', {"ja-1", "ja-2"}),
    ("participant:85291234567 conversation:conv-en", {f"en-{n}" for n in range(1, 11)}),
    ("from:2026-01-05T09:05:00Z to:2026-01-05T09:07:00Z", {"en-2", "en-3", "en-4"}),
    # DLP verdicts and rules
    ("dlp:block", {"en-6", "bl-1"}),
    ("dlp:redact,block", {"en-3", "en-6", "k-1", "bl-1"}),
    ("rule:pii", {"en-3", "bl-1"}),
    ("rule:secrets.cloud-key", {"en-6", "k-1"}),
    ("rule:conduct", set()),
    # kinds, types, directions, channels, orgs, conversations
    ("kind:auto_message", {"en-4", "en-10", "bl-2"}),
    ("type:opted_in", {"en-4"}),
    ("kind:event", {"en-5", "en-8"}),
    ("direction:inbound", {"en-2"}),
    ("channel:wechat,line", {"zh-1", "zh-2", "zh-3", "ja-1", "ja-2"}),
    ("org:globex", {"o-3"}),
    ("org:acme/wealth-sh", {"zh-1", "zh-2", "zh-3"}),
    ("conversation:conv-ja", {"ja-1", "ja-2"}),
    ("settlement channel:sms", {"o-1", "o-2"}),
    # user input is bound, never spliced into SQL
    ('"\'; DROP TABLE x; --"', set()),
    ('participant:"o\'brien"', set()),
]


@pytest.mark.parametrize(("text", "expected"), TABLE, ids=[t for t, _ in TABLE])
def test_officer_queries(archive: Path, text: str, expected: set[str]) -> None:
    assert set(found(archive, text)) == expected


def test_reviewers_search_and_see_only_the_redacted_text(archive: Path) -> None:
    assert found(archive, "AKIAIOSFODNN7EXAMPLE", REVIEWER) == []  # cannot probe for the secret
    assert found(archive, '"4111 1111"', REVIEWER) == []
    assert set(found(archive, "AWS_ACCESS_KEY_ID", REVIEWER)) == {"en-6", "k-1"}
    result = embedded.search(archive, parse_query("card"), REVIEWER)
    (hit,) = result.hits
    assert hit.text == "Card <CREDIT_CARD> is the one for the deposit."
    assert hit.redacted is None
    assert hit.highlights == ((0, 4),)


def test_officers_see_the_original_and_the_redacted_view(archive: Path) -> None:
    (hit,) = embedded.search(archive, parse_query("card"), OFFICER).hits
    assert hit.text == "Card 4111 1111 1111 1111 is the one for the deposit."
    assert hit.redacted == "Card <CREDIT_CARD> is the one for the deposit."


def test_crm_never_finds_or_sees_withheld_text(archive: Path) -> None:
    # blocked: left out for the CRM, so neither found by its words nor listed
    assert "en-6" not in found(archive, "portal", CRM)
    assert "en-6" not in found(archive, "settlement", CRM)
    assert "en-6" not in found(archive, "conversation:conv-en", CRM)
    # redacted, but the secrets policy's CRM view withholds it (crm: withheld): decided on the view
    assert found(archive, "Tuesday", CRM) == []
    assert found(archive, "Tuesday", REVIEWER) == ["k-1"]
    # a record found by other means shows no text
    hits = {
        NAMES[h.record_id]: h
        for h in embedded.search(archive, parse_query("conversation:conv-key,conv-en"), CRM).hits
    }
    assert hits["k-1"].text is None and hits["k-1"].withheld
    card = hits["en-3"].text
    assert card is not None and "4111 1111 1111 1111" not in card and card.endswith("for the deposit.")


@pytest.mark.parametrize("word", ["Tuesday", "Rotate", "zebra", "AWS_ACCESS_KEY_ID"])
def test_not_tells_the_crm_role_nothing_about_withheld_text(archive: Path, word: str) -> None:
    # the CRM view of k-1 is withheld, i.e. empty: NOT anything holds, whatever the text says
    assert found(archive, f"NOT {word} conversation:conv-key", CRM) == ["k-1"]
    assert found(archive, f"{word} conversation:conv-key", CRM) == []
    assert found(archive, f"(NOT {word}) OR {word} conversation:conv-key", CRM) == ["k-1"]


def test_crm_hits_carry_no_dlp_verdict_and_dlp_filters_are_refused(archive: Path) -> None:
    hits = embedded.search(archive, parse_query("conversation:conv-en"), CRM).hits
    assert "en-3" in {NAMES[h.record_id] for h in hits}
    for hit in hits:
        record = hit.to_json()
        assert not {"dlp_action", "dlp_rule_ids", "blocked"} & set(record)
        assert hit.dlp_action is None and not hit.blocked
    # refused whatever the archive holds: a channel without files must not answer "0 hits"
    for text in (
        "dlp:block",
        "rule:pii card",
        "dlp:none",
        "dlp:block channel:voicemail from:2020-01-01 to:2020-01-02",
    ):
        with pytest.raises(QueryError, match="crm role cannot filter by DLP"):
            embedded.search(archive, parse_query(text), CRM)


def test_crm_never_finds_a_dlp_blocked_notice_and_cannot_ask_for_one(archive: Path) -> None:
    # bl-2 tells the employee that bl-1 was blocked: its text and time give away what DLP caught
    assert found(archive, '"not delivered"', REVIEWER) == ["bl-2"]
    assert found(archive, '"not delivered"', CRM) == []
    assert found(archive, "conversation:conv-block", CRM) == []
    assert set(found(archive, "kind:auto_message", CRM)) == {"en-4", "en-10"}
    assert found(archive, "NOT zebra conversation:conv-block", CRM) == []
    assert (
        embedded.closest_parties(archive, parse_query("participant:busines conversation:conv-block"), CRM)
        == {}
    )
    for text in (
        "type:dlp_blocked_notice",
        "type:opted_in,DLP_BLOCKED_NOTICE",
        "event_type:dlp_blocked_notice x",
    ):
        with pytest.raises(QueryError, match="crm role cannot filter by DLP's blocked-message notices"):
            embedded.search(archive, parse_query(text), CRM)
    assert found(archive, "type:dlp_blocked_notice", REVIEWER) == ["bl-2"]


def test_paging_totals_and_sorting(archive: Path) -> None:
    newest = ["o-3", "o-2", "en-6", "en-2", "en-1", "o-1"]
    pages = [embedded.search(archive, parse_query("settlement"), OFFICER, Page(n, 2)) for n in (1, 2, 3, 4)]
    assert [p.total for p in pages] == [6, 6, 6, 6]
    assert [[NAMES[h.record_id] for h in p.hits] for p in pages] == [
        newest[0:2],
        newest[2:4],
        newest[4:6],
        [],
    ]
    assert pages[0].pages == 3
    assert found(archive, "settlement", sort="time") == newest[::-1]


def test_records_at_the_same_instant_have_one_stable_order(archive: Path) -> None:
    newest = found(archive, "conversation:conv-en")
    oldest = found(archive, "conversation:conv-en", sort="time")
    assert newest == oldest[::-1]
    assert {"en-3", "en-4"} <= set(newest)


def test_hits_carry_what_the_output_shows(archive: Path) -> None:
    (hit,) = embedded.search(archive, parse_query("type:opted_in"), OFFICER).hits
    assert hit.kind == "auto_message" and hit.audience == "customer" and hit.event_type == "opted_in"
    assert hit.sender["name"] == "WhatsApp Business"
    assert hit.event_time == at(5, 9, 7)
    assert hit.highlights == ()
    (queued,) = embedded.search(archive, parse_query("Settling"), OFFICER).hits
    assert queued.attributes == {"delivery": "queued", "queue_position": "1"}


def test_pruning_keeps_only_partitions_that_can_match(archive: Path) -> None:
    files = live_files(archive)
    kept = sql.prune(files, parse_query("channel:sms from:2026-01-04 to:2026-01-31"))
    assert [f.partition for f in kept] == [{"event_month": "2026-01", "channel": "sms"}]
    february = sql.prune(files, parse_query("from:2026-02-01 to:2026-02-28"))
    assert [f.partition for f in february] == [{"event_month": "2026-02", "channel": "teams"}]
    assert len(sql.prune(files, parse_query("card"))) == len(files)


def test_pruned_files_are_never_opened(tmp_path: Path) -> None:
    root = write_archive(tmp_path / "a", ROWS)
    (gone,) = [f for f in live_files(root) if f.partition["channel"] == "line"]
    (root / gone.path).unlink()  # damage a partition the query does not need
    assert set(found(root, "settlement channel:sms")) == {"o-1", "o-2"}
    with pytest.raises(ArchiveError):
        found(root, "settlement")  # the damaged partition is needed here


def test_files_outside_the_manifest_are_not_read(tmp_path: Path) -> None:
    root = write_archive(tmp_path / "a", ROWS[:1])
    stray = root / layout.record_file("2026-01", "whatsapp", "zzz", 0)
    shutil.copy(root / live_files(root)[0].path, stray)
    assert len(found(root, "settlement")) == 1


def test_archives_mixing_schema_versions(tmp_path: Path) -> None:
    root = tmp_path / "a"
    new = row("new-1", at(5, 9), body="settlement in the new schema")
    old = row("old-1", at(6, 9), body="settlement in the first schema", channel="sms")
    write_archive(root, [new])
    names = {new["record_id"]: "new-1", old["record_id"]: "old-1"}
    schema_1 = pa.Table.from_pylist([old], schema=ARROW_SCHEMA).drop_columns(
        ["dlp_action", "dlp_rule_ids", "dlp_findings", "dlp_policy", "blocked", "body_redacted"]
    )
    commit = "20260101T000000000000Z-v1"  # committed as a version-1 writer would have left it
    rel = layout.record_file("2026-01", "sms", commit, 0)
    writer.commit(
        root, commit, [writer.stage_table(root, commit, rel, layout.RECORDS, schema_1)], action="test"
    )
    assert set(found(root, "settlement", names=names)) == {"new-1", "old-1"}
    assert found(root, "dlp:none", names=names) == ["new-1"]  # no verdict is not a "none" verdict
    assert found(root, "channel:sms dlp:none", names=names) == []  # only version-1 files selected
    old_hit = embedded.search(root, parse_query("channel:sms"), REVIEWER).hits[0]
    assert old_hit.text is None and old_hit.withheld  # no redacted view: nothing to show a reviewer
    assert found(root, "settlement", REVIEWER, names=names) == ["new-1"]


def test_an_empty_archive_finds_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = embedded.search(tmp_path / "empty", parse_query("card"), OFFICER)
    assert result.total == 0 and result.hits == []


@pytest.mark.parametrize("sort", ["-time", "time"])
def test_pages_split_records_at_one_instant_by_record_id(tmp_path: Path, sort: str) -> None:
    rows = [row(f"t-{n}", at(9, 12), body=f"tie {n}", source_offset=n) for n in range(5)]
    rows += [row(f"e-{n}", at(9, 11 + 2 * n), body=f"edge {n}") for n in range(2)]  # before and after
    root = write_archive(tmp_path / "a", rows)
    key = {r["record_id"]: (r["event_time"], r["record_id"]) for r in rows}
    expected = sorted(key, key=key.__getitem__, reverse=sort == "-time")
    paged = []
    for number in range(1, 6):
        result = embedded.search(root, parse_query(""), OFFICER, Page(number, 2, sort))
        assert result.total == 7
        paged += [h.record_id for h in result.hits]
    assert paged == expected


def test_width_forms_in_a_body_fold_like_elasticsearch(tmp_path: Path) -> None:
    rows = [
        row("w-1", at(5, 9), body="ｶｰﾄﾞ番号をご確認ください"),
        row("w-2", at(5, 10), body="パスワード"),
    ]
    archive = write_archive(tmp_path / "archive", rows)
    names = {v: k for k, v in by_event_id(rows).items()}
    assert found(archive, "カード番号", names=names) == ["w-1"]
    assert found(archive, "ﾊﾟｽﾜｰﾄﾞ", names=names) == ["w-2"]
    assert found(archive, "NOT カード", names=names) == ["w-2"]


def test_archives_written_before_the_folders_were_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive upgraded in place holds ``channel=`` folders (the first layout) beside ``ch=``
    ones; DuckDB refuses to read two folder schemes as Hive partitions, so search must not."""
    from pipelines.archive.verify import verify
    from pipelines.search.conversation import load_conversation

    root = tmp_path / "a"
    old = row("old-1", at(5, 9), body="settlement in the first layout", channel="sms")
    new = row("new-1", at(6, 9), body="settlement in the new layout")
    with monkeypatch.context() as patch:
        patch.setattr(
            layout,
            "record_file",
            lambda month, channel, commit, n: (
                f"records/event_month={month}/channel={channel}/part-{commit}-{n:04d}.parquet"
            ),
        )
        write_archive(root, [old])
    write_archive(root, [new])
    folders = {f.path.split("/")[2].split("=")[0] for f in live_files(root)}
    assert folders == {"channel", "ch"}
    names = {old["record_id"]: "old-1", new["record_id"]: "new-1"}
    assert set(found(root, "settlement", names=names)) == {"old-1", "new-1"}
    assert found(root, "settlement channel:sms", names=names) == ["old-1"]
    assert {f.partition["channel"] for f in live_files(root)} == {"sms", new["channel"]}
    assert embedded.closest_parties(root, parse_query("participant:dana"), OFFICER)["dana"]
    replayed = load_conversation(root, "conv-en")
    assert [r["record_id"] for r in replayed] == [old["record_id"], new["record_id"]]
    assert verify(root).ok


def test_participant_suggestions_come_only_from_records_the_query_and_the_role_could_see(
    tmp_path: Path,
) -> None:
    informant = {"id": "cust-9", "name": "Secret Informant", "role": "customer", "handle": "+15550001111"}
    kenji = {"id": "cust-2", "name": "Kenji Sato", "role": "customer", "handle": "U4af4980629", "groups": []}
    desk = {"id": "emp-7", "name": "Night Desk", "role": "employee", "handle": "+85290000007", "groups": []}
    blocked = {"dlp_action": "block", "dlp_rule_ids": ["secrets.password"], "blocked": True}
    root = write_archive(
        tmp_path / "a",
        [
            row("plain", at(5, 9), body="See you at noon."),
            # the only record the informant is on was blocked: the CRM role never sees it
            row("tip", at(6, 9), body="my password is hunter2", sender=informant, dlp=blocked),
            row("late", at(20, 9), body="Thanks!", sender=kenji),
            # a blocked message the channel refused, and the notice that it was not sent, which
            # names it: the CRM role sees neither, so neither lends it a name
            row(
                "refused",
                at(7, 9),
                body="my password is hunter2",
                sender=desk,
                participants=[desk, informant],
                recipients=[informant],
                attributes={"delivery": "refused", "refusal": "queue_full"},
                dlp=blocked,
            ),
            employee_notice(
                "not-sent",
                at(7, 9, 1),
                "queue_full",
                "Not queued: 5 messages are already waiting.",
                to=desk,
                participants=[desk, informant],
                attributes={"refused_event_id": "refused"},
            ),
        ],
    )
    assert embedded.closest_parties(root, parse_query("participant:informant"), OFFICER) == {
        "informant": ["secret informant"]
    }
    assert embedded.closest_parties(root, parse_query("participant:informant"), CRM) == {}
    assert embedded.closest_parties(root, parse_query("participant:desk"), OFFICER) == {
        "desk": ["night desk"]
    }
    assert embedded.closest_parties(root, parse_query("participant:desk"), CRM) == {}
    assert embedded.closest_parties(root, parse_query("participant:5550001"), CRM) == {}
    # the query's own dates and filters bound the suggestions, to the day
    assert embedded.closest_parties(root, parse_query("participant:kenji"), REVIEWER) == {
        "kenji": ["kenji sato"]
    }
    assert embedded.closest_parties(root, parse_query("participant:kenji to:2026-01-10"), REVIEWER) == {}
    assert embedded.closest_parties(root, parse_query("participant:kenji channel:sms"), REVIEWER) == {}


def test_the_longest_phrase_a_query_may_hold_runs_on_the_embedded_engine(tmp_path: Path) -> None:
    # every kind of gap between words (Latin, digits with joiners, Hebrew, CJK, apostrophes), at
    # the per-phrase limit: RE2 compiles it, and the message holding it is found
    from pipelines.search.parse import MAX_PHRASE_WORDS

    kinds = ["fee", "1,000", "שלום", "结算", "don't", "カード", "3.5", "ok"]
    words = [kinds[i % len(kinds)] for i in range(MAX_PHRASE_WORDS)]
    body = "start " + " ".join(words) + " end"
    rows = [row("long", at(5, 9), body=body), row("other", at(5, 10), body=" ".join(words[:-1]))]
    archive = write_archive(tmp_path / "archive", rows)
    names = {v: k for k, v in by_event_id(rows).items()}
    assert found(archive, '"' + " ".join(words) + '"', names=names) == ["long"]


def test_a_pattern_too_large_for_re2_is_a_query_error_not_archive_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # past the per-phrase limit RE2 refuses the pattern; should a query ever get there, it is the
    # query that is refused (exit 2), not the archive reported damaged
    from pipelines.search import parse

    archive = write_archive(tmp_path / "archive", [row("a", at(5, 9), body="fee")])
    monkeypatch.setattr(parse, "MAX_PHRASE_WORDS", 10_000)
    phrase = '"' + " ".join(["fee"] * 400) + '"'
    with pytest.raises(QueryError, match="too large to search on the embedded engine"):
        embedded.search(archive, parse_query(phrase), OFFICER, Page(size=10))
