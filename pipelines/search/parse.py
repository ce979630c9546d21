"""From what a user types to a :class:`~pipelines.search.query.Query`.

The grammar (``lark``, LALR) reads free text and ``key:value`` filters in one pass::

    settlement "value date" settl*          words, a phrase, a prefix (implicit AND)
    card AND (swift OR iban) NOT test       operators are upper case; lower-case and/or are words
    channel:wechat participant:"Wei Zhang"  filters apply to the whole query

Filters apply to the whole query: every filter standing outside parentheses is taken out before
the text is read, so ``card OR iban channel:sms`` means ``(card OR iban) AND channel:sms``. A filter
under OR or NOT, in parentheses or not (``(card OR channel:sms)``, ``NOT channel:sms``, ``card OR
channel:sms``), is refused with a message, because the engines prune files by filter before they
look at text. Parentheses that only AND a filter with the rest (``(card channel:sms)``) change
nothing and are accepted.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from pipelines.errors import QueryError
from pipelines.invisible import escaped
from pipelines.search import text as textmod
from pipelines.search.query import (
    And,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Word,
    check_range,
    filter_spec,
    leaves,
)

GRAMMAR = r"""
?start: or_expr?

?or_expr: and_expr (_OR and_expr)+   -> or_
        | and_expr
?and_expr: not_expr (_AND? not_expr)+ -> and_
         | not_expr
?not_expr: _NOT not_expr              -> not_
         | atom
?atom: PHRASE                        -> phrase
     | FILTER                        -> filter
     | WORD                          -> word
     | "(" or_expr ")"

_AND: "AND"
_OR: "OR"
_NOT: "NOT"
FILTER.2: /[A-Za-z_][A-Za-z_-]*:("[^"]*"|[^\s()"]*)/
PHRASE: /"[^"]*"/
WORD: /[^\s()"]+/
%ignore /\s+/
"""


#: keyword arguments of :func:`parse_query` whose filter key is not a Python name
KEYWORD_FILTERS = {"date_from": "from", "date_to": "to", "event_type": "type"}


@dataclass(frozen=True)
class _Filter:
    key: str
    value: str
    #: written in quotes: the value is taken whole (no list at commas, an ``org:`` value is one
    #: organisation id, ``/`` included)
    quoted: bool = False

    def render(self) -> str:
        return f'{self.key}:"{self.value}"' if self.quoted else f"{self.key}:{self.value}"


@cache
def _parser() -> Lark:
    # the basic lexer makes AND/OR/NOT operators everywhere, so a misplaced one is an error, not a word
    return Lark(GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)


@v_args(inline=True)
class _Build(Transformer[Token, Any]):
    def word(self, token: Token) -> Node:
        value = str(token)
        if value.endswith("*") and "*" not in value[:-1]:
            return _prefix(value[:-1])
        if "*" in value:
            raise QueryError(
                f"{value}: * is only allowed at the end of a word (a prefix such as settl*); "
                "symbols are not searched for, even in quotes: leave it out"
            )
        return _searchable(Word(value))

    def phrase(self, token: Token) -> Node:
        return _searchable(Phrase(str(token)[1:-1].strip()), typed=str(token))

    def filter(self, token: Token) -> _Filter:
        key, _, value = str(token).partition(":")
        filter_spec(key)  # unknown keys fail here, with the list of known ones
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            return _Filter(key, value[1:-1], quoted=True)
        return _Filter(key, value)

    def and_(self, *items: Any) -> Any:
        return And(tuple(x for i in items for x in (i.items if isinstance(i, And) else (i,))))

    def or_(self, *items: Any) -> Any:
        return Or(tuple(x for i in items for x in (i.items if isinstance(i, Or) else (i,))))

    def not_(self, item: Any) -> Any:
        return Not(item)


def _prefix(stem: str) -> Node:
    if not stem:
        raise QueryError("a lone * matches nothing; write the start of a word before it, e.g. settl*")
    if textmod.has_cjk(stem):
        if all(s.cjk for s in textmod.segments(stem)):
            return _searchable(Word(stem))  # CJK already matches as a substring
        raise QueryError(f"{stem}*: a prefix must be one Latin word or CJK text, not a mix")
    if not textmod.segments(stem):  # only symbols, or only connectors (``____``)
        raise QueryError(
            f"{stem}* has no letters or digits to search for; write the start of a word, e.g. settl*"
        )
    if not textmod.is_single_token(stem):
        raise QueryError(
            f"{stem}*: a prefix must be a single word (letters and digits); "
            f'for several words use a phrase: "{stem}"'
        )
    return Prefix(stem)


def _searchable(node: Word | Phrase, typed: str | None = None) -> Node:
    """``node`` when it has something to search for; ``typed``: how the user wrote it (a phrase
    with its quotes and spaces), for the message."""
    if not textmod.segments(node.text):
        raise QueryError(
            f"{typed or node.render()} has no letters or digits to search for; remove it or quote real text"
        )
    return node


def parse_query(text: str | list[str] | tuple[str, ...], **filters: Any) -> Query:
    """Parse a query string (or CLI words, joined) and add ``filters`` given as keyword arguments
    (``channel="wechat"`` or lists of values). Raises :class:`QueryError` with a hint: one line
    (a syntax error adds the query and a pointer under it), with the query's control characters,
    line breaks and tabs shown as escapes (``\\n``, ``\\x1b``), so a query pasted with them cannot
    split the message or drive the terminal it is printed on."""
    try:
        return _parse_query(text, **filters)
    except _Pointed:
        raise  # already drawn with visible escapes
    except QueryError as exc:
        raise QueryError(visible(str(exc))) from None


def _parse_query(text: str | list[str] | tuple[str, ...], **filters: Any) -> Query:
    raw = join_words(text) if isinstance(text, list | tuple) else text
    for given in (
        raw,
        *(str(v) for vs in filters.values() for v in (vs if isinstance(vs, list | tuple) else [vs])),
    ):
        if bad := _SURROGATE.search(given):
            # only a program can pass one (the command line refuses text that is not UTF-8): no
            # engine can take it, nor can a terminal print it
            raise QueryError(
                f"the query holds {visible(bad.group())}, half of a character (a lone surrogate), "
                "which is not text: pass the query as valid Unicode"
            )
    rest, outside = _top_level_filters(raw)
    tree = _parse(rest, shown=raw)
    node, found = _split_filters(tree)
    _not_too_long(node)
    found = [*outside, *found]
    query = Query(text=node, raw=raw)
    for item in found:
        query = query.with_filter(item.key, item.value, quoted=item.quoted)
    for key, values in filters.items():
        if values is None or values == () or values == []:
            continue
        for value in values if isinstance(values, list | tuple) else [values]:
            # one value per keyword argument (a command-line flag): repeat it for more
            query = query.with_filter(KEYWORD_FILTERS.get(key, key), str(value), flag=True)
    return check_range(query)


#: Most words and CJK runs a query's text may hold.
MAX_QUERY_WORDS = 1_000
#: Most words and CJK runs in one phrase (or one word the tokenizer splits, ``a-b-c``). A phrase is
#: one regular expression on the embedded engine, and RE2 in DuckDB refuses one past a size: at
#: about 210 Latin words in one phrase (measured); 100 leaves room for the longest separators.
MAX_PHRASE_WORDS = 100


def _not_too_long(node: Node | None) -> None:
    found = leaves(node, positive=False)
    for leaf in found:
        if len(leaf.segments) > MAX_PHRASE_WORDS:
            shown = leaf.text if len(leaf.text) <= 60 else leaf.text[:57] + "..."
            raise QueryError(
                f"the phrase {shown!r} has {len(leaf.segments):,} words; at most {MAX_PHRASE_WORDS} are "
                "searched as one phrase: search for a shorter, distinctive part of it (a phrase of a few "
                "words finds a message)"
            )
    words = sum(len(leaf.segments) for leaf in found)
    if words > MAX_QUERY_WORDS:
        raise QueryError(
            f"the query has {words:,} words; at most {MAX_QUERY_WORDS:,} are searched at once: search "
            "for a shorter, distinctive part of the text (a phrase of a few words finds a message)"
        )


def join_words(words: list[str] | tuple[str, ...]) -> str:
    """CLI words as one query. A shell word that is a single ``participant:`` filter with a spaced
    value (``'participant:Wei Zhang'``) keeps its spaces inside the value; every other word is read
    by the grammar as it is, so ``'org:acme fee'`` is a filter and a word, as typed in one string."""
    return " ".join(_quoted_filter(word) for word in words)


def _quoted_filter(word: str) -> str:
    key, sep, value = word.partition(":")
    if not sep or key.lower() not in SPACED_VALUES or not any(c.isspace() for c in value.strip()):
        return word
    parts = value.split()
    if any(c in word for c in '"()') or any(
        p in ("AND", "OR", "NOT") or _FILTER_WORD.match(p) for p in parts
    ):
        return word  # more than one filter value: leave it to the grammar
    return f'{key}:"{" ".join(parts)}"'


#: Filters whose values may hold spaces (names); the others never do.
SPACED_VALUES = ("participant", "participants")
_FILTER_WORD = re.compile(r"^[A-Za-z_][A-Za-z_-]*:")


def _top_level_filters(raw: str) -> tuple[str, list[_Filter]]:
    """``raw`` with the filters that stand outside parentheses blanked out (positions kept for
    error pointers), and those filters. A filter after NOT or next to AND/OR is left in place, so
    the parser refuses it with the usual message."""
    try:
        tokens = list(_parser().lex(raw))
    except UnexpectedInput:
        return raw, []  # let the parser point at the problem
    _check_tokens(raw, tokens)
    depth = 0
    found: list[_Filter] = []
    chars = list(raw)
    for i, token in enumerate(tokens):
        if token.type == "LPAR":
            depth += 1
        elif token.type == "RPAR":
            depth -= 1
        elif token.type == "FILTER" and depth == 0:
            before = tokens[i - 1].type if i else None
            after = tokens[i + 1].type if i + 1 < len(tokens) else None
            if before in ("_AND", "_OR", "_NOT") or after in ("_AND", "_OR"):
                continue
            found.append(_Build().filter(token))
            assert token.start_pos is not None and token.end_pos is not None
            chars[token.start_pos : token.end_pos] = " " * (token.end_pos - token.start_pos)
    return "".join(chars), found


#: How deeply NOT and parentheses may nest. Every stage after the parser (building the tree,
#: the SQL, the DSL, matching, the audit log) walks the tree recursively; real queries nest a
#: few levels, and a limit turns ``NOT NOT NOT ...`` typed 500 times into a message, not a crash.
MAX_NESTING = 32


def _check_tokens(raw: str, tokens: list[Token]) -> None:
    """Refuse, before parsing, what the parser would misread or the later stages choke on: a
    filter with nothing after its colon (a value starting with a bracket or space needs quotes),
    and nesting deeper than :data:`MAX_NESTING`."""
    depth = 0  # levels of NOT and parentheses around the current term
    opened: list[int] = []  # for each open parenthesis, the levels it added (itself + NOTs before it)
    pending = 0  # NOTs read since the last term or parenthesis
    deepest = 0
    for i, token in enumerate(tokens):
        if token.type == "FILTER":
            _check_filter_value(raw, token, tokens[i + 1 :])
        if token.type == "_NOT":
            pending += 1
        elif token.type == "LPAR":
            opened.append(pending + 1)
            depth += pending + 1
            pending = 0
        elif token.type == "RPAR":
            depth -= opened.pop() if opened else 0
        elif token.type in ("WORD", "PHRASE", "FILTER"):
            pending = 0
        deepest = max(deepest, depth + pending)
    if deepest > MAX_NESTING:
        raise QueryError(
            f"the query nests NOT and parentheses {deepest} levels deep; at most {MAX_NESTING} are "
            "allowed: simplify it (NOT NOT x is x)"
        )


#: the start of a phone number, and a bracketed area code right after it
_PHONE_START = re.compile(r"\+?\d[\d.-]*")
_BRACKETED_DIGITS = re.compile(r"\(\d+\)")


def _check_filter_value(raw: str, token: Token, after: list[Token]) -> None:
    key, _, value = str(token).partition(":")
    end = token.end_pos or 0
    if (
        _PHONE_START.fullmatch(value)
        and _BRACKETED_DIGITS.match(raw, end)
        and filter_spec(key).key == "participant"
    ):
        # participant:+81(90)1234-5678 would read as participant:+81 AND (90 ...): a value runs up
        # to a bracket, so a phone number holding one goes in quotes (channel:sms(a OR b) is a
        # filter and a group, as ever)
        meant = value + raw[end:].split(maxsplit=1)[0]
        spec = filter_spec(key)
        raise QueryError(
            f"filter {spec.key}: its value runs into a bracket, which would start a group; put a "
            f'value with brackets in quotes: {spec.key}:"{meant}"'
        )
    if value:
        return
    spec = filter_spec(key)
    # what the user most likely meant as the value: the text up to the next filter or operator
    end = token.end_pos or 0
    opened = 0
    for later in after:
        if later.type in ("FILTER", "_AND", "_OR", "_NOT") or (later.type == "RPAR" and not opened):
            break
        opened += {"LPAR": 1, "RPAR": -1}.get(later.type, 0)
        end = later.end_pos or end
    meant = " ".join(raw[token.end_pos : end].replace('"', " ").split())
    if not meant:
        raise QueryError(f"filter {spec.key}: needs a value, e.g. {spec.example}")
    if any(c in meant for c in " ()"):
        raise QueryError(
            f"filter {spec.key}: needs its value right after the colon, in quotes when it has spaces "
            f'or brackets: {spec.key}:"{meant}"'
        )
    raise QueryError(f"filter {spec.key}: needs its value right after the colon: {spec.key}:{meant}")


def _parse(raw: str, *, shown: str | None = None) -> Any:
    """Parse ``raw``; error pointers are drawn under ``shown`` (the query as typed, same length)."""
    try:
        return _Build().transform(_parser().parse(raw))
    except QueryError:
        raise
    except UnexpectedInput as exc:
        raise _Pointed(_explain(shown if shown is not None else raw, exc)) from None
    except Exception as exc:  # lark wraps errors raised in the transformer
        cause = getattr(exc, "orig_exc", None)
        if isinstance(cause, QueryError):
            raise cause from None
        raise


def _explain(raw: str, exc: UnexpectedInput) -> str:
    pos = getattr(exc, "pos_in_stream", None)
    if pos is None and isinstance(exc, UnexpectedEOF):
        pos = len(raw)
    pos = len(raw) if pos is None else pos
    pointer = f"\n  {visible(raw)}\n  {' ' * _columns(visible(raw[:pos]))}^"
    if isinstance(exc, UnexpectedCharacters) and raw[pos : pos + 1] == '"':
        return f'a quote is not closed; add the closing " or remove it:{pointer}'
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        if raw.count("(") > raw.count(")"):
            return f"a parenthesis is not closed; add the missing ):{pointer}"
        return f"the query ends with an operator; AND, OR and NOT need a term after them:{pointer}"
    if isinstance(exc, UnexpectedToken):
        token = str(exc.token)
        if token == ")" and raw[:pos].rstrip().endswith("("):
            return f"empty parentheses; put a term inside or remove them:{pointer}"
        operator = re.split(r"[\s(]", raw[:pos].rstrip())[-1]
        if token == ")" and operator in ("AND", "OR", "NOT"):
            return f"{operator} needs a term after it, before this ):{pointer}"
        if token == ")":
            return f"this ) has no matching (; remove it or add the opening one:{pointer}"
        if token in ("AND", "OR"):
            return (
                f"{token} needs a term on both sides (write lower-case {token.lower()} to search for "
                f"the word):{pointer}"
            )
    return f"cannot read the query here:{pointer}"


class _Pointed(QueryError):
    """A syntax error whose message already shows the query, made visible, and a pointer."""


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def visible(text: str) -> str:
    """``text`` with every control, line break, bidirectional control and lone surrogate as an
    escape (``\\n``, ``\\x1b``, ``\\u202e``): a message about a query is one line."""
    return escaped(text)


def _columns(text: str) -> int:
    """How many terminal columns ``text`` takes: wide (CJK, full-width) characters two, combining
    marks and invisible format characters none, so the pointer stands under the character."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _split_filters(tree: Any) -> tuple[Node | None, list[_Filter]]:
    """Separate top-level filters from the text tree; refuse filters nested in OR/NOT."""
    if tree is None or (hasattr(tree, "data") and tree.data == "start"):
        children = getattr(tree, "children", []) if tree is not None else []
        tree = children[0] if children else None
    if tree is None:
        return None, []
    if isinstance(tree, _Filter):
        return None, [tree]
    if isinstance(tree, And):
        items: list[Any] = list(tree.items)  # the transformer puts filters among the nodes
        found = [i for i in items if isinstance(i, _Filter)]
        rest = tuple(i for i in items if not isinstance(i, _Filter))
        for item in rest:
            _no_nested_filters(item)
        if not rest:
            return None, found
        return (rest[0] if len(rest) == 1 else And(rest)), found
    _no_nested_filters(tree)
    return tree, []


def _no_nested_filters(node: Any) -> None:
    if isinstance(node, Or):
        ored = [item for item in node.items if isinstance(item, _Filter)]
        if len(ored) == len(node.items):
            _no_filters_ored(tuple(ored))
    if isinstance(node, _Filter):
        raise QueryError(
            f"{node.render()} is inside OR, NOT or parentheses; filters apply to the whole query, "
            "so move it out of the parentheses and away from AND/OR/NOT "
            "(e.g. `(card OR iban) channel:sms` or `card OR iban channel:sms`, not `card OR channel:sms`)"
        )
    if isinstance(node, And | Or):
        for item in node.items:
            _no_nested_filters(item)
    elif isinstance(node, Not):
        _no_nested_filters(node.item)


def _no_filters_ored(items: tuple[_Filter, ...]) -> None:
    """``channel:sms OR channel:line``: filters ORed with each other and nothing else. Said how to
    write it: one filter of one key lists its values (``channel:sms,line``); ``participant:`` and
    filters of different keys cannot be ORed at all."""
    shown = " OR ".join(item.render() for item in items)
    spec = filter_spec(items[0].key)
    if len({filter_spec(item.key).key for item in items}) > 1:
        raise QueryError(
            f"{shown}: filters of different kinds cannot be ORed (every filter must hold); "
            "run one search per filter"
        )
    if spec.repeat == "all":
        raise QueryError(
            f"{shown}: {spec.key}: filters cannot be ORed (every one given must hold, as when you "
            f"name two people); run one search per {spec.help}"
        )
    if spec.repeat == "once":
        raise QueryError(f"{shown}: {spec.key}: takes one value; keep one")
    side_by_side = " ".join(item.render() for item in items)
    fix = f"`{side_by_side}`"
    if not any(item.quoted or "," in item.value for item in items):
        fix += f" or `{spec.key}:{','.join(item.value for item in items)}`"
    raise QueryError(
        f"{shown}: filters cannot be ORed; {spec.key}: filters side by side, or one listing values "
        f"with commas, already mean any of them: write {fix}"
    )
