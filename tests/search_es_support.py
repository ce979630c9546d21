"""The shared fake Elasticsearch (``tests/fakes``), plus two things search tests need from it
that it does not do yet. They are added here, narrowly, rather than in the fake's own files:

* ``prefix`` on a ``text`` field matches the start of any *token* (the fake compares the start of
  the whole value, which is right for keywords only);
* a ``highlight`` section is accepted and answered without highlights (the fake refuses it), so
  hits fall back to local highlighting; :attr:`SearchingFake.canned` replaces the whole answer
  when a test needs Elasticsearch's own highlight fragments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from fakes import es_dsl, es_server
from fakes.es_server import FakeElasticsearch

_original = es_dsl.matches


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
