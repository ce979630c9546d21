"""From what a user types to a :class:`~pipelines.search.query.Query`.

The grammar (``lark``, LALR) reads free text and ``key:value`` filters in one pass::

    settlement "value date" settl*          words, a phrase, a prefix (implicit AND)
    card AND (swift OR iban) NOT test       operators are upper case; lower-case and/or are words
    channel:wechat participant:"Wei Zhang"  filters apply to the whole query

Filters must stand at the top level (ANDed with the rest): ``card OR channel:sms`` is refused
with a message, because the engines prune files by filter before they look at text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from pipelines.errors import QueryError
from pipelines.search import text as textmod
from pipelines.search.query import And, Node, Not, Or, Phrase, Prefix, Query, Word, check_range, filter_spec

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
                "quote the text to search for it literally"
            )
        return _searchable(Word(value))

    def phrase(self, token: Token) -> Node:
        return _searchable(Phrase(str(token)[1:-1].strip()))

    def filter(self, token: Token) -> _Filter:
        key, _, value = str(token).partition(":")
        filter_spec(key)  # unknown keys fail here, with the list of known ones
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
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
    if not textmod.is_single_token(stem):
        raise QueryError(
            f"{stem}*: a prefix must be a single word (letters and digits); "
            f'for several words use a phrase: "{stem}"'
        )
    return Prefix(stem)


def _searchable(node: Word | Phrase) -> Node:
    if not textmod.segments(node.text):
        raise QueryError(
            f"{node.render()} has no letters or digits to search for; remove it or quote real text"
        )
    return node


def parse_query(text: str | list[str] | tuple[str, ...], **filters: Any) -> Query:
    """Parse a query string (or CLI words, joined) and add ``filters`` given as keyword arguments
    (``channel="wechat"`` or lists of values). Raises :class:`QueryError` with a hint."""
    raw = join_words(text) if isinstance(text, list | tuple) else text
    tree = _parse(raw)
    node, found = _split_filters(tree)
    query = Query(text=node, raw=raw)
    for item in found:
        query = query.with_filter(item.key, item.value)
    for key, values in filters.items():
        if values is None or values == () or values == []:
            continue
        for value in values if isinstance(values, list | tuple) else [values]:
            query = query.with_filter(KEYWORD_FILTERS.get(key, key), str(value))
    return check_range(query)


def join_words(words: list[str] | tuple[str, ...]) -> str:
    """CLI words as one query. A shell word like ``participant:Wei Zhang`` (quoted for the shell)
    keeps its spaces inside the filter value."""
    out = []
    for word in words:
        key, sep, value = word.partition(":")
        if (
            sep
            and key.replace("_", "").isalpha()
            and any(c.isspace() for c in value)
            and '"' not in value
            and "(" not in word
        ):
            word = f'{key}:"{value}"'
        out.append(word)
    return " ".join(out)


def _parse(raw: str) -> Any:
    try:
        return _Build().transform(_parser().parse(raw))
    except QueryError:
        raise
    except UnexpectedInput as exc:
        raise QueryError(_explain(raw, exc)) from None
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
    pointer = f"\n  {raw}\n  {' ' * pos}^"
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
        if token == ")":
            return f"this ) has no matching (; remove it or add the opening one:{pointer}"
        if token in ("AND", "OR"):
            return (
                f"{token} needs a term on both sides (write lower-case {token.lower()} to search for "
                f"the word):{pointer}"
            )
    return f"cannot read the query here:{pointer}"


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
    if isinstance(node, _Filter):
        raise QueryError(
            f"{node.key}:{node.value} is inside OR, NOT or parentheses; filters apply to the whole query, "
            "so move it out (e.g. `card OR iban channel:sms`, not `card OR channel:sms`)"
        )
    if isinstance(node, And | Or):
        for item in node.items:
            _no_nested_filters(item)
    elif isinstance(node, Not):
        _no_nested_filters(node.item)
