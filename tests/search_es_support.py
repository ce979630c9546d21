"""The shared fake Elasticsearch (``tests/fakes``), plus two things search tests need from it
that it does not do yet. They are added here, narrowly, rather than in the fake's own files:

* ``prefix`` on a ``text`` field matches the start of any *token* (the fake compares the start of
  the whole value, which is right for keywords only);
* a ``highlight`` section is accepted and answered without highlights (the fake refuses it), so
  hits fall back to local highlighting; :attr:`SearchingFake.canned` replaces the whole answer
  when a test needs Elasticsearch's own highlight fragments;
* text is cut into tokens where Unicode's word boundaries (UAX #29, as the ``standard`` tokenizer
  cuts it) fall, not at runs of ``\\w``: a Latin word next to CJK text (``iPhone价格``) is its own
  token, each Han or hiragana character is one, and the ``cjk`` analyzer bigrams only CJK
  characters that touch, passing every other token through unmodified (Elasticsearch's
  ``cjk_bigram`` filter). The boundaries come from the ``regex`` module's own UAX #29
  implementation, not from Vigil's tables, so the fake stays an independent witness.
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
#: A piece the standard tokenizer emits: it holds a letter, digit, mark or connector, or is an emoji.
_TOKEN_PIECE = regex.compile(r"[\p{L}\p{N}\p{M}\p{Pc}\p{Extended_Pictographic}]")
#: Characters of the scripts the ``cjk_bigram`` filter bigrams (han, hiragana, katakana, hangul).
_CJK_PIECE = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")


def _standard(text: str) -> list[tuple[str, int]]:
    """The ``standard`` tokenizer's tokens of ``text``, lower-cased, with their start offsets."""
    out: list[tuple[str, int]] = []
    start = 0
    for piece in _BOUNDARY.split(text):
        if piece and _TOKEN_PIECE.search(piece):
            out.append((piece.lower(), start))
        start += len(piece)
    return out


def _tokens(text: Any, analyzer: str | None) -> list[str]:
    """``standard``: the UAX #29 tokens; ``cjk``: those, width-folded, with touching CJK characters
    as overlapping bigrams (a CJK character touching no other stays a unigram)."""
    if analyzer != "cjk":
        return [token for token, _ in _standard(str(text))]
    out: list[str] = []
    run: list[str] = []  # CJK characters that touch, waiting to be bigrammed
    end = -1

    def flush() -> None:
        out.extend([run[0]] if len(run) == 1 else [a + b for a, b in itertools.pairwise(run)])
        run.clear()

    for token, start in _standard(es_dsl._cjk_width(str(text))):
        if _CJK_PIECE.search(token):
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
