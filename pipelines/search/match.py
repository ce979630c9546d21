"""Evaluating a query's text tree in Python, and finding what to highlight.

The engines decide what matches; this module answers two smaller questions with the Python twins
of the engines' patterns (:func:`pipelines.search.text.py_pattern`): *where* in a hit's text the
searched words are (highlighting), and whether a text that only exists in Python (the CRM view of
a body, built from DLP findings) matches the query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from pipelines.search.query import And, Leaf, Node, Not, Or, Prefix, leaves

Span = tuple[int, int]


@lru_cache(maxsize=512)
def leaf_pattern(leaf: Leaf) -> tuple[re.Pattern[str], bool]:
    """The Python pattern of a word or phrase, and whether it is matched on the width-folded text
    (text with CJK, as :func:`pipelines.search.sql.compile_query` does)."""
    from pipelines.search.text import py_pattern, search_segments

    segs, folds = search_segments(leaf.text)
    return py_pattern(segs, prefix=isinstance(leaf, Prefix)), folds


def _leaf_spans(leaf: Leaf, text: str) -> Iterator[Span]:
    from pipelines.search.text import has_width_forms, width_fold_offsets

    pattern, folds = leaf_pattern(leaf)
    if not folds or not has_width_forms(text):
        yield from (m.span() for m in pattern.finditer(text))
        return
    folded, starts = width_fold_offsets(text)
    yield from ((starts[m.start()], starts[m.end()]) for m in pattern.finditer(folded))


def evaluate(node: Node | None, text: str | None) -> bool:
    """Does ``text`` satisfy the tree? A missing text is an empty one (so NOT x holds)."""
    if node is None:
        return True
    value = text or ""
    if isinstance(node, And):
        return all(evaluate(i, value) for i in node.items)
    if isinstance(node, Or):
        return any(evaluate(i, value) for i in node.items)
    if isinstance(node, Not):
        return not evaluate(node.item, value)
    return next(_leaf_spans(node, value), None) is not None


def spans(node: Node | None, text: str | None) -> list[Span]:
    """Sorted, merged character spans of every occurrence of the tree's positive words."""
    if not text or node is None:
        return []
    found: list[Span] = []
    for leaf in leaves(node):
        found.extend((start, end) for start, end in _leaf_spans(leaf, text) if end > start)
    return merge(found)


def merge(found: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in sorted(found):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def marked_spans(marked: str, pre: str, post: str) -> tuple[str, list[Span]]:
    """Text and spans from a string with highlight markers (how Elasticsearch returns them)."""
    plain: list[str] = []
    found: list[Span] = []
    pos = 0
    start: int | None = None
    for piece in re.split(f"({re.escape(pre)}|{re.escape(post)})", marked):
        if piece == pre:
            start = pos
        elif piece == post:
            if start is not None and pos > start:
                found.append((start, pos))
            start = None
        else:
            plain.append(piece)
            pos += len(piece)
    return "".join(plain), merge(found)
