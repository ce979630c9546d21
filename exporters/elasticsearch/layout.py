"""Where records live in Elasticsearch, and how long.

* One index per **event month**: ``<prefix>-YYYY.MM.01`` (e.g. ``vigil-records-2026.01.01``). A
  record always lands in the index of the month it happened, so its ``_id`` (the record id) is
  unique across the cluster and re-indexing the same record — a retry, a re-run, a backfill —
  overwrites it instead of duplicating it.
* Every index gets the read alias ``<prefix>`` from the index template; searches go to the alias.
* ``index.lifecycle.parse_origination_date`` makes ILM age an index by the date in its name (the
  month its records happened), not by the day it was created. A backfill of 2019 traffic therefore
  ages as 2019 data.
* The ILM policy deletes an index ``retention_days`` plus one month after its origination date:
  the index holds a whole month, so deleting at ``retention_days`` would cut the month's last
  records short of their retention. Legal hold (a later feature) will exempt held indices or
  documents from this deletion; until then, raise ``retention_days`` for a cluster under hold.

Everything here is pure: it builds names and request bodies; ``setup.py`` sends them.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from typing import Any

from exporters.elasticsearch.config import EsConfig
from exporters.elasticsearch.mapping import ANALYSIS, record_mappings
from pipelines.record import SCHEMA_VERSION, from_micros

#: Days added to the retention so that the newest record of a monthly index is covered too.
MONTH_SLACK_DAYS = 31

#: Above the priority of the templates Elasticsearch ships (100), so ours wins for our pattern.
TEMPLATE_PRIORITY = 200


def index_pattern(cfg: EsConfig) -> str:
    return f"{cfg.index_prefix}-*"


def template_name(cfg: EsConfig) -> str:
    return cfg.index_prefix


def policy_name(cfg: EsConfig) -> str:
    return f"{cfg.index_prefix}-retention"


def index_for(event_time: int | dt.datetime, cfg: EsConfig) -> str:
    """Index for a record from its event time (int microseconds UTC, as in rows, or a datetime)."""
    when = from_micros(event_time) if isinstance(event_time, int) else event_time.astimezone(dt.UTC)
    return f"{cfg.index_prefix}-{when.year:04d}.{when.month:02d}.01"


def ilm_policy(cfg: EsConfig) -> dict[str, Any]:
    """Body of ``PUT _ilm/policy/<name>``."""
    policy: dict[str, Any] = {
        "_meta": {"managed_by": "vigil", "retention_days": cfg.retention_days},
        "phases": {
            "hot": {"min_age": "0ms", "actions": {}},
            "delete": {
                "min_age": f"{cfg.retention_days + MONTH_SLACK_DAYS}d",
                "actions": {"delete": {}},
            },
        },
    }
    policy["_meta"]["vigil_hash"] = fingerprint(policy)  # of everything above, before the key exists
    return {"policy": policy}


def index_template(cfg: EsConfig) -> dict[str, Any]:
    """Body of ``PUT _index_template/<name>``."""
    body: dict[str, Any] = {
        "index_patterns": [index_pattern(cfg)],
        "priority": TEMPLATE_PRIORITY,
        "template": {
            "settings": {
                "index": {
                    "number_of_shards": cfg.shards,
                    "number_of_replicas": cfg.replicas,
                    "lifecycle": {"name": policy_name(cfg), "parse_origination_date": True},
                    "analysis": copy.deepcopy(ANALYSIS),
                }
            },
            "mappings": record_mappings(),
            "aliases": {cfg.alias: {}},
        },
        "_meta": {"managed_by": "vigil", "record_schema_version": SCHEMA_VERSION},
    }
    # what decides how a document is indexed: the mapping, and the analyzers its fields name
    body["_meta"]["mapping_hash"] = fingerprint(
        {"mappings": body["template"]["mappings"], "analysis": ANALYSIS}
    )
    # each monthly index keeps the fingerprint of the mapping it was made with (or last given),
    # so setup and check can name the months an older mapping still governs
    body["template"]["mappings"]["_meta"]["mapping_hash"] = body["_meta"]["mapping_hash"]
    body["_meta"]["vigil_hash"] = fingerprint(body)  # of everything above, before the key exists
    return body


def fingerprint(body: dict[str, Any]) -> str:
    """Fingerprint of what Vigil asked for, stored in the object's ``_meta``.

    Elasticsearch hands templates and policies back normalised (numbers as strings, settings
    flattened), so comparing fingerprints is how setup tells "already installed" from "changed".
    """
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
