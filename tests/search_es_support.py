"""The shared fake Elasticsearch (``tests/fakes``), plus two things search tests need from it
that it does not do yet. They are added here, narrowly, rather than in the fake's own files:

* ``prefix`` on a ``text`` field matches the start of any *token* (the fake compares the start of
  the whole value, which is right for keywords only);
* a ``highlight`` section is accepted and answered without highlights (the fake refuses it), so
  hits fall back to local highlighting; :attr:`SearchingFake.canned` replaces the whole answer
  when a test needs Elasticsearch's own highlight fragments;
* text is cut into tokens where Unicode's word boundaries (UAX #29, as the ``standard`` tokenizer
  cuts it) fall, not at runs of ``\\w``: a Latin word next to CJK text (``iPhone价格``) is its own
  token, each Han or hiragana character is one, a Hebrew word keeps its ``'`` and ``"``
  (``פרופ'``, ``צה"ל``), and a piece with no letter or digit is no token (``____``). Each token
  gets the type Lucene's grammar gives it: a run of Hangul alone is ``<HANGUL>``, of katakana
  alone ``<KATAKANA>``, a lone Han or hiragana character ``<IDEOGRAPHIC>``/``<HIRAGANA>``, and any
  other token ``<ALPHANUM>``: Hangul glued to Latin letters or digits (``iPhone을``, ``3개``) and
  an iteration mark ``々`` (a letter to UAX #29) are. The ``cjk`` analyzer bigrams only the four
  CJK types, in tokens that touch, passing every other token through unmodified
  (Elasticsearch's ``cjk_bigram`` filter). A custom analyzer (the index's ``vigil_cjk``) runs its
  character filters first, then those of its token filters the fake knows; it refuses any other.
  The boundaries come from the ``regex`` module's own UAX #29 implementation, not from Vigil's
  tables, so the fake stays an independent witness. English stop words, which the stock ``cjk``
  analyzer drops (the index's ``vigil_cjk`` keeps them), are kept.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import regex
from elasticsearch import Elasticsearch
from es_support import config
from fakes import es_dsl, es_server
from fakes.es_server import FakeElasticsearch

from exporters.elasticsearch.bulk import index_rows
from exporters.elasticsearch.config import EsConfig, make_client
from exporters.elasticsearch.setup import install

_original = es_dsl.matches

#: Pieces between UAX #29 word boundaries (the ``regex`` module's ``WORD`` flag).
_BOUNDARY = regex.compile(r"(?wV1)\b")
#: A piece the standard tokenizer emits: it holds a character one of the rules of Lucene's grammar
#: starts with (a letter or digit to UAX #29, katakana, Han, hiragana, a Southeast Asian script),
#: or is an emoji. Anything else is dropped: a run of connectors alone (``____``), a lone
#: combining mark, symbols that are letters or digits to Unicode but not to UAX #29 (``〆``, ``²``).
_TOKEN_PIECE = regex.compile(
    r"[\p{Word_Break=ALetter}\p{Word_Break=Hebrew_Letter}\p{Word_Break=Numeric}\p{Word_Break=Katakana}"
    r"\p{Script=Han}\p{Script=Hiragana}\p{Line_Break=Complex_Context}\p{Extended_Pictographic}]"
)
_EXTEND = r"[\p{Word_Break=Extend}\p{Word_Break=Format}]*"
#: The token types ``cjk_bigram`` bigrams, as Lucene's ``StandardTokenizer`` grammar types them: a
#: run of Hangul letters alone, of katakana alone, one Han character (not the iteration mark
#: 々, a letter to UAX #29, so a word: ``<ALPHANUM>``), one hiragana character.
_CJK_TYPES = (
    regex.compile(rf"(?:[\p{{Script=Hangul}}&&\p{{Word_Break=ALetter}}]{_EXTEND})+", regex.V1),
    regex.compile(rf"(?:\p{{Word_Break=Katakana}}{_EXTEND})+", regex.V1),
    regex.compile(rf"[\p{{Script=Han}}--\p{{Word_Break=ALetter}}]{_EXTEND}", regex.V1),
    regex.compile(rf"\p{{Script=Hiragana}}{_EXTEND}", regex.V1),
)
_KNOWN_FILTERS = {"cjk_width", "lowercase", "cjk_bigram", "stop"}


def _standard(text: str) -> list[tuple[str, int, bool]]:
    """The ``standard`` tokenizer's tokens of ``text``, with their start offsets and whether
    ``cjk_bigram`` takes them (their type is one of the four CJK ones)."""
    out: list[tuple[str, int, bool]] = []
    start = 0
    for piece in _BOUNDARY.split(text):
        if piece and _TOKEN_PIECE.search(piece):
            out.append((piece, start, any(t.fullmatch(piece) for t in _CJK_TYPES)))
        start += len(piece)
    return out


def _tokens(text: Any, analyzer: str | dict[str, Any] | None) -> list[str]:
    """``standard``: the UAX #29 tokens, lower-cased; ``cjk``: those, width-folded, with touching
    tokens of the CJK types as overlapping bigrams of their characters (a CJK character touching
    no other stays a unigram); a custom analyzer: its character filters, then its token filters."""
    text = str(text)
    if isinstance(analyzer, dict):  # resolved from the index's settings (es_dsl.resolve_analyzers)
        text = es_dsl.apply_char_filters(text, analyzer["char_filter"])
        filters = es_dsl.filter_names(analyzer)
        if analyzer["tokenizer"] != "standard" or not set(filters) <= _KNOWN_FILTERS:
            raise AssertionError(f"the fake cannot run analyzer {analyzer}")
    elif analyzer in (None, "standard"):
        filters = ["lowercase"]
    elif analyzer == "cjk":
        filters = ["cjk_width", "lowercase", "cjk_bigram", "stop"]
    else:
        raise AssertionError(f"the fake does not know analyzer {analyzer!r}")
    if "cjk_width" in filters:
        text = es_dsl._cjk_width(text)
    tokens = _standard(text)
    if "lowercase" in filters:
        tokens = [(es_dsl._java_lower(token), start, cjk) for token, start, cjk in tokens]
    if "cjk_bigram" not in filters:
        return [token for token, _, _ in tokens]
    out: list[str] = []
    run: list[str] = []  # characters of CJK tokens that touch, waiting to be bigrammed
    end = -1

    def flush() -> None:
        if run:
            out.extend([run[0]] if len(run) == 1 else [a + b for a, b in itertools.pairwise(run)])
        run.clear()

    for token, start, cjk in tokens:
        if cjk:
            if start != end:
                flush()
            run.extend(token)
            end = start + len(token)
        else:
            flush()
            out.append(token)
    flush()
    return out


def _matches(query: dict[str, Any], doc: dict[str, Any], doc_id: str, mappings: dict[str, Any]) -> float:
    if isinstance(query, dict) and len(query) == 1:
        ((kind, arg),) = query.items()
        if kind == "prefix" and isinstance(arg, dict) and len(arg) == 1:
            ((field, spec_arg),) = arg.items()
            spec = es_dsl.field_spec(mappings, field)
            wanted = spec_arg.get("value") if isinstance(spec_arg, dict) else spec_arg
            values = es_dsl._values(doc, field)
            if kind == "prefix" and es_dsl.is_text(spec):
                tokens = [t for v in values for t in es_dsl._tokens(v, spec.get("analyzer"))]
                return 1.0 if any(t.startswith(str(wanted)) for t in tokens) else 0.0
    return _original(query, doc, doc_id, mappings)


@contextlib.contextmanager
def search_semantics() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(es_dsl, "matches", _matches)
        patch.setattr(es_server, "matches", _matches)
        patch.setattr(es_dsl, "_tokens", _tokens)
        yield


class SearchingFake(FakeElasticsearch):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.canned: dict[str, Any] | None = None

    def _search(self, target: str, body: Any, *, count: bool, params: dict[str, str]) -> tuple[int, Any]:
        if self.canned is not None and not count:
            return 200, self.canned
        if isinstance(body, dict) and "highlight" in body:
            body = {k: v for k, v in body.items() if k != "highlight"}
        return super()._search(target, body, count=count, params=params)


@contextlib.contextmanager
def indexed_cluster(
    rows: list[dict[str, Any]], **server_settings: Any
) -> Iterator[tuple[SearchingFake, EsConfig, Elasticsearch]]:
    """A searching fake cluster (with :func:`search_semantics`) holding ``rows``: the template
    installed through the official client, every row indexed, the index refreshed."""
    with search_semantics(), SearchingFake() as server:
        for name, value in server_settings.items():
            setattr(server, name, value)
        cfg = config(server.url)
        client = make_client(cfg)
        try:
            install(client, cfg)
            assert index_rows(client, rows, cfg).indexed == len(rows)
            client.indices.refresh(index=cfg.alias)
            yield server, cfg, client
        finally:
            client.close()
