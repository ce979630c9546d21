"""A small Elasticsearch that tests start on 127.0.0.1, with faults on demand.

No Elasticsearch can run on the build machines, so the ES path is tested at the wire level: the
real ``elasticsearch`` client talks HTTP to this server. It speaks the part of the REST API Vigil
uses, the way a 9.x cluster answers it (``X-Elastic-Product`` header, compatibility content types,
error bodies with ``type`` and ``reason``, per-item bulk results):

* ``GET|HEAD /`` cluster info;
* ``PUT|GET|DELETE /_index_template/<name>``, ``PUT|GET|DELETE /_ilm/policy/<name>``;
* ``POST|PUT [/<index>]/_bulk`` (index, create, update, delete), auto-creating indices from the
  matching template (mappings, aliases, settings) and enforcing ``dynamic: strict`` and the field
  types, like ES does; a template, an index or a mapping update that names an analyzer neither
  built in nor defined in the index's ``analysis`` settings is refused, and so is a mapping update
  that changes a field's analyzer;
* ``GET|POST [/<target>]/_search`` and ``_count`` with ``match_all``, ``ids``, ``term``, ``terms``,
  ``match``, ``match_phrase``, ``prefix``, ``wildcard``, ``range``, ``exists``, ``nested`` and
  ``bool``; ``size``, ``from``, ``sort``, ``search_after``, ``_source``. Anything else is a 400,
  so a test never passes on a query the fake silently ignored;
* ``[/<target>]/_refresh``, ``PUT|GET /<target>/_mapping``, ``PUT|GET /<target>/_settings``,
  ``GET|PUT|DELETE|HEAD /<target>``, ``GET /<index>/_doc/<id>``.

Mapping checks and query evaluation live in ``es_dsl.py``; this module is the cluster's state,
routing, faults and HTTP.

Every request is recorded (:attr:`FakeElasticsearch.requests`) so tests can pin the DSL sent.
Faults: :meth:`~FakeElasticsearch.fail` (whole-request errors such as a 429 storm or 503s),
:meth:`~FakeElasticsearch.fail_items` (per-document errors), :meth:`~FakeElasticsearch.delay`
(answers slower than the client's timeout), :meth:`~FakeElasticsearch.garble` (a 200 whose body is
not what Elasticsearch would send), :meth:`~FakeElasticsearch.cut_off` (the connection closes
half-way through the answer), :meth:`~FakeElasticsearch.die_after_bulk` (the server goes away
mid-run; :meth:`~FakeElasticsearch.revive` brings it back on the same port) and
:meth:`~FakeElasticsearch.require_api_key` / :meth:`~FakeElasticsearch.require_basic_auth`.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from fakes.es_dsl import (
    EsFault,
    field_spec,
    filter_source,
    is_after,
    is_text,
    matches,
    resolve_analyzers,
    sort_key,
    sort_spec,
    sort_value,
    validate,
)

VERSION = "9.1.4"
_ORIGINATION = re.compile(r"^.*-(\d{4})\.(\d{2})\.(\d{2})(-\d+)?$")


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, a list of parsed NDJSON lines, raw bytes, or None


@dataclass
class _RequestFault:
    method: str | None
    path: re.Pattern[str]
    status: int
    type: str
    reason: str
    times: int | None


@dataclass
class _ItemFault:
    status: int
    type: str
    reason: str
    times: int | None


@dataclass
class _Garble:
    path: re.Pattern[str]
    transform: Callable[[bytes], bytes] | None  # None: cut the answer off half-way instead
    times: int | None


@dataclass
class _Delay:
    path: re.Pattern[str]
    seconds: float
    times: int | None


@dataclass
class Index:
    name: str
    mappings: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


class FakeElasticsearch:
    """The server. ``start()`` binds an ephemeral port; ``url`` is where the client points."""

    def __init__(self, *, version: str = VERSION, cluster_name: str = "vigil-fake") -> None:
        self.version = version
        self.cluster_name = cluster_name
        self.templates: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.indices: dict[str, Index] = {}
        self.aliases: dict[str, set[str]] = {}
        self.requests: list[Recorded] = []
        self.bulk_requests = 0  # bulk requests that reached the handler (faults included)
        self.answered = 0  # requests the handler is done with (a delayed one counts once applied)
        self.dead = False
        self.max_result_window = 10_000  # index.max_result_window: from + size may not exceed it
        # http.max_content_length: a longer request body gets 413 with an empty body, as a node does
        self.max_content_length: int | None = None
        self.too_large_requests = 0
        self._lock = threading.RLock()
        self._request_faults: list[_RequestFault] = []
        self._item_faults: dict[str, _ItemFault] = {}
        self._delays: list[_Delay] = []
        self._garbles: list[_Garble] = []
        self._die_after: int | None = None
        self._auth: str | None = None
        self._seq = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._last_port = 0
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeElasticsearch:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-es", daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._httpd is not None, "call start() first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.dead = True
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            self._last_port = int(httpd.server_address[1])
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> FakeElasticsearch:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------------------- faults

    def fail(
        self,
        path: str = r"/_bulk$",
        status: int = 503,
        *,
        times: int | None = 1,
        method: str | None = None,
        error_type: str | None = None,
        reason: str = "injected failure",
    ) -> None:
        """Answer the next ``times`` requests whose path matches ``path`` (a regex) with an error."""
        default_type = {429: "es_rejected_execution_exception", 503: "unavailable_shards_exception"}
        with self._lock:
            self._request_faults.append(
                _RequestFault(
                    method,
                    re.compile(path),
                    status,
                    error_type or default_type.get(status, "exception"),
                    reason,
                    times,
                )
            )

    def storm_429(self, times: int) -> None:
        """A 429 storm: the next ``times`` bulk requests are refused whole."""
        self.fail(r"/_bulk$", 429, times=times, reason="rejected execution of coordinating operation")

    def fail_items(
        self,
        ids: list[str] | set[str],
        status: int = 400,
        *,
        error_type: str | None = None,
        reason: str = "injected item failure",
        times: int | None = None,
    ) -> None:
        """Per-document failures for these ``_id``s in bulk requests (``times=None``: always)."""
        default_type = {400: "document_parsing_exception", 429: "es_rejected_execution_exception"}
        with self._lock:
            for doc_id in ids:
                self._item_faults[doc_id] = _ItemFault(
                    status, error_type or default_type.get(status, "exception"), reason, times
                )

    def delay(self, seconds: float, path: str = r"/_bulk$", *, times: int | None = 1) -> None:
        """Hold the next ``times`` matching requests ``seconds`` before answering (they still apply)."""
        with self._lock:
            self._delays.append(_Delay(re.compile(path), seconds, times))

    def garble(
        self, transform: Callable[[bytes], bytes], path: str = r"/_bulk$", *, times: int | None = 1
    ) -> None:
        """Apply the next ``times`` matching requests, then send ``transform(answer)`` instead of the
        answer (still a 200 from "Elasticsearch"): a malformed body, a bulk answer whose items do not
        match what was sent..."""
        with self._lock:
            self._garbles.append(_Garble(re.compile(path), transform, times))

    def cut_off(self, path: str = r"/_bulk$", *, times: int | None = 1) -> None:
        """Apply the next ``times`` matching requests, then close the connection half-way through
        the answer (the headers promise more than is sent)."""
        with self._lock:
            self._garbles.append(_Garble(re.compile(path), None, times))

    def revive(self) -> FakeElasticsearch:
        """Start again on the same port, with the same state, after :meth:`die_after_bulk`."""
        port = self.port if self._httpd is not None else self._last_port
        if self._httpd is not None:
            self.stop()
        handler = type("Handler", (_Handler,), {"fake": self})
        deadline = time.monotonic() + 5
        while True:  # the dying server may still hold the port for a moment
            try:
                httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.dead = False
        self._httpd = httpd
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-es", daemon=True
        )
        self._thread.start()
        return self

    def die_after_bulk(self, k: int) -> None:
        """Go away (refuse and drop every connection) right after answering ``k`` bulk requests."""
        with self._lock:
            self._die_after = k

    def require_api_key(self, key: str) -> None:
        self._auth = f"ApiKey {key}"

    def require_basic_auth(self, user: str, password: str) -> None:
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    # ---------------------------------------------------------------------------- inspection

    def docs(self, target: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """Every stored document as ``{(index, id): source}``, optionally limited to a target."""
        with self._lock:
            names = self._resolve(target, allow_missing=True) if target else list(self.indices)
            return {(n, i): d for n in names for i, d in self.indices[n].docs.items()}

    def bulk_bodies(self) -> list[list[dict[str, Any]]]:
        return [r.body for r in self.requests if r.path.endswith("/_bulk")]

    def search_bodies(self) -> list[Any]:
        return [r.body for r in self.requests if r.path.endswith(("/_search", "/_count"))]

    # ---------------------------------------------------------------------------- dispatch

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path) or "/"
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = _parse_body(raw, headers.get("content-type", ""))
        with self._lock:
            self.requests.append(Recorded(method, path, params, headers, body))
            is_bulk = path.endswith("/_bulk")
            if is_bulk:
                self.bulk_requests += 1
            delay = self._take(self._delays, method, path)
        if delay is not None:
            time.sleep(delay.seconds)
        with self._lock:
            try:
                self._check_compatibility(headers)
                if self._auth is not None and headers.get("authorization") != self._auth:
                    reason = "unable to authenticate user for REST request [/]"
                    raise EsFault(401, "security_exception", reason)
                fault = self._take(self._request_faults, method, path)
                if fault is not None:
                    raise EsFault(fault.status, fault.type, fault.reason)
                return self._route(method, path, params, body)
            finally:
                self.answered += 1

    def _check_compatibility(self, headers: dict[str, str]) -> None:
        """Like a real node: a ``compatible-with`` version above its own major (or more than one
        below it) is refused before anything else, so a 9.x client cannot talk to an 8.x cluster."""
        head = self.version.split(".")[0]
        if not head.isdigit():
            return  # a test pretending the answer is not a version at all
        major = int(head)
        for name in ("accept", "content-type"):
            found = re.search(r"compatible-with=(\d+)", headers.get(name, ""))
            if found and int(found.group(1)) not in (major, major - 1):
                raise EsFault(
                    400,
                    "media_type_header_exception",
                    f"Invalid media-type value on headers [{name.title()}]",
                    caused_by={
                        "type": "status_exception",
                        "reason": f"{name.title()} version must be either version {major} or {major - 1}, "
                        f"but found {found.group(1)}. {name.title()}={headers[name]}",
                    },
                )

    def after_response(self, path: str) -> None:
        with self._lock:
            if (
                path.endswith("/_bulk")
                and self._die_after is not None
                and self.bulk_requests >= self._die_after
            ):
                self._die_after = None
                self.dead = True
                threading.Thread(target=self.stop, daemon=True).start()

    @staticmethod
    def _take(faults: list[Any], method: str, path: str) -> Any:
        for fault in faults:
            if getattr(fault, "method", None) not in (None, method):
                continue
            if fault.path.search(path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        faults.remove(fault)
                return fault
        return None

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any]:
        segs = [s for s in path.split("/") if s]
        if not segs:
            if method in ("GET", "HEAD"):
                return 200, self._info()
            raise EsFault(405, "method_not_allowed", f"{method} / is not allowed")
        head = segs[0]
        if head == "_index_template" and len(segs) <= 2:
            return self._template(method, segs[1] if len(segs) == 2 else None, body)
        if head == "_aliases" and len(segs) == 1 and method == "POST":
            return self._update_aliases(body)
        if head == "_ilm" and len(segs) >= 2 and segs[1] == "policy":
            return self._policy(method, segs[2] if len(segs) == 3 else None, body)
        if segs[-1] == "_bulk" and len(segs) <= 2:
            return self._bulk(segs[0] if len(segs) == 2 else None, body)
        if segs[-1] in ("_search", "_count") and len(segs) <= 2:
            target = segs[0] if len(segs) == 2 else "_all"
            return self._search(target, body or {}, count=segs[-1] == "_count", params=params)
        if segs[-1] == "_refresh" and len(segs) <= 2:
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if len(segs) == 2 and segs[1] == "_mapping":
            return self._mapping(method, segs[0], body, params)
        if len(segs) == 2 and segs[1] == "_settings" and method == "GET":
            names = self._resolve(segs[0], allow_missing="*" in segs[0])
            # ES hands settings back with every value as a string
            return 200, {n: {"settings": _stringify(self.indices[n].settings)} for n in names}
        if len(segs) == 2 and segs[1] == "_settings" and method == "PUT":
            return self._put_settings(segs[0], body)
        if len(segs) == 3 and segs[1] == "_doc" and method == "GET":
            return self._get_doc(segs[0], segs[2])
        if len(segs) == 1 and not head.startswith("_"):
            return self._index_api(method, head, body, params)
        raise EsFault(400, "illegal_argument_exception", f"the fake does not implement {method} {path}")

    # ---------------------------------------------------------------------------- APIs

    def _info(self) -> dict[str, Any]:
        return {
            "name": "fake-node-1",
            "cluster_name": self.cluster_name,
            "cluster_uuid": "fAkEcLuStErUuId0000000",
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "lucene_version": "10.2.2",
                "minimum_wire_compatibility_version": "8.19.0",
                "minimum_index_compatibility_version": "8.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _template(self, method: str, name: str | None, body: Any) -> tuple[int, Any]:
        if method == "PUT" and name:
            if not isinstance(body, dict) or not body.get("index_patterns"):
                raise EsFault(400, "action_request_validation_exception", "index patterns are missing")
            for other, tpl in self.templates.items():
                overlap = set(tpl["index_patterns"]) & set(body["index_patterns"])
                if other != name and overlap and tpl.get("priority", 0) == body.get("priority", 0):
                    raise EsFault(
                        400,
                        "illegal_argument_exception",
                        f"index template [{name}] has index patterns {sorted(overlap)} matching patterns "
                        f"from existing templates [{other}] with the same priority",
                    )
            # like Elasticsearch, check that an index could be built from it: its analyzers exist
            template = body.get("template", {})
            resolve_analyzers(template.get("mappings", {}), template.get("settings", {}))
            self.templates[name] = json.loads(json.dumps(body))
            return 200, {"acknowledged": True}
        if method == "GET":
            names = [name] if name else sorted(self.templates)
            found = [n for n in names if n in self.templates]
            if name and not found:
                raise EsFault(
                    404, "resource_not_found_exception", f"index template matching [{name}] not found"
                )
            return 200, {"index_templates": [{"name": n, "index_template": self.templates[n]} for n in found]}
        if method == "DELETE" and name:
            if self.templates.pop(name, None) is None:
                raise EsFault(404, "resource_not_found_exception", f"index_template [{name}] missing")
            return 200, {"acknowledged": True}
        raise EsFault(405, "method_not_allowed", f"{method} on _index_template")

    def _policy(self, method: str, name: str | None, body: Any) -> tuple[int, Any]:
        if method == "PUT" and name:
            policy = (body or {}).get("policy")
            if not isinstance(policy, dict) or "phases" not in policy:
                raise EsFault(400, "x_content_parse_exception", "[put_lifecycle_request] policy is missing")
            previous = self.policies.get(name)
            version = previous["version"] + 1 if previous else 1
            self.policies[name] = {
                "version": version,
                "modified_date": dt.datetime.now(dt.UTC).isoformat(),
                "policy": json.loads(json.dumps(policy)),
            }
            return 200, {"acknowledged": True}
        if method == "GET":
            if name and name not in self.policies:
                raise EsFault(404, "resource_not_found_exception", f"Lifecycle policy not found: {name}")
            names = [name] if name else sorted(self.policies)
            return 200, {n: self.policies[n] for n in names}
        if method == "DELETE" and name:
            if self.policies.pop(name, None) is None:
                raise EsFault(404, "resource_not_found_exception", f"Lifecycle policy not found: {name}")
            return 200, {"acknowledged": True}
        raise EsFault(405, "method_not_allowed", f"{method} on _ilm/policy")

    def _create_index(self, name: str, body: dict[str, Any] | None = None) -> Index:
        if name in self.aliases:
            raise EsFault(
                400, "invalid_index_name_exception", f"Invalid index name [{name}], already exists as alias"
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.+-]*", name):
            raise EsFault(400, "invalid_index_name_exception", f"Invalid index name [{name}]")
        template = self._matching_template(name)
        tpl = (template or {}).get("template", {})
        index = Index(
            name=name,
            mappings=json.loads(json.dumps(tpl.get("mappings", {}))),
            settings=json.loads(json.dumps(tpl.get("settings", {}))),
        )
        aliases = dict(tpl.get("aliases", {}))
        if body:
            index.mappings = _merge(index.mappings, body.get("mappings", {}))
            index.settings = _merge(index.settings, body.get("settings", {}))
            aliases.update(body.get("aliases", {}))
        resolve_analyzers(index.mappings, index.settings)  # refuses an analyzer that is not there
        lifecycle = index.settings.get("index", {}).get("lifecycle", {})
        if lifecycle.get("parse_origination_date") in (True, "true") and not _ORIGINATION.match(name):
            raise EsFault(
                400,
                "illegal_argument_exception",
                f"index name [{name}] does not match pattern '^.*-\\d{{4}}.\\d{{2}}.\\d{{2}}(-[\\d]+)?'",
            )
        self.indices[name] = index
        for alias in aliases:
            self.aliases.setdefault(alias, set()).add(name)
        return index

    def _matching_template(self, name: str) -> dict[str, Any] | None:
        matches = [
            t
            for t in self.templates.values()
            if any(fnmatch.fnmatchcase(name, p) for p in t["index_patterns"])
        ]
        return max(matches, key=lambda t: t.get("priority", 0)) if matches else None

    def _write_index(self, name: str) -> Index:
        if name in self.aliases:
            targets = sorted(self.aliases[name])
            if len(targets) != 1:
                raise EsFault(
                    400,
                    "illegal_argument_exception",
                    f"no write index is defined for alias [{name}]. The write index may be explicitly "
                    "disabled using is_write_index=false or the alias points to multiple indices",
                )
            name = targets[0]
        return self.indices.get(name) or self._create_index(name)

    def _bulk(self, default_index: str | None, lines: Any) -> tuple[int, Any]:
        if not isinstance(lines, list):
            raise EsFault(
                400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"
            )
        items: list[dict[str, Any]] = []
        it = iter(lines)
        for meta in it:
            if not isinstance(meta, dict) or len(meta) != 1:
                raise EsFault(400, "illegal_argument_exception", f"Malformed action/metadata line [{meta}]")
            ((op, args),) = meta.items()
            source = None if op == "delete" else next(it, None)
            items.append({op: self._bulk_item(op, args, source, default_index)})
        errors = any("error" in next(iter(i.values())) for i in items)
        return 200, {"took": 1, "errors": errors, "items": items}

    def _bulk_item(
        self, op: str, args: dict[str, Any], source: Any, default_index: str | None
    ) -> dict[str, Any]:
        doc_id = args.get("_id")
        index_name = args.get("_index") or default_index
        result: dict[str, Any] = {"_index": index_name, "_id": doc_id}
        try:
            if op not in ("index", "create", "update", "delete"):
                raise EsFault(
                    400, "illegal_argument_exception", f"Malformed action/metadata line, unknown op [{op}]"
                )
            if not index_name:
                raise EsFault(400, "action_request_validation_exception", "index is missing")
            fault = self._item_faults.get(str(doc_id))
            if fault is not None:
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._item_faults[str(doc_id)]
                raise EsFault(fault.status, fault.type, fault.reason)
            index = self._write_index(index_name)
            result["_index"] = index.name
            if doc_id is None:
                doc_id = result["_id"] = f"auto{next(self._seq)}"
            doc_id = str(doc_id)
            exists = doc_id in index.docs
            if op == "delete":
                if not exists:
                    return {**result, "result": "not_found", "status": 404, "_version": 1}
                del index.docs[doc_id]
                return {**result, "result": "deleted", "status": 200, "_version": index.versions[doc_id] + 1}
            if op == "create" and exists:
                raise EsFault(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists",
                )
            if op == "update":
                if not exists:
                    raise EsFault(404, "document_missing_exception", f"[{doc_id}]: document missing")
                source = _merge(index.docs[doc_id], (source or {}).get("doc", {}))
            if not isinstance(source, dict):
                raise EsFault(400, "document_parsing_exception", "[1:1] failed to parse: expected an object")
            validate(source, index.mappings.get("properties", {}), index.mappings.get("dynamic", "true"), "")
            index.docs[doc_id] = json.loads(json.dumps(source))
            index.versions[doc_id] = index.versions.get(doc_id, 0) + 1
            return {
                **result,
                "_version": index.versions[doc_id],
                "result": "updated" if exists else "created",
                "status": 200 if exists else 201,
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": next(self._seq),
                "_primary_term": 1,
            }
        except EsFault as fault:
            return {**result, "status": fault.status, "error": {"type": fault.type, "reason": fault.reason}}

    def _resolve(self, target: str, *, allow_missing: bool = False) -> list[str]:
        names: list[str] = []
        for part in target.split(","):
            if part in ("_all", "*"):
                names.extend(self.indices)
            elif "*" in part or "?" in part:
                names.extend(n for n in self.indices if fnmatch.fnmatchcase(n, part))
                for alias, members in self.aliases.items():
                    if fnmatch.fnmatchcase(alias, part):
                        names.extend(members)
            elif part in self.aliases:
                names.extend(self.aliases[part])
            elif part in self.indices:
                names.append(part)
            elif not allow_missing:
                raise EsFault(404, "index_not_found_exception", f"no such index [{part}]", index=part)
        return sorted(set(names) & set(self.indices))

    def _search(
        self, target: str, body: dict[str, Any], *, count: bool, params: dict[str, str]
    ) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise EsFault(400, "parsing_exception", "request body must be an object")
        allowed = (
            {"query"}
            if count
            else {"query", "size", "from", "sort", "_source", "track_total_hits", "search_after"}
        )
        unknown = set(body) - allowed
        if unknown:
            raise EsFault(
                400,
                "parsing_exception",
                f"the fake does not support {sorted(unknown)} in {'_count' if count else '_search'}",
            )
        names = self._resolve(target, allow_missing=params.get("ignore_unavailable") == "true")
        query = body.get("query", {"match_all": {}})
        hits = []
        searched = {n: resolve_analyzers(self.indices[n].mappings, self.indices[n].settings) for n in names}
        for name in names:
            index = self.indices[name]
            for doc_id, source in index.docs.items():
                score = matches(query, source, doc_id, searched[name])
                if score:
                    hits.append({"_index": name, "_id": doc_id, "_score": float(score), "_source": source})
        if count:
            return 200, {"count": len(hits), "_shards": _shards(len(names))}
        sort = sort_spec(body.get("sort"))
        for name, _ in sort:
            for index_name in names:
                if is_text(field_spec(self.indices[index_name].mappings, name)):
                    raise EsFault(
                        400,
                        "illegal_argument_exception",
                        f"Text fields are not optimised for operations that require per-document field data "
                        f"like aggregations and sorting, so these operations are disabled by default. "
                        f"Please use a keyword field instead. [{name}]",
                    )
        if sort:
            for hit in hits:
                mappings = self.indices[hit["_index"]].mappings
                hit["sort"] = [sort_value(hit, f, field_spec(mappings, f)) for f, _ in sort]
            for position in reversed(range(len(sort))):
                _, order = sort[position]
                hits.sort(key=lambda h, p=position: sort_key(h["sort"][p]), reverse=order == "desc")
        else:
            hits.sort(key=lambda h: -h["_score"])
        window = int(body.get("from", 0)) + int(body.get("size", 10))
        if window > self.max_result_window:
            raise EsFault(
                400,
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: "
                f"[{self.max_result_window}] but was [{window}]. See the scroll api for a more efficient "
                "way to request large data sets.",
            )
        total = len(hits)  # like Elasticsearch: every match, whatever search_after leaves out
        if sort and "search_after" in body:
            bound = body["search_after"]
            hits = [h for h in hits if is_after(h["sort"], bound, sort)]
        start = int(body.get("from", 0))
        size = int(body.get("size", 10))
        page = [
            dict(h, _source=filter_source(h["_source"], body.get("_source", True)))
            for h in hits[start : start + size]
        ]
        for hit in page:
            if hit["_source"] is None:
                del hit["_source"]
        return 200, {
            "took": 1,
            "timed_out": False,
            "_shards": _shards(len(names)),
            "hits": {
                "total": {"value": total, "relation": "eq"},
                "max_score": max((h["_score"] for h in page), default=None),
                "hits": page,
            },
        }

    def _mapping(self, method: str, target: str, body: Any, params: dict[str, str]) -> tuple[int, Any]:
        names = self._resolve(target, allow_missing=params.get("allow_no_indices") != "false")
        if method == "GET":
            return 200, {n: {"mappings": self.indices[n].mappings} for n in names}
        if method in ("PUT", "POST"):
            for name in names:
                index = self.indices[name]
                # the new fields' analyzers must exist in the index (its analysis settings are
                # fixed while it is open), and a field's analyzer cannot change
                resolve_analyzers({"properties": body.get("properties", {})}, index.settings)
                _check_compatible(index.mappings.get("properties", {}), body.get("properties", {}), "")
            for name in names:
                mappings = self.indices[name].mappings
                mappings["properties"] = _merge(mappings.get("properties", {}), body.get("properties", {}))
                for key in ("dynamic", "_meta"):
                    if key in body:
                        mappings[key] = body[key]
            return 200, {"acknowledged": True}
        raise EsFault(405, "method_not_allowed", f"{method} on _mapping")

    def _update_aliases(self, body: Any) -> tuple[int, Any]:
        """``POST /_aliases`` with ``add`` actions (``index`` or ``indices``, ``alias``), as ES
        applies them: every index named must exist, or nothing changes."""
        actions = body.get("actions") if isinstance(body, dict) else None
        if not isinstance(actions, list) or not actions:
            raise EsFault(400, "action_request_validation_exception", "no actions specified")
        adds: list[tuple[str, str]] = []
        for action in actions:
            add = action.get("add") if isinstance(action, dict) else None
            if not isinstance(add, dict) or not add.get("alias"):
                raise EsFault(400, "illegal_argument_exception", "the fake takes add actions with an alias")
            names = add.get("indices") or [add.get("index")]
            for name in names:
                adds += [(n, add["alias"]) for n in self._resolve(str(name))]
        for name, alias in adds:
            self.aliases.setdefault(alias, set()).add(name)
        return 200, {"acknowledged": True, "errors": False}

    def _put_settings(self, target: str, body: Any) -> tuple[int, Any]:
        """Update index settings as ES does: dynamic ones on live indices; a static one (the shard
        count) refused for the whole request, nothing changed."""
        if not isinstance(body, dict) or not body:
            raise EsFault(400, "action_request_validation_exception", "no settings to update")
        given = _nested(body.get("settings", body))  # {"index": {...}}, {...} or dotted keys
        changes = {**{k: v for k, v in given.items() if k != "index"}, **given.get("index", {})}
        static = sorted(f"index.{k}" for k in changes if k in ("number_of_shards", "routing_partition_size"))
        names = self._resolve(target, allow_missing="*" in target)
        if static:
            raise EsFault(
                400,
                "illegal_argument_exception",
                f"Can't update non dynamic settings [{static}] for open indices {names}",
            )
        for name in names:
            index = self.indices[name]
            index.settings = _merge(index.settings, {"index": changes})
        return 200, {"acknowledged": True}

    def _get_doc(self, target: str, doc_id: str) -> tuple[int, Any]:
        for name in self._resolve(target):
            source = self.indices[name].docs.get(doc_id)
            if source is not None:
                return 200, {"_index": name, "_id": doc_id, "found": True, "_source": source}
        return 404, {"_index": target, "_id": doc_id, "found": False}

    def _index_api(self, method: str, target: str, body: Any, params: dict[str, str]) -> tuple[int, Any]:
        if method == "PUT":
            if target in self.indices:
                raise EsFault(
                    400, "resource_already_exists_exception", f"index [{target}] already exists", index=target
                )
            self._create_index(target, body if isinstance(body, dict) else None)
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": target}
        wildcard = "*" in target or params.get("allow_no_indices") == "true"
        names = self._resolve(target, allow_missing=wildcard or params.get("ignore_unavailable") == "true")
        if method == "HEAD":
            return (200 if names else 404), None
        if method == "GET":
            return 200, {
                n: {
                    "aliases": {a: {} for a, m in self.aliases.items() if n in m},
                    "mappings": self.indices[n].mappings,
                    "settings": self.indices[n].settings,
                }
                for n in names
            }
        if method == "DELETE":
            for name in names:
                del self.indices[name]
                for members in self.aliases.values():
                    members.discard(name)
            self.aliases = {a: m for a, m in self.aliases.items() if m}
            return 200, {"acknowledged": True}
        raise EsFault(405, "method_not_allowed", f"{method} /{target}")


# ------------------------------------------------------------------------------------------ HTTP


class _Handler(BaseHTTPRequestHandler):
    fake: FakeElasticsearch
    protocol_version = "HTTP/1.1"  # keep-alive, like a real cluster
    disable_nagle_algorithm = True  # headers and body go out separately; no 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures itself
        pass

    def _serve(self) -> None:
        if self.fake.dead:  # a crashed node: drop the connection without an answer
            self.close_connection = True
            return
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        limit = self.fake.max_content_length
        if limit is not None and length > limit:
            with self.fake._lock:
                self.fake.too_large_requests += 1
            self.send_response(413)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.wfile.flush()
            return
        try:
            status, body = self.fake.handle(self.command, self.path, headers, raw)
        except EsFault as fault:
            status, body = fault.status, fault.body()
        except Exception as exc:  # a bug in the fake must show up as a 500, not hang the client
            status, body = 500, EsFault(500, "fake_internal_error", repr(exc)).body()
        if self.fake.dead:
            self.close_connection = True
            return
        payload = b"" if body is None else json.dumps(body).encode()
        with self.fake._lock:
            garble = self.fake._take(self.fake._garbles, self.command, urlsplit(self.path).path)
        if garble is not None and garble.transform is not None:
            payload = garble.transform(payload)
        compat = "compatible-with" in headers.get("accept", "")
        ctype = "application/vnd.elasticsearch+json;compatible-with=9" if compat else "application/json"
        try:
            self.send_response(status)
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'ApiKey, Basic realm="security"')
            self.end_headers()
            if garble is not None and garble.transform is None:  # the node drops the connection
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): fine
            self.close_connection = True
        self.fake.after_response(urlsplit(self.path).path)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve


# ------------------------------------------------------------------------------------------ helpers


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8")
    if "ndjson" in content_type:
        if not text.endswith("\n"):
            return None  # ES refuses an unterminated bulk body; _bulk turns None into that error
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    try:
        return json.loads(text)
    except ValueError:
        raise EsFault(400, "parsing_exception", "request body is not JSON") from None


def _shards(n: int) -> dict[str, int]:
    return {"total": n, "successful": n, "skipped": 0, "failed": 0}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"index.number_of_replicas": 0}`` as ``{"index": {"number_of_replicas": 0}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _nested(value) if isinstance(value, dict) else value
    return out


def _stringify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _check_compatible(old: dict[str, Any], new: dict[str, Any], path: str) -> None:
    for name, spec in new.items():
        if name in old:
            before = old[name].get("type", "object")
            after = spec.get("type", "object")
            if before != after:
                raise EsFault(
                    400,
                    "illegal_argument_exception",
                    f"mapper [{path}{name}] cannot be changed from type [{before}] to [{after}]",
                )
            for parameter in ("analyzer", "search_analyzer", "normalizer"):
                was, wanted = old[name].get(parameter), spec.get(parameter)
                if was != wanted and (was or wanted) and after in ("text", "keyword"):
                    raise EsFault(
                        400,
                        "illegal_argument_exception",
                        f"Mapper for [{path}{name}] conflicts with existing mapper:\n\t"
                        f"Cannot update parameter [{parameter}] from [{was or 'default'}] to "
                        f"[{wanted or 'default'}]",
                    )
            _check_compatible(old[name].get("properties", {}), spec.get("properties", {}), f"{path}{name}.")
            _check_compatible(old[name].get("fields", {}), spec.get("fields", {}), f"{path}{name}.")


# ------------------------------------------------------------------------------------- fixture


@pytest.fixture
def es_server() -> Iterator[FakeElasticsearch]:
    """A fresh fake cluster per test, stopped at teardown."""
    server = FakeElasticsearch().start()
    try:
        yield server
    finally:
        server.stop()
