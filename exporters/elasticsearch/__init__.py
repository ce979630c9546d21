"""Elasticsearch as Vigil's optional search index.

The Parquet archive is the system of record; Elasticsearch holds a searchable copy, one index per
event month behind a read alias, aged out by an ILM policy. Modules:

* ``config``    — :class:`EsConfig` and :func:`make_client`
* ``mapping``   — the mapping, derived from ``pipelines.record``
* ``layout``    — index names, the index template, the ILM policy
* ``documents`` — record rows → bulk actions (pure)
* ``bulk``      — :func:`index_rows`: bulk with retries; failures become dead letters
* ``sink``      — :class:`IndexRecords`, the Beam transform over ``bulk``
* ``setup``     — :func:`install`, :func:`check`, :func:`preflight`
* ``archive_source`` — reading the archive for ``vigil es index``

Names are exported lazily, so importing this package (or ``mapping`` alone) neither loads the
Elasticsearch client nor Apache Beam.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EsConfig": "config",
    "make_client": "config",
    "record_mappings": "mapping",
    "index_template": "layout",
    "ilm_policy": "layout",
    "index_for": "layout",
    "to_action": "documents",
    "to_document": "documents",
    "IndexReport": "bulk",
    "IndexState": "bulk",
    "index_rows": "bulk",
    "IndexRecords": "sink",
    "SetupReport": "setup",
    "CheckReport": "setup",
    "install": "setup",
    "check": "setup",
    "preflight": "setup",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return __all__
