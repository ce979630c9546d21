"""Wording of the auto-messages channel rules show to employees and customers.

A channel rule (WhatsApp opt-in, WeChat's consecutive-message limit, a DLP block, ...) often tells
someone what just happened. The text is policy, not code: firms word these notices to match their
own communication policies and languages. So the wording lives in jinja2 templates, one per event
type and audience::

    pipelines/templates/automessages/<event_type>.<audience>.j2
    pipelines/templates/automessages/<channel>/<event_type>.<audience>.j2   (optional override)

A firm can replace any of them without touching the package: put files with the same names in a
directory and point ``VIGIL_TEMPLATES`` (or the ``templates_dir`` argument) at it. Lookup order,
first hit wins: override channel file, override generic file, packaged channel file, packaged
generic file (so a firm's generic wording also replaces a packaged per-channel variant).

Templates are rendered with ``StrictUndefined``: a template that uses a variable the caller did not
pass fails loudly instead of shipping a notice with a blank in it. Customer-facing templates may
branch on ``lang`` (``en``, ``zh``, ``ja``); callers that do not know the language leave it out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from pipelines.errors import ConfigError

__all__ = ["PACKAGE_DIR", "TEMPLATES_ENV", "available", "render", "template_candidates"]

#: Where the packaged templates live.
PACKAGE_DIR = Path(__file__).parent / "templates" / "automessages"

#: Environment variable naming a directory of firm-specific templates that take precedence.
TEMPLATES_ENV = "VIGIL_TEMPLATES"


def template_candidates(event_type: str, audience: str, channel: str | None = None) -> list[str]:
    """Template names tried for one notice, most specific first (relative to a template root)."""
    generic = f"{event_type}.{audience}.j2"
    return [f"{channel}/{generic}", generic] if channel else [generic]


@lru_cache(maxsize=32)
def _environment(root: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text shown in chat apps, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # wording is read once per process; restart to pick up edits
    )


def _roots(templates_dir: str | os.PathLike[str] | None) -> tuple[Path, ...]:
    argument = os.fspath(templates_dir) if templates_dir is not None else None
    return _roots_for(argument, os.environ.get(TEMPLATES_ENV) or None)


@lru_cache(maxsize=32)
def _roots_for(argument: str | None, environment: str | None) -> tuple[Path, ...]:
    roots: list[Path] = []
    for candidate, source in ((argument, "templates_dir argument"), (environment, f"${TEMPLATES_ENV}")):
        if candidate is None:
            continue
        path = Path(candidate)
        if not path.is_dir():
            raise ConfigError(
                f"auto-message template directory {path} ({source}) does not exist; "
                f"create it or unset {TEMPLATES_ENV}"
            )
        roots.append(path)
    roots.append(PACKAGE_DIR)
    return tuple(roots)


@lru_cache(maxsize=4096)
def _find(roots: tuple[Path, ...], names: tuple[str, ...]) -> tuple[Path, str] | None:
    # Cached like the compiled templates: the template set is read once per process.
    for root in roots:
        for name in names:
            if (root / name).is_file():
                return root, name
    return None


def render(
    event_type: str,
    audience: str,
    *,
    channel: str | None = None,
    templates_dir: str | os.PathLike[str] | None = None,
    **context: Any,
) -> str:
    """Text of the auto-message for ``event_type`` shown to ``audience`` (employee/customer/both).

    ``context`` holds the template variables (names, limits, rule ids, ...). Raises
    :class:`~pipelines.errors.ConfigError` naming the file that is missing or the variable a
    template needs but was not given.
    """
    event_type, audience = str(event_type), str(audience)
    channel = str(channel) if channel is not None else None
    roots = _roots(templates_dir)
    names = tuple(template_candidates(event_type, audience, channel))
    found = _find(roots, names)
    if found is None:
        tried = ", ".join(str(root / name) for root in roots for name in names)
        raise ConfigError(
            f"no auto-message template for event type {event_type!r} and audience {audience!r}; "
            f"add {PACKAGE_DIR / names[-1]} (or a file of that name in ${TEMPLATES_ENV}). Tried: {tried}"
        )
    root, name = found
    try:
        template = _environment(str(root)).get_template(name)
        text = template.render(channel=channel, audience=audience, **context)
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"auto-message template {root / name} needs a value the caller did not pass: {exc.message}"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"auto-message template {root / name} line {exc.lineno}: {exc.message}") from exc
    return _tidy(text)


def _tidy(text: str) -> str:
    # Templates wrap long sentences over several lines for reading; a blank line starts a new
    # paragraph in the message, any other whitespace run is a single space.
    paragraphs = (" ".join(p.split()) for p in _PARAGRAPH.split(text))
    return "\n".join(p for p in paragraphs if p)


_PARAGRAPH = re.compile(r"\n\s*\n")


def available(templates_dir: str | os.PathLike[str] | None = None) -> set[tuple[str | None, str, str]]:
    """Every (channel or None, event_type, audience) that has a template, across all roots."""
    found: set[tuple[str | None, str, str]] = set()
    for root in _roots(templates_dir):
        for path in _iter_templates(root):
            rel = path.relative_to(root)
            stem = rel.name[: -len(".j2")]
            if stem.count(".") != 1:
                continue
            event_type, audience = stem.split(".")
            channel = rel.parts[0] if len(rel.parts) == 2 else None
            found.add((channel, event_type, audience))
    return found


def _iter_templates(root: Path) -> Iterable[Path]:
    yield from sorted(root.glob("*.j2"))
    yield from sorted(root.glob("*/*.j2"))
