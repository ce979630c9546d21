"""Installing and checking the template and retention policy; errors that say what to check."""

from __future__ import annotations

import pytest
from es_support import config, rows
from fakes.es_server import FakeElasticsearch

from exporters.elasticsearch.bulk import index_rows
from exporters.elasticsearch.config import make_client
from exporters.elasticsearch.layout import ilm_policy, index_template, policy_name, template_name
from exporters.elasticsearch.setup import check, install, preflight
from pipelines.errors import IndexingError


def _writes(server: FakeElasticsearch) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests if r.method in ("PUT", "POST", "DELETE")]


def test_install_puts_policy_and_template_and_is_idempotent(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    first = install(client, cfg)
    assert first.policy_changed and first.template_changed
    assert es_server.templates[template_name(cfg)] == index_template(cfg)
    assert es_server.policies[policy_name(cfg)]["policy"] == ilm_policy(cfg)["policy"]

    writes_before = len(_writes(es_server))
    second = install(client, cfg)
    assert not second.changed
    assert len(second.unchanged) == 2
    assert len(_writes(es_server)) == writes_before  # nothing written the second time


def test_changing_retention_updates_only_the_policy(es_server):
    client = make_client(config(es_server.url))
    install(client, config(es_server.url))
    report = install(client, config(es_server.url, retention_days=3650))
    assert report.policy_changed and not report.template_changed
    assert es_server.policies["vigil-records-retention"]["version"] == 2
    assert es_server.policies["vigil-records-retention"]["policy"]["phases"]["delete"]["min_age"] == "3681d"


def test_template_update_reaches_existing_indices(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(10), cfg)  # two monthly indices now exist
    # Simulate indices created by an older Vigil: a field missing, an older template and mapping.
    for index in es_server.indices.values():
        del index.mappings["properties"]["template_id"]
    es_server.templates[template_name(cfg)]["_meta"].update(vigil_hash="older", mapping_hash="older")

    report = install(client, cfg)
    assert report.template_changed
    assert report.indices_updated == ["vigil-records-2026.01.01", "vigil-records-2026.02.01"]
    # documents indexed before the change get the new fields only when sent again: say how
    assert "run `vigil es index --archive DIR --role officer`" in report.changes[-1]
    for index in es_server.indices.values():
        assert index.mappings["properties"]["template_id"] == {"type": "keyword"}


def _replicas(server: FakeElasticsearch) -> dict[str, str]:
    return {
        name: str(index.settings["index"]["number_of_replicas"]) for name, index in server.indices.items()
    }


def test_a_new_replica_count_reaches_existing_indices_without_touching_their_mapping(es_server):
    client = make_client(config(es_server.url))
    install(client, config(es_server.url, replicas=1))
    index_rows(client, rows(10), config(es_server.url, replicas=1))  # two monthly indices, 1 replica
    assert set(_replicas(es_server).values()) == {"1"}
    writes_before = len(_writes(es_server))

    report = install(client, config(es_server.url, replicas=0))  # one node: yellow until 0
    assert report.template_changed
    assert (
        es_server.templates[template_name(config(es_server.url))]["template"]["settings"]["index"][
            "number_of_replicas"
        ]
        == 0
    )
    # the mapping did not change: not re-applied, and no advice to re-index the archive
    new_writes = _writes(es_server)[writes_before:]
    assert not [w for w in new_writes if w.endswith("/_mapping")]
    assert report.indices_updated == []
    assert not any("vigil es index" in line for line in report.changes)
    # the replica count is set on the indices that exist
    assert new_writes == ["PUT /_index_template/vigil-records", "PUT /vigil-records-*/_settings"]
    assert report.replicas_updated == ["vigil-records-2026.01.01", "vigil-records-2026.02.01"]
    assert any("set 2 existing index(es) to 0 replica(s)" in line for line in report.changes)
    assert set(_replicas(es_server).values()) == {"0"}
    # and once done, nothing more to do
    assert not install(client, config(es_server.url, replicas=0)).changed


def test_setup_mends_indices_an_earlier_setup_left_with_another_replica_count(es_server):
    # the template already asks for 0 replicas, but the months created before it still have 1
    cfg = config(es_server.url, replicas=0)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(3), cfg)
    for index in es_server.indices.values():
        index.settings["index"]["number_of_replicas"] = 1
    report = install(client, cfg)
    assert not report.template_changed and report.replicas_updated == ["vigil-records-2026.01.01"]
    assert _replicas(es_server) == {"vigil-records-2026.01.01": "0"}


def test_check_names_indices_with_another_replica_count_and_leaves_auto_expanded_ones(es_server):
    cfg = config(es_server.url, replicas=0)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(10), cfg)  # two monthly indices
    assert check(client, cfg).ok
    january, february = sorted(es_server.indices)
    es_server.indices[january].settings["index"]["number_of_replicas"] = 1  # set by hand since
    report = check(client, cfg)
    assert report.problems == [
        f"1 existing index(es) keep another replica count than the 0 asked for: {january} (1); "
        "run `vigil es setup --replicas 0` to set it on them"
    ]
    # an index whose replica count Elasticsearch adjusts itself is not Vigil's to judge
    es_server.indices[january].settings["index"]["auto_expand_replicas"] = "0-1"
    assert check(client, cfg).ok
    del es_server.indices[january].settings["index"]["auto_expand_replicas"]
    install(client, cfg)  # what the problem says to run mends it
    assert check(client, cfg).ok and _replicas(es_server) == {january: "0", february: "0"}


def test_indices_outside_the_alias_or_the_lifecycle_are_named_by_check_and_adopted_by_setup(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(10), cfg)  # two monthly indices
    january, february = sorted(es_server.indices)
    # someone took January out of the alias and February out of retention (or made them by hand)
    es_server.aliases[cfg.alias].discard(january)
    del es_server.indices[february].settings["index"]["lifecycle"]
    report = check(client, cfg)  # a report, not a 404 on the alias
    assert report.documents == 10
    assert report.problems == [
        f"1 existing index(es) are not under the read alias {cfg.alias}, so searches do not see them "
        f"({january}; made before the template, by hand or by another tool): run `vigil es setup` to "
        "adopt them",
        f"1 existing index(es) lack the lifecycle policy {policy_name(cfg)}, so retention does not "
        f"delete them ({february}; made before the template, by hand or by another tool): run "
        "`vigil es setup` to adopt them",
    ]
    es_server.aliases[cfg.alias].discard(february)  # no index left under the alias at all
    assert check(client, cfg).documents == 10
    done = install(client, cfg)
    assert any(c.startswith("added 2 existing index(es)") for c in done.changes), done.changes
    assert any(
        c.startswith(f"gave 1 existing index(es) the lifecycle policy {policy_name(cfg)}")
        for c in done.changes
    )
    assert es_server.aliases[cfg.alias] == {january, february}
    assert es_server.indices[february].settings["index"]["lifecycle"] == {
        "name": policy_name(cfg),
        "parse_origination_date": True,
    }
    assert check(client, cfg).ok
    assert not [c for c in install(client, cfg).changes if "existing index" in c]  # nothing left to adopt


def test_a_new_shard_count_says_it_applies_to_new_months_only(es_server):
    client = make_client(config(es_server.url))
    install(client, config(es_server.url))
    index_rows(client, rows(3), config(es_server.url))
    writes_before = len(_writes(es_server))
    report = install(client, config(es_server.url, shards=3))
    assert report.template_changed and report.indices_updated == [] and report.replicas_updated == []
    # a shard count cannot change on an existing index: nothing is sent to it, the user is told
    assert _writes(es_server)[writes_before:] == ["PUT /_index_template/vigil-records"]
    assert any(
        "1 existing index(es) keep their shard count" in line and "3 primary shard(s)" in line
        for line in report.changes
    )
    assert not any("vigil es index" in line for line in report.changes)
    # said when the shard count changes, not on every later run
    assert not install(client, config(es_server.url, shards=3)).changed


def test_the_fake_refuses_a_shard_count_on_an_existing_index(es_server):
    # as Elasticsearch does: number_of_shards is static, so setup must never send it to an index
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(1), cfg)
    from elasticsearch import BadRequestError

    with pytest.raises(BadRequestError, match="non dynamic settings"):
        client.indices.put_settings(index="vigil-records-*", settings={"index.number_of_shards": 2})


def test_incompatible_mapping_change_explains_the_way_out(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(2), cfg)
    for index in es_server.indices.values():
        index.mappings["properties"]["is_group"] = {"type": "keyword"}
    es_server.templates[template_name(cfg)]["_meta"].update(vigil_hash="older", mapping_hash="older")
    with pytest.raises(IndexingError, match=r"cannot be changed.*reindex the affected months"):
        install(client, cfg)


def _as_the_previous_release_installed(server: FakeElasticsearch, cfg) -> None:
    """Template and indices as a Vigil whose CJK sub-fields used the stock ``cjk`` analyzer left
    them: no analysis settings, and the mapping fingerprint of that mapping alone."""
    from exporters.elasticsearch.layout import fingerprint

    def stock(props: dict) -> None:
        for spec in props.values():
            if spec.get("analyzer") == "vigil_cjk":
                spec["analyzer"] = "cjk"
            stock(spec.get("properties", {}))
            stock(spec.get("fields", {}))

    template = server.templates[template_name(cfg)]
    stock(template["template"]["mappings"]["properties"])
    del template["template"]["settings"]["index"]["analysis"]
    template["_meta"].update(vigil_hash="older", mapping_hash=fingerprint(template["template"]["mappings"]))
    for index in server.indices.values():
        stock(index.mappings["properties"])
        index.mappings["_meta"] = {"vigil_record": "Record"}  # indices kept no fingerprint then
        del index.settings["index"]["analysis"]


def test_indices_of_the_stock_cjk_analyzer_are_to_be_indexed_again(es_server):
    # the CJK sub-fields' analyzer changed (iteration marks): an index cannot take another
    # analyzer, so setup installs the new template for new months and says to index the old ones
    # again; check says the installed template is older until it is installed
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(2), cfg)
    _as_the_previous_release_installed(es_server, cfg)
    assert "index template vigil-records has an older mapping" in " ".join(check(client, cfg).problems)
    with pytest.raises(IndexingError, match=r"vigil_cjk.*reindex the affected months.*vigil es index"):
        install(client, cfg)
    assert es_server.templates[template_name(cfg)] == index_template(cfg)  # new months: new analyzer
    for index in es_server.indices.values():  # nothing half-changed in the old ones
        assert index.mappings["properties"]["body"]["fields"]["cjk"]["analyzer"] == "cjk"


def test_the_fake_refuses_an_analyzer_an_index_does_not_define(es_server):
    from elasticsearch import BadRequestError

    cfg = config(es_server.url)
    client = make_client(cfg)
    template = index_template(cfg)
    del template["template"]["settings"]["index"]["analysis"]
    with pytest.raises(BadRequestError, match=r"analyzer \[vigil_cjk\] has not been configured"):
        client.indices.put_index_template(name="other", body={**template, "priority": 7})
    install(client, cfg)
    index_rows(client, rows(1), cfg)
    (name,) = es_server.indices
    with pytest.raises(BadRequestError, match=r"Cannot update parameter \[analyzer\] from \[vigil_cjk\]"):
        client.indices.put_mapping(
            index=name,
            properties={
                "body": {"type": "text", "analyzer": "standard", "fields": {"cjk": {"type": "text"}}}
            },
        )


def test_months_an_earlier_mapping_governs_are_named_until_they_are_indexed_again(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(2), cfg)
    assert install(client, cfg).stale == [] and check(client, cfg).ok
    for index in es_server.indices.values():  # made before indices kept the fingerprint, alike
        index.mappings["_meta"] = {"vigil_record": "Record"}
    assert install(client, cfg).stale == [] and check(client, cfg).ok
    _as_the_previous_release_installed(es_server, cfg)
    (month,) = es_server.indices
    # the first setup cannot change the analyzer of the month that exists, and says what to do
    with pytest.raises(IndexingError, match=r"reindex the affected months"):
        install(client, cfg)
    # later setups succeed (the template is current) but keep naming that month, as check does
    again = install(client, cfg)
    assert not again.changed and again.stale == [month]
    (problem,) = check(client, cfg).problems
    assert problem.startswith(f"1 existing index(es) still have the mapping of an earlier Vigil ({month})")
    assert "vigil es index --archive DIR --role officer" in problem
    # deleted and indexed again: current
    client.indices.delete(index=month)
    index_rows(client, rows(2), cfg)
    assert install(client, cfg).stale == [] and check(client, cfg).ok


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (lambda s: None, None),
        (lambda s: s.templates.clear(), "index template vigil-records is missing"),
        (lambda s: s.policies.clear(), "ILM policy vigil-records-retention is missing"),
        (
            lambda s: s.templates["vigil-records"]["_meta"].update(vigil_hash="x", mapping_hash="y"),
            "older mapping",
        ),
        (lambda s: s.templates["vigil-records"]["_meta"].update(vigil_hash="x"), "other settings"),
        (
            lambda s: s.policies["vigil-records-retention"]["policy"]["_meta"].update(
                vigil_hash="x", retention_days=90
            ),
            "keeps records 90 days",
        ),
        (  # an operator edited the policy in Kibana: Vigil's _meta is gone
            lambda s: s.policies["vigil-records-retention"]["policy"].pop("_meta"),
            "was not written by Vigil",
        ),
    ],
)
def test_check_reports_what_is_off(es_server, tamper, problem):
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    index_rows(client, rows(3), cfg)
    tamper(es_server)
    report = check(client, cfg)
    assert report.indices == ["vigil-records-2026.01.01"]
    assert report.documents == 3
    if problem is None:
        assert report.ok and report.problems == []
    else:
        assert not report.ok
        assert len(report.problems) == 1 and problem in report.problems[0]


def test_check_flags_an_old_cluster(es_server):
    es_server.version = "8.15.0"  # refuses the 9.x client's compatible-with=9, as a real 8.x node does
    with pytest.raises(IndexingError, match=r"older than Elasticsearch 9\.x"):
        check(make_client(config(es_server.url)), config(es_server.url))


def test_preflight_wants_the_template(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    with pytest.raises(IndexingError, match="run `vigil es setup` first"):
        preflight(client, cfg)
    install(client, cfg)
    preflight(client, cfg)


def test_unreachable_cluster(es_server):
    url = es_server.url
    es_server.stop()
    cfg = config(url, max_retries=1)
    with pytest.raises(
        IndexingError, match=r"cannot reach Elasticsearch at http://127\.0\.0\.1:\d+.*check --es-url"
    ):
        install(make_client(cfg), cfg)


def test_rejected_template_is_an_indexing_error(es_server):
    es_server.fail(
        r"/_index_template/",
        400,
        method="PUT",
        error_type="illegal_argument_exception",
        reason="unknown setting [index.foo]",
    )
    cfg = config(es_server.url)
    with pytest.raises(
        IndexingError, match=r"rejected the request while writing index template.*unknown setting"
    ):
        install(make_client(cfg), cfg)


def test_missing_privileges_are_named(es_server):
    es_server.fail(
        r"/_ilm/policy/",
        403,
        method="PUT",
        error_type="security_exception",
        reason="action [cluster:admin/ilm/put] is unauthorized",
    )
    cfg = config(es_server.url)
    with pytest.raises(IndexingError, match="manage_ilm"):
        install(make_client(cfg), cfg)


def test_a_server_that_is_not_elasticsearch(es_server, monkeypatch):
    from fakes import es_server as fake_module

    original = fake_module._Handler.send_header

    def no_product_header(self, key, value):
        if key != "X-Elastic-Product":
            original(self, key, value)

    monkeypatch.setattr(fake_module._Handler, "send_header", no_product_header)
    cfg = config(es_server.url)
    with pytest.raises(IndexingError, match="not Elasticsearch"):
        install(make_client(cfg), cfg)


@pytest.mark.parametrize("status", [404, 502])
def test_a_web_server_answering_with_an_error_page_is_named_as_not_elasticsearch(status):
    # a wrong port or a proxy in front of a stopped cluster: an HTML error page, no product header
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body>Not here</body></html>"
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = config(f"http://127.0.0.1:{server.server_port}", max_retries=0)
        with pytest.raises(IndexingError) as caught:
            install(make_client(cfg), cfg)
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert f"answered HTTP {status} while reading cluster info, and it is not Elasticsearch" in message
    assert "check --es-url" in message


def test_slow_cluster_times_out_with_advice(es_server):
    es_server.delay(1.0, path=r"^/$", times=None)
    cfg = config(es_server.url, request_timeout=0.2, max_retries=0)
    with pytest.raises(IndexingError, match=r"did not answer within 0\.2s.*--request-timeout"):
        install(make_client(cfg), cfg)


@pytest.mark.parametrize(
    ("path", "answer", "doing"),
    [
        (r"^/$", b"{}", "reading cluster info"),
        (r"^/$", b"[1]", "reading cluster info"),
        (r"^/_ilm/policy/", b"[]", "reading ILM policy"),
        (r"^/_index_template/", b'{"index_templates": "x"}', "reading index template"),
        (r"^/_index_template/", b'{"index_templates": ["x"]}', "reading index template"),
    ],
)
def test_an_answer_not_shaped_like_elasticsearch_is_an_indexing_error(es_server, path, answer, doing):
    # JSON with the product header, but not what Elasticsearch sends: a one-line error (exit 4), not
    # an "unexpected KeyError, please report it"
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    es_server.garble(lambda payload: answer, path=path, times=None)
    for step in (install, check):
        with pytest.raises(IndexingError, match=rf"while {doing}.*not as Elasticsearch 9\.x does"):
            step(client, cfg)


def test_a_version_that_is_not_a_number_is_a_problem_not_a_crash(es_server):
    es_server.version = "garbage"
    report = check(make_client(config(es_server.url)), config(es_server.url))
    assert any("too old" in p for p in report.problems)


def test_check_after_setup_with_other_options_says_which_options_to_give_it(es_server):
    """A one-node cluster is set up with --replicas 0 as the README says; a bare `vigil es check`
    then compares with its default (1). Before, it said only "other settings (shards, replicas,
    prefix)" and to run setup again, which had been run right."""
    client = make_client(config(es_server.url, replicas=0))
    install(client, config(es_server.url, replicas=0))
    report = check(client, config(es_server.url, replicas=1))
    (problem,) = report.problems
    assert "replicas 0 where 1 was asked for" in problem
    assert "run `vigil es check --replicas 0`" in problem
    assert check(client, config(es_server.url, replicas=0)).ok
