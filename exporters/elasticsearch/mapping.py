"""The Elasticsearch mapping, derived from the record model.

There is no hand-kept field list: :func:`record_mappings` walks ``Record.model_fields`` (and the
models nested in it) and turns each annotation into an ES field type:

=====================================  ==========================================================
Python annotation                      ES field
=====================================  ==========================================================
``str``, ``StrEnum``, ``Literal``      ``keyword`` (ids, enums, handles: exact match, aggregations)
``datetime``                           ``date_nanos`` (documents carry ISO-8601 strings in UTC, to
                                       the microsecond, like the archive: a ``date`` field would
                                       round them to milliseconds, so sorting and ``range``
                                       bounds would differ from the embedded engine's)
``date``                               ``date`` with ``strict_date``
``bool``                               ``boolean``
``int``                                ``long``; ``Annotated[int, "int32"]`` → ``integer``,
                                       ``"int16"`` → ``short``
``float``                              ``double``; ``Annotated[float, "float32"]`` → ``float``
``bytes``                              ``binary``
``list[X]``                            the mapping of ``X`` (ES arrays need no mapping of their own)
a pydantic model                       ``object`` with its fields as properties
``dict[str, str]``                     ``flattened`` (open-ended keys must not grow the mapping)
=====================================  ==========================================================

A field's ``json_schema_extra={"es": {...}}`` (see ``pipelines.record.es``) overrides or extends the
derived mapping, whatever it contains: the body's ``text`` field with ``cjk`` and ``raw``
sub-fields, ``flattened`` attributes, ``nested`` DLP findings (so a query can ask for one finding
that is both a given entity *and* a given action), ``index: false``, ...

The root is ``dynamic: strict``: a document carrying a field the model does not know is refused
by Elasticsearch (and dead-lettered by Vigil) instead of quietly widening the mapping.

:data:`ANALYSIS` defines the one analyzer that is not stock, the text fields' ``cjk`` sub-field's
(see :data:`pipelines.record.CJK_ANALYZER`); it goes into the index settings beside the mapping.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from enum import Enum
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipelines.record import CJK_ANALYZER, Record

DATE_FORMAT = "strict_date_optional_time||epoch_millis"
#: Record times: microseconds in the archive, so nanosecond-capable in the index.
DATETIME_FORMAT = "strict_date_optional_time_nanos||epoch_millis"

_WIDTHS = {"int16": "short", "int32": "integer", "float32": "float"}
_CONTAINERS = {"object", "nested"}

#: A Japanese iteration mark (``々``, vertical ``〻``) after a Han character, replaced by that
#: character before the tokenizer sees the text: ``佐々木`` is indexed and searched as ``佐佐木``.
#: Without it, the tokenizer makes the mark a word of its own (UAX #29 counts it a letter), the
#: bigrams stop at it, and ``佐々木`` is not found in ``佐々木さん`` (the query's last ``木`` is a
#: unigram, the text's is part of ``木さ``). Same length, so highlight offsets stay right. The
#: embedded engine folds the same way (:func:`pipelines.search.text.width_fold`).
ITERATION_MARK_FILTER = {
    "type": "pattern_replace",
    "pattern": "(\\p{IsHan})[\u3005\u303b]",
    "replacement": "$1$1",
}

#: The index settings' ``analysis``: Elasticsearch's ``cjk`` analyzer rebuilt as a custom one (the
#: same tokenizer and filters) with :data:`ITERATION_MARK_FILTER` in front and without its English
#: stop words: the stock one drops ``a``, ``at``, ``it``, ``s``, ``t``, ... even inside a CJK word
#: (``IT部門`` would find *人事部門*, ``Tシャツ`` *ポロシャツ*), which the embedded engine, reading
#: every word, never does.
ANALYSIS: dict[str, Any] = {
    "char_filter": {"vigil_iteration_marks": ITERATION_MARK_FILTER},
    "analyzer": {
        CJK_ANALYZER: {
            "type": "custom",
            "char_filter": ["vigil_iteration_marks"],
            "tokenizer": "standard",
            "filter": ["cjk_width", "lowercase", "cjk_bigram"],
        }
    },
}


def record_mappings(model: type[BaseModel] = Record) -> dict[str, Any]:
    """The ``mappings`` section of the index template for ``model`` (default: :class:`Record`)."""
    return {
        "dynamic": "strict",
        "_meta": {"vigil_record": model.__name__},
        "properties": model_properties(model),
    }


def model_properties(model: type[BaseModel]) -> dict[str, Any]:
    omitted = omitted_fields(model)
    return {name: field_mapping(info) for name, info in model.model_fields.items() if name not in omitted}


def omitted_fields(model: type[BaseModel]) -> frozenset[str]:
    """Top-level fields marked ``es(omit=True)``: kept in the archive, never sent to the index."""
    return frozenset(name for name, info in model.model_fields.items() if es_override(info).get("omit"))


def field_mapping(info: FieldInfo) -> dict[str, Any]:
    """ES mapping of one pydantic field, with its ``es`` override applied."""
    derived = _narrowed(info.metadata) or annotation_mapping(info.annotation)
    return apply_override(derived, es_override(info))


def es_override(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    if not isinstance(extra, dict):
        return {}
    override = extra.get("es")
    if override is None:
        return {}
    if not isinstance(override, dict):
        raise TypeError(f"the 'es' override must be a dict of mapping parameters, got {override!r}")
    return dict(override)


def apply_override(derived: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Overlay ``override`` on ``derived``.

    When the override changes the type, parameters of the old type would be invalid for the new
    one (``ignore_above`` on ``text``), so only ``properties`` survive, and only into an object or
    nested type.
    """
    if not override:
        return derived
    new_type = override.get("type")
    old_type = derived.get("type", "object" if "properties" in derived else None)
    if new_type is not None and new_type != old_type:
        base = (
            {"properties": derived["properties"]}
            if new_type in _CONTAINERS and "properties" in derived
            else {}
        )
    else:
        base = dict(derived)
    base.update(override)
    return base


def annotation_mapping(annotation: Any) -> dict[str, Any]:
    annotation = _unwrap_optional(annotation)
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *meta = get_args(annotation)
        return _narrowed(meta) or annotation_mapping(base)
    if origin is list:
        (item,) = get_args(annotation)
        return annotation_mapping(item)
    if origin is dict:
        return {"type": "flattened"}
    if origin is Literal:
        return {"type": "keyword"}
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return {"properties": model_properties(annotation)}
        if issubclass(annotation, Enum | str):
            return {"type": "keyword"}
        if issubclass(annotation, bytes):
            return {"type": "binary"}
        if issubclass(annotation, bool):  # before int: bool is an int subclass
            return {"type": "boolean"}
        if issubclass(annotation, int):
            return {"type": "long"}
        if issubclass(annotation, float):
            return {"type": "double"}
        if issubclass(annotation, dt.datetime):  # before date: datetime is a date subclass
            return {"type": "date_nanos", "format": DATETIME_FORMAT}
        if issubclass(annotation, dt.date):
            return {"type": "date", "format": "strict_date"}
    raise TypeError(
        f"no Elasticsearch mapping for {annotation!r}; add json_schema_extra=es(type=...) to the field"
    )


def _narrowed(meta: Any) -> dict[str, Any] | None:
    for item in meta:
        if isinstance(item, str) and item in _WIDTHS:
            return {"type": _WIDTHS[item]}
    return None


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        raise TypeError(f"cannot map a union of several types: {annotation!r}")
    return annotation
