"""The ES mapping and index layout are derived from the record model, not kept by hand."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import pyarrow as pa
import pytest
from pydantic import BaseModel, Field

from exporters.elasticsearch.config import EsConfig
from exporters.elasticsearch.layout import (
    MONTH_SLACK_DAYS,
    ilm_policy,
    index_for,
    index_template,
    policy_name,
)
from exporters.elasticsearch.mapping import (
    ANALYSIS,
    annotation_mapping,
    apply_override,
    omitted_fields,
    record_mappings,
)
from pipelines.record import ARROW_SCHEMA, Finding, Record, arrow_field, es, to_micros

CFG = EsConfig(url="http://localhost:9200")


def _lookup(mappings: dict[str, Any], path: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"properties": mappings["properties"]}
    for part in path.split("."):
        spec = spec["properties"][part]
    return spec


def _arrow_paths(fields: Any, prefix: str = "") -> set[str]:
    paths = set()
    for f in fields:
        kind = f.type
        while pa.types.is_list(kind):
            kind = kind.value_type
        paths.add(prefix + f.name)
        if pa.types.is_struct(kind):
            paths |= _arrow_paths(list(kind), f"{prefix}{f.name}.")
    return paths


def _mapping_paths(properties: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for name, spec in properties.items():
        paths.add(prefix + name)
        paths |= _mapping_paths(spec.get("properties", {}), f"{prefix}{name}.")
    return paths


def test_every_arrow_field_is_mapped_and_nothing_else():
    mappings = record_mappings()
    # content_sha256 stays in the archive only: a hash over the body would let a reader of the
    # index who may not see the body test guesses at a redacted value
    assert omitted_fields(Record) == {"content_sha256"}
    assert _arrow_paths(ARROW_SCHEMA) - {"content_sha256"} == _mapping_paths(mappings["properties"])


def test_a_model_with_new_fields_gets_them_mapped_without_edits():
    # What a future schema version does: add fields to Record. The mapping must follow unaided.
    class Hold(BaseModel):
        hold_id: str
        placed: dt.datetime

    class RecordNext(Record):
        holds: list[Hold] = Field(default_factory=list, json_schema_extra=es(type="nested"))
        review_score: Annotated[float, "float32"] = 0.0
        reviewed: bool = False

    mappings = record_mappings(RecordNext)
    arrow = [arrow_field(n, f) for n, f in RecordNext.model_fields.items()]
    assert _arrow_paths(arrow) - {"content_sha256"} == _mapping_paths(mappings["properties"])
    holds = mappings["properties"]["holds"]
    assert holds["type"] == "nested"
    assert holds["properties"]["placed"]["type"] == "date_nanos"
    assert mappings["properties"]["review_score"] == {"type": "float"}
    assert mappings["properties"]["reviewed"] == {"type": "boolean"}


def test_dlp_findings_are_nested_so_one_finding_can_match_several_conditions():
    findings = _lookup(record_mappings(), "dlp_findings")
    assert findings["type"] == "nested"
    assert set(findings["properties"]) == set(Finding.model_fields)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("record_id", {"type": "keyword"}),
        ("channel", {"type": "keyword"}),  # enum
        ("event_type", {"type": "keyword"}),  # optional enum
        # microsecond times: a "date" field would round them to milliseconds
        ("event_time", {"type": "date_nanos", "format": "strict_date_optional_time_nanos||epoch_millis"}),
        ("ingest_time", {"type": "date_nanos", "format": "strict_date_optional_time_nanos||epoch_millis"}),
        ("is_group", {"type": "boolean"}),
        ("source_offset", {"type": "long"}),
        ("schema_version", {"type": "short"}),  # Annotated[int, "int16"]
        # es override on a dict; a leaf over 8,191 characters (32,766 bytes of UTF-8) is not indexed
        ("attributes", {"type": "flattened", "ignore_above": 8191}),
        ("sender.id", {"type": "keyword"}),
        ("participants.groups", {"type": "keyword"}),  # list[str] inside a list of models
        ("attachments.size", {"type": "long"}),
        ("dlp_action", {"type": "keyword"}),
        ("dlp_findings.start", {"type": "integer"}),  # Annotated[int, "int32"]
        ("dlp_findings.score", {"type": "float"}),  # Annotated[float, "float32"]
        ("blocked", {"type": "boolean"}),
    ],
)
def test_field_types(path, expected):
    assert _lookup(record_mappings(), path) == expected


@pytest.mark.parametrize("path", ["body", "participants", "sender", "attachments", "recipients"])
def test_no_field_is_mapped_as_keyword_when_it_is_text_or_an_object(path):
    assert _lookup(record_mappings(), path).get("type") != "keyword"


def test_body_carries_the_model_override_exactly():
    body = _lookup(record_mappings(), "body")
    assert body["type"] == "text"
    assert body["analyzer"] == "standard"
    assert body["fields"]["cjk"] == {"type": "text", "analyzer": "vigil_cjk"}
    assert body["fields"]["raw"]["type"] == "keyword"
    assert "format" not in body and "properties" not in body


@pytest.mark.parametrize("path", ["org", "sub_org"])
def test_organisations_have_a_lower_cased_sub_field_for_searches_that_ignore_case(path):
    # the stock "lowercase" normalizer folds every script; a term's case_insensitive only ASCII
    assert _lookup(record_mappings(), path) == {
        "type": "keyword",
        "fields": {"folded": {"type": "keyword", "normalizer": "lowercase"}},
    }


def test_lists_of_models_are_objects_unless_overridden():
    assert "type" not in _lookup(record_mappings(), "participants")  # plain object
    assert set(_lookup(record_mappings(), "participants")["properties"]) == set(
        Record.model_fields["sender"].annotation.model_fields
    )


def test_root_is_strict():
    assert record_mappings()["dynamic"] == "strict"


class _Sub(BaseModel):
    code: str
    when: dt.datetime | None = None


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, {"type": "keyword"}),
        (int | None, {"type": "long"}),
        (Annotated[int, "int32"], {"type": "integer"}),
        (float, {"type": "double"}),
        (Annotated[float, "float32"], {"type": "float"}),
        (bytes, {"type": "binary"}),
        (dt.date, {"type": "date", "format": "strict_date"}),
        (list[list[str]], {"type": "keyword"}),
        (dict[str, int], {"type": "flattened"}),
        (
            _Sub,
            {
                "properties": {
                    "code": {"type": "keyword"},
                    "when": {"type": "date_nanos", "format": "strict_date_optional_time_nanos||epoch_millis"},
                }
            },
        ),
    ],
)
def test_annotation_mapping(annotation, expected):
    assert annotation_mapping(annotation) == expected


@pytest.mark.parametrize("annotation", [int | str, set[int], complex, type(None)])
def test_unmappable_annotations_fail_loudly(annotation):
    with pytest.raises(TypeError):
        annotation_mapping(annotation)


@pytest.mark.parametrize(
    ("derived", "override", "expected"),
    [
        ({"type": "keyword"}, {}, {"type": "keyword"}),
        ({"type": "keyword"}, {"index": False}, {"type": "keyword", "index": False}),
        (
            {"type": "keyword", "ignore_above": 256},
            {"type": "text"},
            {"type": "text"},
        ),  # params of old type dropped
        (
            {"properties": {"a": {"type": "long"}}},
            {"type": "nested"},
            {"type": "nested", "properties": {"a": {"type": "long"}}},
        ),
        (
            {"properties": {"a": {"type": "long"}}},
            {"enabled": False},
            {"properties": {"a": {"type": "long"}}, "enabled": False},
        ),
        ({"properties": {"a": {"type": "long"}}}, {"type": "flattened"}, {"type": "flattened"}),
    ],
)
def test_apply_override(derived, override, expected):
    assert apply_override(derived, override) == expected


def test_override_that_is_not_a_dict_is_an_error():
    class Bad(BaseModel):
        x: str = Field(json_schema_extra={"es": "keyword"})

    with pytest.raises(TypeError, match="must be a dict"):
        record_mappings(Bad)


# ---------------------------------------------------------------------------------------- layout

UTC = dt.UTC


@pytest.mark.parametrize(
    ("when", "index"),
    [
        (dt.datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC), "vigil-records-2026.01.01"),
        (dt.datetime(2026, 2, 1, 0, 0, tzinfo=UTC), "vigil-records-2026.02.01"),
        # 08:30 in Tokyo on 1 March is still February in UTC: months follow UTC, like the archive
        (
            dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=9))),
            "vigil-records-2026.02.01",
        ),
        (dt.datetime(1999, 12, 31, 12, tzinfo=UTC), "vigil-records-1999.12.01"),
    ],
)
def test_index_is_the_event_month(when, index):
    assert index_for(when, CFG) == index
    assert index_for(to_micros(when.astimezone(UTC)), CFG) == index


def test_index_names_carry_an_origination_date_ilm_can_parse():
    # The pattern Elasticsearch documents for index.lifecycle.parse_origination_date.
    pattern = re.compile(r"^.*-\d{4}\.\d{2}\.\d{2}(-\d+)?$")
    assert pattern.match(index_for(dt.datetime(2026, 7, 4, tzinfo=UTC), CFG))


def test_template_wires_alias_policy_and_origination_date():
    cfg = EsConfig(url="http://localhost:9200", index_prefix="acme-msgs", shards=3, replicas=2)
    body = index_template(cfg)
    assert body["index_patterns"] == ["acme-msgs-*"]
    assert body["template"]["aliases"] == {"acme-msgs": {}}
    settings = body["template"]["settings"]["index"]
    assert settings["lifecycle"] == {"name": policy_name(cfg), "parse_origination_date": True}
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == (3, 2)
    mappings = record_mappings()
    mappings["_meta"]["mapping_hash"] = body["_meta"]["mapping_hash"]  # what each index keeps
    assert body["template"]["mappings"] == mappings
    assert settings["analysis"] == ANALYSIS


def _analyzers(props: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for spec in props.values():
        found |= {spec[k] for k in ("analyzer", "search_analyzer") if k in spec}
        found |= _analyzers(spec.get("properties", {})) | _analyzers(spec.get("fields", {}))
    return found


def test_every_analyzer_the_mapping_names_is_stock_or_defined_in_the_settings():
    named = _analyzers(record_mappings()["properties"])
    assert named == {"standard", "vigil_cjk"}
    assert set(ANALYSIS["analyzer"]) == {"vigil_cjk"}


def test_the_cjk_analyzer_is_the_stock_one_with_the_iteration_marks_replaced():
    # Elasticsearch's documented rebuild of the ``cjk`` analyzer: standard tokenizer, these
    # filters; one character filter in front of it, and no stop filter: the stock one drops "it"
    # and "t" even inside a CJK word ("IT部門" would find 人事部門), which the embedded engine
    # never does
    analyzer = ANALYSIS["analyzer"]["vigil_cjk"]
    assert analyzer["tokenizer"] == "standard"
    assert analyzer["filter"] == ["cjk_width", "lowercase", "cjk_bigram"]
    assert "filter" not in ANALYSIS
    (name,) = analyzer["char_filter"]
    char_filter = ANALYSIS["char_filter"][name]
    assert char_filter["type"] == "pattern_replace"
    # the Java regular expression, applied the way Java's replaceAll applies it
    import regex

    def replace(text: str) -> str:
        return regex.sub(char_filter["pattern"], char_filter["replacement"].replace("$", "\\"), text)

    assert replace("佐々木さん 様々な 人々 時〻") == "佐佐木さん 様様な 人人 時時"
    assert replace("さ々 々木 佐々々") == "さ々 々木 佐佐々"  # only after a Han character, once


@pytest.mark.parametrize("days", [1, 2557, 3650])
def test_retention_covers_the_last_day_of_a_month(days):
    phases = ilm_policy(EsConfig(url="http://localhost:9200", retention_days=days))["policy"]["phases"]
    assert phases["delete"]["actions"] == {"delete": {}}
    min_age = int(phases["delete"]["min_age"].removesuffix("d"))
    # the index is aged from the 1st; its newest record may be 30 days and some hours younger
    assert min_age >= days + 31
    assert min_age == days + MONTH_SLACK_DAYS


def test_fingerprints_change_with_what_matters_only():
    base = index_template(CFG)
    assert index_template(CFG)["_meta"]["vigil_hash"] == base["_meta"]["vigil_hash"]
    other = index_template(EsConfig(url="http://localhost:9200", replicas=0))
    assert other["_meta"]["vigil_hash"] != base["_meta"]["vigil_hash"]
    assert other["_meta"]["mapping_hash"] == base["_meta"]["mapping_hash"]
    # the analysis decides how documents are indexed, as the mapping does: changing it means
    # indexing again, which setup says only when mapping_hash changes
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(ANALYSIS["char_filter"]["vigil_iteration_marks"], "replacement", "$1")
        changed = index_template(CFG)
    assert changed["_meta"]["mapping_hash"] != base["_meta"]["mapping_hash"]
    # the same properties; each index made from it keeps the new fingerprint in its own _meta
    assert changed["template"]["mappings"]["properties"] == base["template"]["mappings"]["properties"]
    assert changed["template"]["mappings"]["_meta"]["mapping_hash"] == changed["_meta"]["mapping_hash"]
    longer = ilm_policy(EsConfig(url="http://localhost:9200", retention_days=4000))
    assert longer["policy"]["_meta"]["vigil_hash"] != ilm_policy(CFG)["policy"]["_meta"]["vigil_hash"]
