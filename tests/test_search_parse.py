"""Query parsing: free text to a tree, filters validated, mistakes explained with the fix."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from pipelines.errors import QueryError
from pipelines.search.parse import join_words, parse_query
from pipelines.search.query import LATEST, And, Not, Or, OrgRef, Phrase, Prefix, Query, Word

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("settlement", Word("settlement")),
        ("settlement date", And((Word("settlement"), Word("date")))),
        ('"settlement date"', Phrase("settlement date")),
        ("settl*", Prefix("settl")),
        ("card AND iban", And((Word("card"), Word("iban")))),
        ("card OR iban OR swift", Or((Word("card"), Word("iban"), Word("swift")))),
        ("card NOT test", And((Word("card"), Not(Word("test"))))),
        ("NOT NOT card", Not(Not(Word("card")))),
        (
            "card AND (swift OR iban) NOT test",
            And((Word("card"), Or((Word("swift"), Word("iban"))), Not(Word("test")))),
        ),
        ("(a b) c", And((Word("a"), Word("b"), Word("c")))),  # nested ANDs flatten
        ("a OR b c", Or((Word("a"), And((Word("b"), Word("c")))))),  # AND binds tighter than OR
        ("结算日期 確認", And((Word("结算日期"), Word("確認")))),
        ("价*", Word("价")),  # CJK already matches as a substring
        ("android and or", And((Word("android"), Word("and"), Word("or")))),  # lower case: words
        ("ANDROID NOTE", And((Word("ANDROID"), Word("NOTE")))),  # operators only as whole words
        ("e-mail", Word("e-mail")),
        ("", None),
    ],
)
def test_free_text_becomes_a_tree(text: str, tree: object) -> None:
    assert parse_query(text).text == tree


def test_filters_fill_the_query_and_leave_the_text() -> None:
    query = parse_query(
        "card channel:wechat participant:+85291234567 from:2026-01-05 to:2026-01-31 dlp:block "
        "rule:pii.card kind:auto_message type:opted_in direction:outbound org:acme conversation:conv-1"
    )
    assert query.text == Word("card")
    assert query.channels == ("wechat",)
    assert query.participants == ("+85291234567",)
    assert query.time_from == dt.datetime(2026, 1, 5, tzinfo=UTC)
    assert query.time_to == dt.datetime(2026, 2, 1, tzinfo=UTC)  # the whole last day is included
    assert query.dlp_actions == ("block",)
    assert query.rules == ("pii.card",)
    assert query.kinds == ("auto_message",)
    assert query.event_types == ("opted_in",)
    assert query.directions == ("outbound",)
    assert query.orgs == (OrgRef("acme"),)
    assert query.conversations == ("conv-1",)


@pytest.mark.parametrize(
    ("text", "attribute", "expected"),
    [
        ("channel:wechat,line", "channels", ("wechat", "line")),
        ("channel:wechat channel:line channel:wechat", "channels", ("wechat", "line")),
        ("channel:WeChat", "channels", ("wechat",)),
        ('participant:"Wei Zhang"', "participants", ("wei zhang",)),  # as the parties column stores it
        ('participant:"+852 9123-4567"', "participants", ("+85291234567",)),
        ("participant:a participant:b", "participants", ("a", "b")),
        ("org:acme/wealth-hk", "orgs", (OrgRef("acme", "wealth-hk"),)),
        ("org:ACME/Wealth-HK", "orgs", (OrgRef("acme", "wealth-hk"),)),  # any case, like channel:
        ("rule:pii.*", "rules", ("pii.",)),
        ("rule:PII.Card", "rules", ("pii.card",)),  # rule ids are lower case
        ("event_type:opted_in", "event_types", ("opted_in",)),
        ("from:2026-01-05T10:00Z", "time_from", dt.datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("from:2026-01-05T18:00:00+08:00", "time_from", dt.datetime(2026, 1, 5, 10, tzinfo=UTC)),
        # 100 ns digits are dropped, as ingest dropped them: the record stored at .123456 is in range
        ("from:2026-01-05T10:00:00.1234567Z", "time_from", dt.datetime(2026, 1, 5, 10, 0, 0, 123456, UTC)),
        ("to:2026-01-05T10:00:00.1234567Z", "time_to", dt.datetime(2026, 1, 5, 10, 0, 0, 123457, UTC)),
    ],
)
def test_filter_values(text: str, attribute: str, expected: object) -> None:
    assert getattr(parse_query(text), attribute) == expected


def test_keyword_filters_are_the_same_as_typed_ones() -> None:
    typed = parse_query("card channel:sms from:2026-01-05 type:opted_in")
    flags = parse_query("card", channel=["sms"], date_from="2026-01-05", event_type="opted_in")
    assert typed == flags


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ('"settlement date', "quote is not closed"),
        ("(card iban", "parenthesis is not closed"),
        ("card)", "no matching ("),
        ("(card OR)", "OR needs a term after it, before this )"),
        ("x (NOT) y", "NOT needs a term after it, before this )"),
        ("()", "empty parentheses"),
        ("card AND", "need a term after them"),
        ("AND card", "needs a term on both sides"),
        ("card OR OR iban", "needs a term on both sides"),
        ("NOT", "need a term after them"),
        ("colour:red", "unknown filter colour:"),
        ("https://example.com", 'put it in quotes: "https:'),
        ("card OR channel:sms", "filters apply to the whole query"),
        ("NOT dlp:block", "filters apply to the whole query"),
        ("channel:fax", "use one of: sms, mms"),
        ("dlp:maybe", "none, flag, redact, block"),
        ("type:opted", "opted_in"),
        ("channel:", "needs a value, e.g. channel:wechat"),
        ("from:2026-13-01", "from:2026-01-31"),
        ("from:2026-02-01 to:2026-01-01", "swap them"),
        ("from:2026-01-01 from:2026-01-02", "given twice"),
        ("*", "lone *"),
        (
            "se*tl",
            "only allowed at the end of a word (a prefix such as settl*); symbols are not searched for",
        ),
        ("foo-ba*", "a single word"),
        ("iPhone价*", "not a mix"),
        ("---", "no letters or digits"),
        ('""', "no letters or digits"),
        # a run of connectors alone is no token, as in Elasticsearch (which finds nothing for it)
        ("____", "no letters or digits"),
        ('"__ ＿＿"', "no letters or digits"),
        ("____*", "no letters or digits"),
        ("org:/hk", "org:acme/wealth-hk"),
        # a value starting with a bracket or a space is not read as the value: say how to quote it
        (
            "participant:(852) 9111-0000",
            'in quotes when it has spaces or brackets: participant:"(852) 9111-0000"',
        ),
        ("card participant: Wei Zhang channel:sms", 'participant:"Wei Zhang"'),
        # ...and one with a bracket inside: it would end at the bracket and start a group
        (
            "participant:+81(90)1234-5678",
            'put a value with brackets in quotes: participant:"+81(90)1234-5678"',
        ),
        ("fee participant:+44(0)20 7946", 'participant:"+44(0)20"'),
        ("channel: sms", "needs its value right after the colon: channel:sms"),
        ("(card participant:) fee", "filter participant: needs a value, e.g. participant:+852"),
        # nesting deep enough to exhaust Python's recursion is refused before parsing
        ("NOT " * 500 + "card", "500 levels deep; at most 32"),
        ("NOT (" * 20 + "card" + ")" * 20, "40 levels deep; at most 32"),
        ("(" * 3000 + "card" + ")" * 3000, "at most 32"),
        # bounds a time zone pushes out of the calendar
        ("from:0001-01-01T00:00:00+01:00", "from:0001-01-01T00:00:00+01:00 is outside the calendar"),
        ("from:9999-12-31T23:00:00-05:00", "outside the calendar"),
        ("to:0001-01-01T00:00:00+01:00", "to:0001-01-01T00:00:00+01:00 is outside the calendar"),
    ],
)
def test_mistakes_say_how_to_fix_them(text: str, hint: str) -> None:
    with pytest.raises(QueryError) as excinfo:
        parse_query(text)
    assert hint in str(excinfo.value)


def test_syntax_errors_point_at_the_place() -> None:
    with pytest.raises(QueryError) as excinfo:
        parse_query("card AND (swift OR")
    message = str(excinfo.value)
    assert "card AND (swift OR\n" in message
    assert message.rstrip().endswith(" " * len("card AND (swift OR") + "^")


@pytest.mark.parametrize(
    "text",
    [
        'card AND (swift OR iban) NOT "test data" settl* channel:wechat channel:line',
        'participant:"Wei Zhang" participant:+85291234567 from:2026-01-05 to:2026-01-31 dlp:block',
        "rule:pii.card org:acme/wealth-hk kind:event type:opted_in direction:system conversation:c-1",
        "from:2026-01-05T10:30:00Z to:2026-01-05T11:00:00Z 结算",
        'org:"Acme,Inc" org:"acme/asia" org:acme/asia conversation:"acme:wa:grp,1" conversation:a,b',
        "from:2026-W02 to:2026-02",
    ],
)
def test_render_parses_back_to_the_same_query(text: str) -> None:
    query = parse_query(text)
    assert parse_query(query.render()) == query


def test_to_dict_is_what_the_audit_log_keeps() -> None:
    query = parse_query("card NOT test channel:sms from:2026-01-05 to:2026-01-31 org:acme/hk")
    assert query.to_dict() == {
        "text": "(card AND NOT test)",
        "text_tree": {"and": [{"word": "card"}, {"not": {"word": "test"}}]},
        "channels": ["sms"],
        "orgs": ["acme/hk"],
        "time_from": "2026-01-05",
        "time_to": "2026-01-31",
    }
    assert Query().to_dict() == {}


@pytest.mark.parametrize(
    ("words", "joined"),
    [
        (["participant:Wei Zhang", "card"], 'participant:"Wei Zhang" card'),
        (["settlement date"], "settlement date"),  # a plain shell word with a space stays two words
        (['participant:"Wei Zhang"'], 'participant:"Wei Zhang"'),
        (["(a OR b)", "c"], "(a OR b) c"),
    ],
)
def test_cli_words_keep_spaces_inside_filter_values(words: list[str], joined: str) -> None:
    assert join_words(words) == joined


@pytest.mark.parametrize(
    ("text", "noted"),
    [("价", True), ("NOT 价", True), ("价格", False), ("card", False), ("价*", True)],
)
def test_single_cjk_characters_come_with_a_caveat(text: str, noted: bool) -> None:
    caveats = parse_query(text).caveats()
    assert bool(caveats) is noted
    if noted:
        assert "Elasticsearch" in caveats[0]


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("card OR iban channel:sms", "(card OR iban) channel:sms"),
        ("channel:sms card OR iban", "(card OR iban) channel:sms"),
        ("card OR iban NOT test org:acme", "(card OR (iban NOT test)) org:acme"),
        ("org:meridian fee", "fee org:meridian"),
        ("dlp:block rule:pii", "rule:pii dlp:block"),
        # parentheses that only AND a filter with the rest change nothing
        ("(card channel:sms)", "card channel:sms"),
        ("card (channel:sms)", "card channel:sms"),
        ("((channel:sms))", "channel:sms"),
    ],
)
def test_top_level_filters_apply_to_the_whole_query(text: str, same_as: str) -> None:
    assert parse_query(text) == parse_query(same_as)


@pytest.mark.parametrize(
    "text",
    ["card OR channel:sms", "NOT channel:sms card", "(card OR channel:sms) iban", "NOT (card channel:sms)"],
)
def test_filters_inside_the_boolean_tree_are_refused_with_a_hint_that_works(text: str) -> None:
    with pytest.raises(QueryError, match="filters apply to the whole query") as error:
        parse_query(text)
    hint = str(error.value).split("e.g. `", 1)[1].split("`", 1)[0]
    assert parse_query(hint).channels == ("sms",)  # the example given parses


@pytest.mark.parametrize(
    ("words", "joined"),
    [
        (["org:meridian fee"], "org:meridian fee"),  # a filter and a word, typed in one string
        (["channel:sms fee"], "channel:sms fee"),
        (["participant:Hanako  Yoshida"], 'participant:"Hanako Yoshida"'),
        (["participant:Wei Zhang OR card"], "participant:Wei Zhang OR card"),  # more than a value
        (["participant:Wei channel:sms"], "participant:Wei channel:sms"),
    ],
)
def test_only_a_single_spaced_participant_word_is_rewritten(words: list[str], joined: str) -> None:
    assert join_words(words) == joined


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("to:20260105", None, "2026-01-06T00:00:00+00:00"),
        ("from:20260105", "2026-01-05T00:00:00+00:00", None),
        (
            "from:2026-01-05T10:00:00Z to:2026-01-05T10:00:00.000001Z",
            "2026-01-05T10:00:00+00:00",
            "2026-01-05T10:00:00.000002+00:00",
        ),
    ],
)
def test_dates_in_any_iso_form(text: str, first: str | None, last: str | None) -> None:
    query = parse_query(text)
    assert (query.time_from.isoformat() if query.time_from else None) == first
    assert (query.time_to.isoformat() if query.time_to else None) == last


def test_a_range_error_shows_the_dates_as_written() -> None:
    with pytest.raises(QueryError, match="from: 2026-01-09 is after to: 2026-01-01"):
        parse_query("from:2026-01-09 to:2026-01-01")


def test_nesting_up_to_the_limit_is_read() -> None:
    query = parse_query("NOT " * 16 + "(" * 16 + "card" + ")" * 16)
    node = query.text
    for _ in range(16):
        assert isinstance(node, Not)
        node = node.item
    assert node == Word("card")


@pytest.mark.parametrize(
    "text",
    [
        "to:9999-12-31",
        "to:99991231",
        "to:9999-12-31T23:59:59.999999",
        "to:9999-12-31T22:00:00-05:00",
        "to:9999-12-31T23:00:00-05:00",  # 10000-01-01T04:00Z
        "to:9999-12",
        "to:9999",
        "to:9999-W52",  # its Sunday is in year 10000
    ],
)
def test_an_end_past_the_calendar_means_no_end(text: str) -> None:
    query = parse_query(f"card from:2026-01-05 {text}")
    assert query.time_to == LATEST
    assert query.date_bounds() == (dt.date(2026, 1, 5), dt.date(9999, 12, 31))
    assert query.to_dict()["time_to"] == "9999-12-31"
    assert parse_query(query.render()) == query


def test_a_query_of_more_words_than_can_be_searched_at_once_says_so() -> None:
    from pipelines.search.parse import MAX_QUERY_WORDS

    at_limit = " ".join(["word"] * MAX_QUERY_WORDS)
    assert len(parse_query(at_limit).text.items) == MAX_QUERY_WORDS  # type: ignore[union-attr]
    for over in (
        " ".join(["word"] * (MAX_QUERY_WORDS + 1)),
        "a " * 600 + "NOT (" + "b " * 401 + ")",
    ):
        with pytest.raises(QueryError, match=r"at most 1,000 are searched at once: search for a shorter"):
            parse_query(over)


def test_a_phrase_of_more_words_than_one_regular_expression_holds_says_so() -> None:
    from pipelines.search.parse import MAX_PHRASE_WORDS

    at_limit = '"' + " ".join(["word"] * MAX_PHRASE_WORDS) + '"'
    assert len(parse_query(at_limit).text.segments) == MAX_PHRASE_WORDS  # type: ignore[union-attr]
    for over in (
        '"' + " ".join(["word"] * (MAX_PHRASE_WORDS + 1)) + '"',
        "-".join(["w"] * (MAX_PHRASE_WORDS + 1)),  # one word the tokenizer splits
        "fee OR NOT " + '"' + " ".join(["结算"] * (MAX_PHRASE_WORDS + 1)) + '"',
    ):
        with pytest.raises(QueryError, match=rf"at most {MAX_PHRASE_WORDS} are searched as one phrase"):
            parse_query(over)


@pytest.mark.parametrize(
    ("text", "attribute", "value", "tree"),
    [
        ("channel:sms(hello OR world)", "channels", ("sms",), Or((Word("hello"), Word("world")))),
        ("participant:bob(x OR y)", "participants", ("bob",), Or((Word("x"), Word("y")))),
    ],
)
def test_a_filter_then_a_group_is_still_a_filter_and_a_group(text, attribute, value, tree) -> None:
    """Only a phone number running into a bracketed area code is refused (it needs quotes)."""
    query = parse_query(text)
    assert getattr(query, attribute) == value and query.text == tree


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        # a week is the whole week (Python alone would read 2026-W02 as its Monday only)
        ("2026-W02", dt.date(2026, 1, 5), dt.date(2026, 1, 11)),
        ("2026W02", dt.date(2026, 1, 5), dt.date(2026, 1, 11)),
        ("2026-W53", dt.date(2026, 12, 28), dt.date(2027, 1, 3)),  # 2026 has 53 ISO weeks
        ("2026-02", dt.date(2026, 2, 1), dt.date(2026, 2, 28)),
        ("2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        ("2026", dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
        ("2026-W02-3", dt.date(2026, 1, 7), dt.date(2026, 1, 7)),  # a week date with its day is that day
    ],
)
def test_a_year_month_or_week_is_the_whole_of_it(text: str, first: dt.date, last: dt.date) -> None:
    query = parse_query(f"from:{text} to:{text}")
    assert query.date_bounds() == (first, last)
    assert query.time_from == dt.datetime(first.year, first.month, first.day, tzinfo=UTC)
    assert query.time_to == dt.datetime(last.year, last.month, last.day, tzinfo=UTC) + dt.timedelta(days=1)
    assert parse_query("", date_from=text, date_to=text) == query  # --from and --to alike


@pytest.mark.parametrize("text", ["from:2026-13", "from:2026-W54", "from:2025-W53", "to:2026-00"])
def test_a_period_the_calendar_does_not_have_is_refused(text: str) -> None:
    with pytest.raises(QueryError, match="is not a date"):
        parse_query(text)


@pytest.mark.parametrize(
    ("text", "attribute", "expected"),
    [
        ('org:"Acme,Inc"', "orgs", (OrgRef("acme,inc"),)),
        ("org:Acme,Inc", "orgs", (OrgRef("acme"), OrgRef("inc"))),
        ('org:"acme/asia"', "orgs", (OrgRef("acme/asia"),)),
        ("org:acme/asia", "orgs", (OrgRef("acme", "asia"),)),
        ('conversation:"acme:wa:grp,1"', "conversations", ("acme:wa:grp,1",)),
        ("conversation:a,b", "conversations", ("a", "b")),
        ('rule:"pii.card,x"', "rules", ("pii.card", "x")),  # rule ids hold no comma: a list still
        ('channel:"sms,line"', "channels", ("sms", "line")),  # fixed choices hold no comma: a list still
    ],
)
def test_a_quoted_value_is_taken_whole(text: str, attribute: str, expected: object) -> None:
    assert getattr(parse_query(text), attribute) == expected


@pytest.mark.parametrize(
    ("flags", "attribute", "expected"),
    [
        ({"org": "Acme,Inc"}, "orgs", (OrgRef("acme,inc"),)),
        ({"org": "acme/wealth-hk"}, "orgs", (OrgRef("acme", "wealth-hk"),)),
        ({"conversation": ["grp,1", "grp,2"]}, "conversations", ("grp,1", "grp,2")),
        ({"channel": "sms,line"}, "channels", ("sms", "line")),
        ({"rule": "pii.card,pii.iban"}, "rules", ("pii.card", "pii.iban")),  # rule ids hold no comma
    ],
)
def test_a_flag_value_is_one_value(flags: dict[str, object], attribute: str, expected: object) -> None:
    assert getattr(parse_query("", **flags), attribute) == expected


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"date_from": ""}, "--from needs a value, e.g. --from 2026-01-05"),
        ({"org": "/"}, "--org / is not an organisation; write --org acme or --org acme/wealth-hk"),
        ({"channel": "fax"}, "--channel fax is not a known channel"),
        ({"date_to": "soon"}, "--to soon is not a date; write --to 2026-01-31"),
    ],
)
def test_a_flag_mistake_names_the_flag(flags: dict[str, object], message: str) -> None:
    with pytest.raises(QueryError) as error:
        parse_query("", **flags)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("text", "fix", "values"),
    [
        ("channel:sms OR channel:line", "`channel:sms channel:line` or `channel:sms,line`", {"sms", "line"}),
        ('conversation:"a,b" OR conversation:c', '`conversation:"a,b" conversation:c`', {"a,b", "c"}),
    ],
)
def test_filters_ored_with_each_other_are_refused_with_the_way_to_write_them(
    text: str, fix: str, values: set[str]
) -> None:
    with pytest.raises(QueryError) as error:
        parse_query(text)
    assert fix in str(error.value)
    for written in fix.strip("`").split("` or `"):  # each way offered means any of the values
        query = parse_query(written)
        assert set(query.channels or query.conversations) == values


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            'participant:"a b" OR participant:c',
            'participant:"a b" OR participant:c: participant: filters cannot be ORed',
        ),
        ("channel:sms OR direction:inbound", "filters of different kinds cannot be ORed"),
        ("from:2026-01-05 OR from:2026-01-06", "from: takes one value"),
    ],
)
def test_filters_that_cannot_be_ored_say_so(text: str, says: str) -> None:
    with pytest.raises(QueryError, match=re.escape(says)):
        parse_query(text)


def test_a_phrase_with_nothing_to_search_is_named_as_typed() -> None:
    with pytest.raises(QueryError, match=re.escape('" " has no letters or digits')):
        parse_query('" "')


def test_the_access_log_tells_an_organisation_id_holding_a_slash_from_a_sub_organisation() -> None:
    assert parse_query('org:"acme/asia"').to_dict() == {"orgs": ['"acme/asia"']}
    assert parse_query("org:acme/asia").to_dict() == {"orgs": ["acme/asia"]}
