"""What the fake cluster knows about documents and queries: mapping checks and the search DSL.

Kept apart from the HTTP side (``es_server.py``) so each reads on its own. The semantics follow
Elasticsearch where the fake implements them: strict dynamic mappings, per-type value checks,
multi-fields reading their parent's value, object arrays matching across elements unless the field
is ``nested``, dates compared as instants, sort values of dates as epoch milliseconds.
"""

from __future__ import annotations

import copy
import datetime as dt
import fnmatch
import re
import unicodedata
from typing import Any

import regex


class EsFault(Exception):
    """An error answer: raised anywhere in request handling, rendered like ES renders errors."""

    def __init__(self, status: int, type_: str, reason: str, **extra: Any):
        super().__init__(reason)
        self.status, self.type, self.reason, self.extra = status, type_, reason, extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.type, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


_LEAF_CHECKS = {
    "keyword": lambda v: isinstance(v, str | int | float | bool),
    "text": lambda v: isinstance(v, str | int | float | bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
    "short": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**15) <= v < 2**15,
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool) or v in ("true", "false"),
    "date": lambda v: parse_date(v) is not None,
    "date_nanos": lambda v: parse_date(v, nanos=True) is not None,
    "binary": lambda v: isinstance(v, str),
    "flattened": lambda v: isinstance(v, dict),
}


def validate(doc: dict[str, Any], properties: dict[str, Any], dynamic: Any, path: str) -> None:
    for name, value in doc.items():
        spec = properties.get(name)
        if spec is None:
            if str(dynamic) == "strict":
                raise EsFault(
                    400,
                    "strict_dynamic_mapping_exception",
                    f"[1:2] mapping set to strict, dynamic introduction of [{name}] within "
                    f"[{path.rstrip('.') or '_doc'}] is not allowed",
                )
            continue
        values = value if isinstance(value, list) else [value]
        kind = spec.get("type", "object")
        for item in values:
            if item is None:
                continue
            if kind in ("object", "nested"):
                if not isinstance(item, dict):
                    raise EsFault(
                        400,
                        "document_parsing_exception",
                        f"[1:2] object mapping for [{path}{name}] tried to parse field [{name}] as object, "
                        "but found a concrete value",
                    )
                validate(item, spec.get("properties", {}), spec.get("dynamic", dynamic), f"{path}{name}.")
            else:
                check = _LEAF_CHECKS.get(kind, lambda v: True)
                if not check(item):
                    raise EsFault(
                        400,
                        "document_parsing_exception",
                        f"[1:2] failed to parse field [{path}{name}] of type [{kind}] in document",
                    )


def parse_date(value: Any, *, nanos: bool = False) -> int | None:
    """An ES date value (ISO-8601 string or epoch millis) as Elasticsearch keeps it: whole epoch
    milliseconds for a ``date`` field (finer digits are dropped), epoch nanoseconds for
    ``date_nanos``; None when it is not a date."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        millis = int(value)
        return millis * 1_000_000 if nanos else millis
    if isinstance(value, str):
        if re.fullmatch(r"-?\d+", value):
            return int(value) * 1_000_000 if nanos else int(value)
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        micros = (parsed - _EPOCH) // dt.timedelta(microseconds=1)
        return micros * 1000 if nanos else micros // 1000
    return None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def date_value(value: Any, spec: dict[str, Any]) -> int | None:
    """``value`` as the field of mapping ``spec`` stores it, when it is a date field."""
    kind = spec.get("type")
    if kind not in ("date", "date_nanos"):
        return None
    return parse_date(value, nanos=kind == "date_nanos")


# -------------------------------------------------------------------------------------- queries


def field_spec(mappings: dict[str, Any], path: str) -> dict[str, Any]:
    props = mappings.get("properties", {})
    spec: dict[str, Any] = {}
    for part in path.split("."):
        if part in props:
            spec = props[part]
            props = spec.get("properties", {})
        elif part in spec.get("fields", {}):
            spec = spec["fields"][part]
            props = {}
        else:
            return {}
    return spec


def _values(doc: Any, path: str) -> list[Any]:
    """Values at a dotted path, through objects and arrays; a sub-field reads its parent's value."""
    current = [doc]
    parts = path.split(".")
    for i, part in enumerate(parts):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item:
                value = item[part]
                nxt.extend(value if isinstance(value, list) else [value])
            elif isinstance(item, str | int | float) and i == len(parts) - 1:
                nxt.append(item)  # ``body.raw`` / ``body.cjk``: multi-fields index the parent's value
        current = nxt
    return [v for v in current if v is not None]


def _cjk_width(text: str) -> str:
    """The ``cjk_width`` token filter: full-width ASCII to ASCII, half-width katakana to full
    width with its sound marks joined."""
    narrow = "".join(
        unicodedata.normalize("NFKC", c) if "\uff01" <= c <= "\uff5e" or "\uff65" <= c <= "\uff9f" else c
        for c in text
    )
    return unicodedata.normalize("NFC", narrow)


# ------------------------------------------------------------------------------------- analysis

#: Analyzers every cluster has; any other name must be defined in the index's ``analysis``
#: settings, or Elasticsearch refuses the mapping.
BUILTIN_ANALYZERS = frozenset(
    {"standard", "simple", "whitespace", "stop", "keyword", "pattern", "fingerprint", "cjk", "english"}
)
#: Token and character filters every cluster has (those the fake knows of, at least by name).
BUILTIN_FILTERS = frozenset({"lowercase", "uppercase", "cjk_width", "cjk_bigram", "stop", "asciifolding"})
BUILTIN_CHAR_FILTERS = frozenset({"html_strip"})


def analysis_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``analysis`` section of index settings, given nested (``{"index": {"analysis": ...}}``)
    or at the top (``{"analysis": ...}``)."""
    index = settings.get("index", {}) if isinstance(settings, dict) else {}
    found = (index.get("analysis") if isinstance(index, dict) else None) or settings.get("analysis")
    return found if isinstance(found, dict) else {}


def resolve_analyzers(mappings: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``mappings`` with every custom analyzer name replaced by its definition from the index's
    ``analysis`` settings, its character and token filters resolved too, as the cluster does when
    it builds an index. A name that is neither built in nor defined is refused, as Elasticsearch
    refuses it (``mapper_parsing_exception``)."""
    analysis = analysis_settings(settings)
    resolved = copy.deepcopy(mappings)

    def walk(props: dict[str, Any]) -> None:
        for spec in props.values():
            if not isinstance(spec, dict):
                continue
            for key in ("analyzer", "search_analyzer"):
                if isinstance(spec.get(key), str):
                    spec[key] = _resolve_analyzer(spec[key], analysis)
            walk(spec.get("properties", {}))
            walk(spec.get("fields", {}))

    walk(resolved.get("properties", {}))
    return resolved


def _resolve_analyzer(name: str, analysis: dict[str, Any]) -> str | dict[str, Any]:
    definition = analysis.get("analyzer", {}).get(name)
    if definition is None:
        if name in BUILTIN_ANALYZERS:
            return name
        raise EsFault(
            400,
            "mapper_parsing_exception",
            f"Failed to parse mapping: analyzer [{name}] has not been configured in mappings",
        )
    if definition.get("type", "custom") != "custom" or "tokenizer" not in definition:
        raise EsFault(
            400, "illegal_argument_exception", f"the fake only builds custom analyzers, not [{name}]"
        )

    def lookup(kind: str, item: Any, builtin: frozenset[str]) -> Any:
        if isinstance(item, dict) or item in builtin:
            return item
        found = analysis.get(kind, {}).get(item)
        if found is None:
            raise EsFault(
                400,
                "illegal_argument_exception",
                f"Custom Analyzer [{name}] failed to find {kind} under name [{item}]",
            )
        return found

    return {
        "name": name,
        "char_filter": [
            lookup("char_filter", c, BUILTIN_CHAR_FILTERS) for c in definition.get("char_filter", [])
        ],
        "tokenizer": definition["tokenizer"],
        "filter": [lookup("filter", f, BUILTIN_FILTERS) for f in definition.get("filter", [])],
    }


def apply_char_filters(text: str, char_filters: list[Any]) -> str:
    """Run a custom analyzer's character filters over ``text``: ``pattern_replace`` with its Java
    regular expression (the ``regex`` module reads ``\\p{IsHan}`` as Java does) and ``$n``
    group references, replacing every match left to right as Java's ``replaceAll`` does."""
    for char_filter in char_filters:
        if not isinstance(char_filter, dict) or char_filter.get("type") != "pattern_replace":
            raise EsFault(400, "illegal_argument_exception", f"the fake has no char_filter {char_filter}")
        replacement = str(char_filter.get("replacement", ""))

        def expand(match: regex.Match[str], replacement: str = replacement) -> str:
            return re.sub(r"\$(\d)|\\(.)", lambda r: match.group(int(r[1])) if r[1] else r[2], replacement)

        text = regex.sub(char_filter["pattern"], expand, text)
    return text


def filter_names(analyzer: dict[str, Any]) -> list[str]:
    """The token filters of a resolved custom analyzer, by type (a defined filter) or name."""
    return [f.get("type", "") if isinstance(f, dict) else f for f in analyzer.get("filter", [])]


def _tokens(text: Any, analyzer: str | dict[str, Any] | None) -> list[str]:
    if isinstance(analyzer, dict):  # a custom analyzer, resolved (resolve_analyzers)
        text = apply_char_filters(str(text), analyzer["char_filter"])
        analyzer = "cjk" if "cjk_bigram" in filter_names(analyzer) else "standard"
    if analyzer == "cjk":
        text = _cjk_width(str(text))
    words = re.findall(r"\w+", str(text).lower())
    if analyzer != "cjk":
        return words
    out: list[str] = []
    for word in words:
        if re.search(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]", word) and len(word) > 1:
            out.extend(word[i : i + 2] for i in range(len(word) - 1))
        else:
            out.append(word)
    return out


def is_text(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "text"


def _term_match(values: list[Any], wanted: Any, spec: dict[str, Any]) -> bool:
    if is_text(spec):
        return any(str(wanted) in _tokens(v, spec.get("analyzer")) for v in values)
    if spec.get("type") in ("date", "date_nanos"):
        return any(date_value(v, spec) == date_value(wanted, spec) for v in values)
    if spec.get("type") == "flattened":
        return any(wanted in (v.values() if isinstance(v, dict) else [v]) for v in values)
    if spec.get("normalizer") == "lowercase":  # folds the indexed value and the query's alike
        return any(_java_lower(str(v)) == _java_lower(str(wanted)) for v in values)
    return any(v == wanted or str(v) == str(wanted) for v in values)


def _java_lower(text: str) -> str:
    """Lucene's ``lowercase``: Java's ``Character.toLowerCase`` on each code point, so a final
    ``Σ`` is ``σ`` (no word-final ``ς``) and ``İ`` is plain ``i``."""
    return "".join("i" if c == "\u0130" else low if len(low := c.lower()) == 1 else c for c in text)


def _field_and_arg(spec: dict[str, Any], name: str) -> tuple[str, Any]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise EsFault(400, "parsing_exception", f"[{name}] query malformed, expected one field")
    return next(iter(spec.items()))


def matches(query: dict[str, Any], doc: dict[str, Any], doc_id: str, mappings: dict[str, Any]) -> float:
    if not isinstance(query, dict) or len(query) != 1:
        raise EsFault(400, "parsing_exception", f"query malformed, expected exactly one clause: {query}")
    ((kind, arg),) = query.items()
    if kind == "match_all":
        return 1.0
    if kind == "match_none":
        return 0.0
    if kind == "ids":
        return 1.0 if doc_id in [str(v) for v in arg.get("values", [])] else 0.0
    if kind == "bool":
        return _bool(arg, doc, doc_id, mappings)
    if kind == "nested":
        path = arg["path"]
        spec = field_spec(mappings, path)
        if spec.get("type") != "nested":
            raise EsFault(
                400,
                "query_shard_exception",
                f"[nested] nested object under path [{path}] is not of nested type",
            )
        for obj in _values(doc, path):
            scoped = _set_path({}, path, obj)
            if matches(arg["query"], scoped, doc_id, mappings):
                return 1.0
        return 0.0
    if kind == "exists":
        return 1.0 if _values(doc, arg["field"]) else 0.0
    if kind in ("term", "terms", "match", "match_phrase", "prefix", "wildcard", "range"):
        field_name, spec_arg = _field_and_arg(arg, kind)
        spec = field_spec(mappings, field_name)
        values = _values(doc, field_name)
        if kind == "term":
            wanted = spec_arg.get("value") if isinstance(spec_arg, dict) else spec_arg
            return 1.0 if _term_match(values, wanted, spec) else 0.0
        if kind == "terms":
            return 1.0 if any(_term_match(values, w, spec) for w in spec_arg) else 0.0
        if kind in ("match", "match_phrase"):
            text = spec_arg.get("query") if isinstance(spec_arg, dict) else spec_arg
            if not is_text(spec):
                return 1.0 if _term_match(values, text, spec) else 0.0
            want = _tokens(text, spec.get("analyzer"))
            for value in values:
                have = _tokens(value, spec.get("analyzer"))
                if kind == "match_phrase":
                    n = len(want)
                    if n and any(have[i : i + n] == want for i in range(len(have) - n + 1)):
                        return 1.0
                else:
                    operator = spec_arg.get("operator", "or") if isinstance(spec_arg, dict) else "or"
                    hits = sum(1 for w in want if w in have)
                    if (operator == "and" and hits == len(want) and want) or (operator == "or" and hits):
                        return float(hits)
            return 0.0
        if kind == "prefix":
            wanted = spec_arg.get("value") if isinstance(spec_arg, dict) else spec_arg
            return 1.0 if any(str(v).startswith(str(wanted)) for v in values) else 0.0
        if kind == "wildcard":
            wanted = spec_arg.get("value") if isinstance(spec_arg, dict) else spec_arg
            return 1.0 if any(fnmatch.fnmatchcase(str(v), str(wanted)) for v in values) else 0.0
        if kind == "range":
            return 1.0 if any(_in_range(v, spec_arg, spec) for v in values) else 0.0
    raise EsFault(400, "parsing_exception", f"unknown query [{kind}] (not implemented by the fake)")


def _bool(arg: dict[str, Any], doc: dict[str, Any], doc_id: str, mappings: dict[str, Any]) -> float:
    def clauses(key: str) -> list[dict[str, Any]]:
        value = arg.get(key, [])
        return value if isinstance(value, list) else [value]

    unknown = set(arg) - {"must", "filter", "should", "must_not", "minimum_should_match", "boost"}
    if unknown:
        raise EsFault(400, "parsing_exception", f"[bool] query does not support {sorted(unknown)}")
    score = 0.0
    for clause in clauses("must") + clauses("filter"):
        matched = matches(clause, doc, doc_id, mappings)
        if not matched:
            return 0.0
        score += matched
    if any(matches(c, doc, doc_id, mappings) for c in clauses("must_not")):
        return 0.0
    should = clauses("should")
    if should:
        needed = int(arg.get("minimum_should_match", 0 if (arg.get("must") or arg.get("filter")) else 1))
        scores = [matches(c, doc, doc_id, mappings) for c in should]
        if sum(1 for s in scores if s) < needed:
            return 0.0
        score += sum(scores)
    return score or 1.0


def _set_path(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    parts = path.split(".")
    current = doc
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value
    return doc


def _in_range(value: Any, bounds: dict[str, Any], spec: dict[str, Any]) -> bool:
    def norm(v: Any) -> Any:
        if spec.get("type") in ("date", "date_nanos"):
            return date_value(v, spec)
        return v

    actual = norm(value)
    for op, bound in bounds.items():
        if op in ("format", "time_zone", "boost"):
            continue
        b = norm(bound)
        if spec.get("type") == "date_nanos" and b is not None and not 0 <= b < 2**63:
            # like DateUtils.toLong: a bound a date_nanos field cannot hold fails the whole query
            where = "before the epoch in 1970" if b < 0 else "after 2262-04-11T23:47:16.854775807"
            raise EsFault(
                400,
                "query_shard_exception",
                f"failed to create query: date[{bound}] is {where} and cannot be stored in "
                "nanosecond resolution",
            )
        if actual is None:
            return False
        ok = {"gte": actual >= b, "gt": actual > b, "lte": actual <= b, "lt": actual < b}.get(op)
        if ok is None:
            raise EsFault(400, "parsing_exception", f"[range] query does not support [{op}]")
        if not ok:
            return False
    return actual is not None


def sort_spec(sort: Any) -> list[tuple[str, str]]:
    if sort is None:
        return []
    items = sort if isinstance(sort, list) else [sort]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append((item, "desc" if item == "_score" else "asc"))
        else:
            ((name, opts),) = item.items()
            order = opts if isinstance(opts, str) else opts.get("order", "asc")
            out.append((name, order))
    return out


def sort_value(hit: dict[str, Any], name: str, spec: dict[str, Any] | None = None) -> Any:
    """The sort value of ``hit`` for field ``name``; a date field sorts by what the index keeps
    (epoch milliseconds for ``date``, nanoseconds for ``date_nanos``), as Elasticsearch does."""
    if name == "_score":
        return hit["_score"]
    if name in ("_id", "_doc"):
        return hit["_id"]
    values = _values(hit["_source"], name)
    if not values:
        return None
    value = values[0]
    if spec is not None and spec.get("type") in ("date", "date_nanos"):
        return date_value(value, spec)
    parsed = parse_date(value) if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}T", value) else None
    return parsed if parsed is not None else value


def sort_key(value: Any) -> tuple[int, Any]:
    return (1, 0) if value is None else (0, value)


def is_after(values: list[Any], bounds: list[Any], sort: list[tuple[str, str]]) -> bool:
    """Does a hit with these sort values come after ``search_after`` = ``bounds``?"""
    for value, bound, (_, order) in zip(values, bounds, sort, strict=False):
        if value == bound:
            continue
        if value is None:
            return True
        return value > bound if order == "asc" else value < bound
    return False


def filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    if spec is True:
        return source
    if spec is False:
        return None
    includes = spec if isinstance(spec, list) else spec.get("includes", [])
    if isinstance(includes, str):
        includes = [includes]
    return {k: v for k, v in source.items() if any(fnmatch.fnmatchcase(k, p) for p in includes)}
