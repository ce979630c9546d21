"""Install and check what the cluster needs before Vigil indexes into it.

:func:`install` puts the ILM retention policy and the index template (mapping, settings, read
alias) in place. It is idempotent: each object carries a fingerprint of what Vigil asked for in
its ``_meta``, and is only written when that fingerprint differs, so re-running setup changes
nothing and says so. A template only shapes indices created after it, so setup also brings the
monthly indices that already exist in line: when the template's *mapping* changed (say the record
model gained fields; ``_meta.mapping_hash``, a fingerprint of the mapping and of the analysis
settings its analyzers come from, tells), the new mapping is applied to them and the user is told
to send the documents again (a changed field or analyzer cannot be applied: setup stops and says
to index those months again); their replica count (a dynamic setting) is set to the one
asked for with ``PUT <indices>/_settings``, on every run, so a cluster left yellow by an earlier
setup is mended by running it again. A shard count is fixed when an index is created: a new
``--shards`` reaches only the months created from then on, and setup says so.

:func:`check` compares what is installed with what this version of Vigil expects, read-only.
:func:`preflight` is the cheap check to run before indexing: the cluster answers, the
credentials work and the template is there (otherwise indices would be created with dynamic
mappings).

Every failure to talk to the cluster is an :class:`~pipelines.errors.IndexingError` saying what to
check; credentials never appear in messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, TransportError
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    NotFoundError,
    UnsupportedProductError,
)

from exporters.elasticsearch.config import EsConfig
from exporters.elasticsearch.layout import (
    MONTH_SLACK_DAYS,
    ilm_policy,
    index_pattern,
    index_template,
    policy_name,
    template_name,
)
from pipelines.errors import IndexingError

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch


@dataclass
class SetupReport:
    """What :func:`install` did. ``changes`` lists human-readable lines; empty means all current."""

    cluster: str = ""
    version: str = ""
    policy_changed: bool = False
    template_changed: bool = False
    indices_updated: list[str] = field(default_factory=list)  # given the new mapping
    replicas_updated: list[str] = field(default_factory=list)  # given the replica count asked for
    changes: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: existing indices made with (or last given) an older mapping than the template's
    stale: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass
class CheckReport:
    """What :func:`check` found. ``problems`` is empty when the cluster matches this Vigil."""

    cluster: str = ""
    version: str = ""
    indices: list[str] = field(default_factory=list)
    documents: int | None = None
    problems: list[str] = field(default_factory=list)
    ok_items: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@contextmanager
def translate_errors(cfg: EsConfig, doing: str) -> Iterator[None]:
    """Turn client exceptions into an :class:`IndexingError` that says what to check."""
    where = cfg.safe_url
    try:
        yield
    except IndexingError:
        raise
    except ApiError as exc:
        raise api_error(exc, cfg, doing) from None
    except UnsupportedProductError:
        raise IndexingError(f"{where} answered, but it is not Elasticsearch: check --es-url") from None
    except TlsError as exc:
        if "WRONG_VERSION_NUMBER" in str(exc.message):  # the server answered in plain HTTP
            raise IndexingError(
                f"TLS with {where} failed while {doing} ({exc.message}): the server does not speak "
                "TLS on that port; use an http:// URL, or the cluster's HTTPS port"
            ) from None
        if cfg.ca_certs is not None:  # the user did pass a bundle: it is not the one that signed
            raise IndexingError(
                f"TLS with {where} failed while {doing} ({exc.message}) with the CA bundle "
                f"{str(cfg.ca_certs)!r}: check that --ca-certs (or ES_CA_CERTS) is the bundle of the "
                "CA that signed the cluster's certificate"
            ) from None
        raise IndexingError(
            f"TLS with {where} failed while {doing} ({exc.message}): pass the cluster's CA bundle with "
            "--ca-certs (or ES_CA_CERTS)"
        ) from None
    except ConnectionTimeout:
        raise IndexingError(
            f"{where} did not answer within {cfg.request_timeout:g}s while {doing}: check that the "
            "cluster is healthy, or raise --request-timeout"
        ) from None
    except TransportConnectionError as exc:
        raise IndexingError(
            f"cannot reach Elasticsearch at {where} while {doing} ({exc.message}): check --es-url, "
            "that the cluster is up and that this machine can reach it"
        ) from None
    except TransportError as exc:
        raise IndexingError(f"talking to {where} failed while {doing}: {exc.message}") from None
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        # an answer that is JSON but not shaped as Elasticsearch's (a proxy, a mock, another product)
        raise IndexingError(
            f"{where} answered while {doing}, but not as Elasticsearch 9.x does "
            f"({type(exc).__name__}: {exc}): check --es-url"
        ) from None


def _cluster_info(client: Elasticsearch, cfg: EsConfig) -> tuple[str, str]:
    """Cluster name and version number, or an :class:`IndexingError`."""
    with translate_errors(cfg, "reading cluster info"):
        info = client.info()
        return str(info["cluster_name"]), str(info["version"]["number"])


def from_elasticsearch(exc: ApiError) -> bool:
    """Elasticsearch marks every answer, errors too, with the ``X-Elastic-Product`` header: an
    error without it came from something else (a proxy, a web server at the wrong address)."""
    headers = exc.meta.headers if exc.meta is not None else None
    return any(k.lower() == "x-elastic-product" and v == "Elasticsearch" for k, v in (headers or {}).items())


def api_error(exc: ApiError, cfg: EsConfig, doing: str) -> IndexingError:
    """What an HTTP error answer means for the user; one that is not from Elasticsearch (see
    :func:`from_elasticsearch`) says so, whatever its status says."""
    where = cfg.safe_url
    if not from_elasticsearch(exc):
        return IndexingError(
            f"{where} answered HTTP {exc.status_code} while {doing}, and it is not Elasticsearch (the "
            "answer has no X-Elastic-Product header): check --es-url; a proxy or another web server "
            "answered"
        )
    if isinstance(exc, AuthenticationException):
        return IndexingError(
            f"{where} refused the credentials while {doing}: check --api-key, or --username and "
            "--password (or ES_API_KEY / ES_USERNAME / ES_PASSWORD)"
        )
    if isinstance(exc, AuthorizationException):
        return IndexingError(
            f"{where} says the user may not do this while {doing} ({_api_reason(exc)}): it needs the "
            "monitor (to read the cluster's version), manage_ilm and manage_index_templates cluster "
            f"privileges and write, create_index and manage on {cfg.index_prefix}-*"
        )
    if isinstance(exc, BadRequestError) and _api_type(exc) == "media_type_header_exception":
        # the 9.x client asks for "compatible-with=9"; an 8.x (or older) node refuses every request
        return IndexingError(
            f"{where} refused this client's compatible-with=9 headers while {doing}: it is older than "
            "Elasticsearch 9.x, which Vigil's client (elasticsearch-py 9) needs; upgrade the cluster"
        )
    if isinstance(exc, BadRequestError):
        return IndexingError(f"{where} rejected the request while {doing}: {_api_reason(exc)}")
    return IndexingError(f"{where} answered HTTP {exc.status_code} while {doing}: {_api_reason(exc)}")


def install(client: Elasticsearch, cfg: EsConfig) -> SetupReport:
    """Install (or update) the ILM policy and the index template. Safe to run any number of times."""
    report = SetupReport()
    report.cluster, report.version = _cluster_info(client, cfg)

    policy = ilm_policy(cfg)
    name = policy_name(cfg)
    with translate_errors(cfg, f"reading ILM policy {name}"):
        current = _installed_policy(client, name)
    if _meta_hash(current) == policy["policy"]["_meta"]["vigil_hash"]:
        report.unchanged.append(f"ILM policy {name} is current")
    else:
        with translate_errors(cfg, f"writing ILM policy {name}"):
            client.ilm.put_lifecycle(name=name, policy=policy["policy"])
        report.policy_changed = True
        verb = "installed" if current is None else "updated"
        days = cfg.retention_days + MONTH_SLACK_DAYS
        report.changes.append(
            f"{verb} ILM policy {name} (retention {cfg.retention_days} days: a monthly index is deleted "
            f"{days} days after its month began)"
        )

    template = index_template(cfg)
    tname = template_name(cfg)
    with translate_errors(cfg, f"reading index template {tname}"):
        current_template = _installed_template(client, tname)
    if _meta_hash(current_template) == template["_meta"]["vigil_hash"]:
        report.unchanged.append(f"index template {tname} is current")
    else:
        with translate_errors(cfg, f"writing index template {tname}"):
            client.indices.put_index_template(name=tname, body=template)
        report.template_changed = True
        verb = "installed" if current_template is None else "updated"
        report.changes.append(
            f"{verb} index template {tname} for {index_pattern(cfg)} (read alias {cfg.alias})"
        )
        # only a new mapping concerns the indices' mappings and their documents; a template that
        # differs in its settings alone (shards, replicas) leaves both as they are
        if _meta_hash(current_template, "mapping_hash") != template["_meta"]["mapping_hash"]:
            report.indices_updated = _update_existing(client, cfg, template)
            if report.indices_updated:
                report.changes.append(
                    f"applied the new mapping to {len(report.indices_updated)} existing index(es); "
                    "documents indexed before get its new fields when sent again: run "
                    "`vigil es index --archive DIR --role officer`"
                )
    _align_settings(client, cfg, report)
    _adopt(client, cfg, report)
    report.stale = _stale_indices(client, cfg, template)
    return report


#: a monthly index's name, whose date ILM may read as its origination date
_MONTHLY = re.compile(r"-\d{4}\.\d{2}\.\d{2}$")


def _outsiders(client: Elasticsearch, cfg: EsConfig) -> tuple[list[str], list[str]]:
    """The existing indices of the pattern that are not under the read alias, and those without
    Vigil's lifecycle policy: made before the template (by hand, by another tool) or changed
    since. Searches do not see the first, retention does not delete the second."""
    with translate_errors(cfg, f"listing {index_pattern(cfg)}"):
        body = client.indices.get(
            index=index_pattern(cfg), allow_no_indices=True, expand_wildcards="open"
        ).body
    policy = policy_name(cfg)
    unaliased = sorted(n for n, e in body.items() if cfg.alias not in (e.get("aliases") or {}))
    unmanaged = sorted(
        n for n, e in body.items() if _index_settings(e).get("lifecycle", {}).get("name") != policy
    )
    return unaliased, unmanaged


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _adopt(client: Elasticsearch, cfg: EsConfig, report: SetupReport) -> None:
    """Put the existing indices the template did not make under the read alias and Vigil's
    lifecycle policy, as the template does for new ones."""
    unaliased, unmanaged = _outsiders(client, cfg)
    if unaliased:
        with translate_errors(cfg, f"adding {len(unaliased)} existing index(es) to the alias {cfg.alias}"):
            client.indices.update_aliases(actions=[{"add": {"indices": unaliased, "alias": cfg.alias}}])
        report.changes.append(
            f"added {len(unaliased)} existing index(es) that were not under the read alias {cfg.alias} "
            f"to it ({_few(unaliased)}): searches see them now"
        )
    if unmanaged:
        policy = policy_name(cfg)
        for name in unmanaged:
            lifecycle: dict[str, Any] = {"name": policy}
            if _MONTHLY.search(name):
                lifecycle["parse_origination_date"] = True  # as the template gives new ones
            with translate_errors(cfg, f"giving {name} the lifecycle policy {policy}"):
                client.indices.put_settings(index=name, settings={"index": {"lifecycle": lifecycle}})
        report.changes.append(
            f"gave {len(unmanaged)} existing index(es) the lifecycle policy {policy} they lacked "
            f"({_few(unmanaged)}): retention deletes them now"
        )


def check(client: Elasticsearch, cfg: EsConfig) -> CheckReport:
    """Compare what the cluster has with what this Vigil expects; changes nothing."""
    report = CheckReport()
    report.cluster, report.version = _cluster_info(client, cfg)
    major = report.version.split(".")[0]
    if not major.isdigit() or int(major) < 9:
        report.problems.append(f"Elasticsearch {report.version} is too old: Vigil needs 9.x")

    name = policy_name(cfg)
    with translate_errors(cfg, f"reading ILM policy {name}"):
        policy = _installed_policy(client, name)
    expected_policy = ilm_policy(cfg)["policy"]["_meta"]["vigil_hash"]
    if policy is None:
        report.problems.append(f"ILM policy {name} is missing: run `vigil es setup`")
    elif _meta_hash(policy) is None:
        report.problems.append(
            f"ILM policy {name} was not written by Vigil (changed by hand, or another tool uses the "
            "name): run `vigil es setup` to replace it with Vigil's retention"
        )
    elif _meta_hash(policy) != expected_policy:
        installed_days = (policy.get("_meta") or {}).get("retention_days")
        report.problems.append(
            f"ILM policy {name} keeps records {installed_days} days, {cfg.retention_days} were asked for: "
            "run `vigil es setup --retention-days N` with the retention you want"
        )
    else:
        report.ok_items.append(f"ILM policy {name} is current")

    tname = template_name(cfg)
    expected_template = index_template(cfg)
    with translate_errors(cfg, f"reading index template {tname}"):
        template = _installed_template(client, tname)
    if template is None:
        report.problems.append(f"index template {tname} is missing: run `vigil es setup`")
    elif _meta_hash(template) != expected_template["_meta"]["vigil_hash"]:
        installed_mapping = (template.get("_meta") or {}).get("mapping_hash")
        if installed_mapping != expected_template["_meta"]["mapping_hash"]:
            report.problems.append(
                f"index template {tname} has an older mapping than this Vigil's record model: "
                "run `vigil es setup`"
            )
        else:
            report.problems.append(f"index template {tname} {_settings_differ(template, expected_template)}")
    else:
        report.ok_items.append(f"index template {tname} is current")

    with translate_errors(cfg, f"listing {index_pattern(cfg)}"):
        report.indices = _existing_indices(client, cfg)
        if report.indices:
            # every index of the pattern, also one a missing alias would hide (named below)
            report.documents = int(client.count(index=index_pattern(cfg))["count"])
    if report.indices:
        unaliased, unmanaged = _outsiders(client, cfg)
        for names, what in (
            (unaliased, f"are not under the read alias {cfg.alias}, so searches do not see them"),
            (unmanaged, f"lack the lifecycle policy {policy_name(cfg)}, so retention does not delete them"),
        ):
            if names:
                report.problems.append(
                    f"{len(names)} existing index(es) {what} ({_few(names)}; made before the template, "
                    "by hand or by another tool): run `vigil es setup` to adopt them"
                )
        stale = _stale_indices(client, cfg, expected_template)
        if stale:
            report.problems.append(stale_message(stale))
        other = _other_replicas(_current_settings(client, cfg), cfg)
        if other:
            shown = ", ".join(f"{name} ({n})" for name, n in list(other.items())[:3])
            more = ", ..." if len(other) > 3 else ""
            report.problems.append(
                f"{len(other)} existing index(es) keep another replica count than the "
                f"{cfg.replicas} asked for: {shown}{more}; run `vigil es setup --replicas "
                f"{cfg.replicas}` to set it on them"
            )
    return report


def preflight(client: Elasticsearch, cfg: EsConfig) -> None:
    """Raise :class:`IndexingError` unless the cluster answers and the template is installed."""
    with translate_errors(cfg, "connecting"):
        client.info()
    tname = template_name(cfg)
    with translate_errors(cfg, f"reading index template {tname}"):
        installed = _installed_template(client, tname)
    if installed is None:
        raise IndexingError(
            f"index template {tname} is not installed on {cfg.safe_url}: run `vigil es setup` first, "
            "otherwise Elasticsearch would guess the mapping"
        )


# ---------------------------------------------------------------------------------------------


def _installed_policy(client: Elasticsearch, name: str) -> dict[str, Any] | None:
    try:
        body = client.ilm.get_lifecycle(name=name).body
    except NotFoundError:
        return None
    entry = body.get(name)
    policy = entry.get("policy") if isinstance(entry, dict) else None
    return policy if isinstance(policy, dict) else None


def _settings_differ(installed: dict[str, Any], expected: dict[str, Any]) -> str:
    """How an installed template's settings differ from the ones asked for, and what to do: check
    compares with its own options, so the options setup was given are named for it."""

    def index_settings(body: dict[str, Any]) -> dict[str, Any]:
        template = body.get("template")
        settings = template.get("settings") if isinstance(template, dict) else None
        index = settings.get("index", settings) if isinstance(settings, dict) else None
        return index if isinstance(index, dict) else {}

    have, want = index_settings(installed), index_settings(expected)
    differ: list[str] = []
    flags: list[str] = []
    hand_made = False  # a setting setup never writes: no flag of check's fits it
    for key, option in (("number_of_shards", "--shards"), ("number_of_replicas", "--replicas")):
        installed_value, asked = _as_int(have.get(key)), _as_int(want.get(key))
        if installed_value != asked:
            if installed_value is None:
                differ.append(
                    f"no {option[2:]} setting Vigil can read ({have.get(key)!r}) where {asked} was asked for"
                )
                hand_made = True
            else:
                differ.append(f"{option[2:]} {installed_value} where {asked} was asked for")
                flags.append(f"{option} {installed_value}")
    patterns, asked_patterns = installed.get("index_patterns"), expected.get("index_patterns")
    if patterns != asked_patterns:
        differ.append(f"index patterns {patterns} where {asked_patterns} were asked for")
        hand_made = True
    if hand_made:
        flags = []
    said = "has " + "; ".join(differ) if differ else "has other settings than asked for"
    if flags:
        return (
            f"{said}: check compares with the options it is given, so if setup was given "
            f"{' '.join(flags)}, run `vigil es check {' '.join(flags)}`; else run `vigil es setup` "
            "with the options you want"
        )
    return f"{said}: run `vigil es setup` with the options you want"


def _installed_template(client: Elasticsearch, name: str) -> dict[str, Any] | None:
    try:
        body = client.indices.get_index_template(name=name).body
    except NotFoundError:
        return None
    for item in body.get("index_templates", []):
        if item.get("name") == name:
            template = item.get("index_template")
            return template if isinstance(template, dict) else None
    return None


def _meta_hash(body: dict[str, Any] | None, key: str = "vigil_hash") -> str | None:
    """A fingerprint Vigil left in an installed object's ``_meta`` (the whole object's, or
    ``mapping_hash``: its mapping's alone), None if there is none."""
    meta = body.get("_meta") if isinstance(body, dict) else None
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def _align_settings(client: Elasticsearch, cfg: EsConfig, report: SetupReport) -> None:
    """Give the existing monthly indices the replica count asked for (``number_of_replicas`` is a
    dynamic setting: ``PUT <indices>/_settings`` changes it on a live index), and say which of them
    keep another shard count (``number_of_shards`` is fixed when an index is created)."""
    pattern = index_pattern(cfg)
    current = _current_settings(client, cfg)
    replicas = list(_other_replicas(current, cfg))
    if replicas:
        with translate_errors(cfg, f"setting the replica count of {len(replicas)} existing index(es)"):
            client.indices.put_settings(
                index=pattern,
                settings={"index": {"number_of_replicas": cfg.replicas}},
                allow_no_indices=True,
                expand_wildcards="open",
            )
        report.replicas_updated = replicas
        report.changes.append(
            f"set {len(replicas)} existing index(es) to {cfg.replicas} replica(s) per shard "
            f"(index.number_of_replicas), as the template gives new ones"
        )
    if report.template_changed:  # said once, when the template changes, not on every run after
        shards = [
            name for name, index in current.items() if _as_int(index.get("number_of_shards")) != cfg.shards
        ]
        if shards:
            report.changes.append(
                f"{len(shards)} existing index(es) keep their shard count: a shard count is fixed when "
                f"an index is created, so {cfg.shards} primary shard(s) apply to months indexed from "
                "now on"
            )


def _stale_indices(client: Elasticsearch, cfg: EsConfig, template: dict[str, Any]) -> list[str]:
    """The existing monthly indices whose mapping is not the template's: their ``_meta`` holds
    another fingerprint, or, made before indices kept one, their fields differ from the template's."""
    pattern = index_pattern(cfg)
    with translate_errors(cfg, f"reading the mappings of {pattern}"):
        body = client.indices.get_mapping(index=pattern, allow_no_indices=True, expand_wildcards="open").body
    expected = template["template"]["mappings"]

    def stale(mappings: Any) -> bool:
        if not isinstance(mappings, dict):
            return True
        held = _meta_hash(mappings, "mapping_hash")
        if held is not None:
            return held != template["_meta"]["mapping_hash"]
        return mappings.get("properties") != expected["properties"]

    return sorted(
        name
        for name, entry in body.items()
        if stale(entry.get("mappings") if isinstance(entry, dict) else None)
    )


def stale_message(stale: list[str]) -> str:
    """What setup and check say about indices an older mapping still governs."""
    shown = ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else "")
    return (
        f"{len(stale)} existing index(es) still have the mapping of an earlier Vigil ({shown}): "
        "their documents are not searched as this Vigil searches (a changed analyzer cannot be "
        "applied to an index that exists); delete those months, or reindex them into new indices, "
        "and run `vigil es index --archive DIR --role officer`"
    )


def _current_settings(client: Elasticsearch, cfg: EsConfig) -> dict[str, dict[str, Any]]:
    """The ``index`` settings of each existing monthly index, by name."""
    pattern = index_pattern(cfg)
    with translate_errors(cfg, f"reading the settings of {pattern}"):
        body = client.indices.get_settings(index=pattern, allow_no_indices=True, expand_wildcards="open").body
        return {name: _index_settings(entry) for name, entry in sorted(body.items())}


def _other_replicas(current: dict[str, dict[str, Any]], cfg: EsConfig) -> dict[str, str]:
    """The indices whose replica count is not the one asked for, with theirs. An index whose
    count Elasticsearch sets itself (``auto_expand_replicas``, given by hand) is left out."""
    return {
        name: str(index.get("number_of_replicas"))
        for name, index in current.items()
        if _as_int(index.get("number_of_replicas")) != cfg.replicas
        and str(index.get("auto_expand_replicas", "false")).lower() == "false"
    }


def _index_settings(entry: Any) -> dict[str, Any]:
    """The ``index`` settings of one entry of a ``GET <indices>/_settings`` answer."""
    settings = entry["settings"]
    index = settings.get("index", {})
    if not isinstance(index, dict):
        raise TypeError(f"index settings are {type(index).__name__}, not an object")
    return index


def _as_int(value: Any) -> int | None:
    """A setting as a number (Elasticsearch answers with strings), None if it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _existing_indices(client: Elasticsearch, cfg: EsConfig) -> list[str]:
    body = client.indices.get(index=index_pattern(cfg), allow_no_indices=True, expand_wildcards="open").body
    return sorted(body)


def _update_existing(client: Elasticsearch, cfg: EsConfig, template: dict[str, Any]) -> list[str]:
    with translate_errors(cfg, f"listing {index_pattern(cfg)}"):
        indices = _existing_indices(client, cfg)
    if not indices:
        return []
    mappings = template["template"]["mappings"]
    try:
        with translate_errors(cfg, f"updating the mapping of {len(indices)} existing index(es)"):
            client.indices.put_mapping(
                index=index_pattern(cfg),
                properties=mappings["properties"],
                dynamic=mappings["dynamic"],
                meta=mappings.get("_meta"),
            )
    except IndexingError as exc:
        raise IndexingError(
            f"{exc}. New fields can be added to existing indices, changed ones cannot: reindex the "
            "affected months into new indices, or delete them and run "
            "`vigil es index --archive DIR --role officer`"
        ) from None
    return indices


def _api_type(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return str(error.get("type", "")) if isinstance(error, dict) else ""


def _api_reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        root = (error.get("root_cause") or [error])[0]
        return f"{root.get('type', 'error')}: {root.get('reason', '')}".rstrip(": ")
    return str(exc.message)
