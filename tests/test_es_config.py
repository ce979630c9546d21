"""Connection settings: environment fallback, validation that says what to fix, secrets kept out."""

from __future__ import annotations

import base64

import pytest

from exporters.elasticsearch.config import EsConfig, make_client
from exporters.elasticsearch.setup import install
from pipelines.errors import ConfigError, IndexingError


@pytest.mark.parametrize(
    ("env", "options", "expected"),
    [
        ({"ES_URL": "http://es:9200"}, {}, {"url": "http://es:9200"}),
        ({"ES_URL": "http://es:9200"}, {"url": "https://other:9243/"}, {"url": "https://other:9243"}),
        (
            {"ES_URL": "http://es:9200", "ES_USERNAME": "vigil", "ES_PASSWORD": "pw"},
            {},
            {"username": "vigil"},
        ),
        (
            {"ES_URL": "http://es:9200", "ES_API_KEY": "a2V5"},
            {"index_prefix": None},
            {"index_prefix": "vigil-records"},
        ),
        (
            {},
            {"url": "http://es:9200", "retention_days": 30, "replicas": 0},
            {"retention_days": 30, "replicas": 0},
        ),
    ],
)
def test_from_env(env, options, expected):
    cfg = EsConfig.from_env(env, **options)
    for name, value in expected.items():
        assert getattr(cfg, name) == value


@pytest.mark.parametrize(
    ("env", "options", "message"),
    [
        ({}, {}, "pass --es-url URL or set ES_URL"),
        ({}, {"url": "es:9200"}, "not an http(s) URL"),
        ({}, {"url": "ftp://es:21"}, "not an http(s) URL"),
        (
            {"ES_URL": "http://es:9200", "ES_USERNAME": "vigil"},
            {},
            "needs both a username and a password: set ES_PASSWORD",
        ),
        ({"ES_URL": "http://es:9200", "ES_API_KEY": "k"}, {"username": "u", "password": "p"}, "not both"),
        ({"ES_URL": "http://es:9200"}, {"index_prefix": "Vigil Records"}, "index_prefix"),
        ({"ES_URL": "http://es:9200"}, {"retention_days": 0}, "retention_days"),
        ({"ES_URL": "http://es:9200"}, {"ca_certs": "/nonexistent/ca.pem"}, "does not exist"),
        ({"ES_URL": "http://es:9200"}, {"bogus": 1}, "bogus"),
        ({"ES_URL": "http://es:9200"}, {"verify_certs": False}, "TLS settings, and the URL is plain http://"),
    ],
)
def test_bad_settings_say_what_to_fix(env, options, message):
    with pytest.raises(ConfigError, match=r"Elasticsearch|ES_URL") as info:
        EsConfig.from_env(env, **options)
    assert message in str(info.value)


def test_secrets_never_show():
    cfg = EsConfig(url="https://es.example.com:9200", api_key="c2VjcmV0LWtleQ==")
    assert "c2VjcmV0LWtleQ==" not in f"{cfg!r} {cfg} {cfg.safe_url}"
    # a password in the URL becomes the basic-auth password: the URL itself (which reprs, logs and
    # pickles show) no longer holds it
    cfg = EsConfig(url="https://vigil:hunter2@es.example.com:9200")
    assert "hunter2" not in f"{cfg!r} {cfg} {cfg.url} {cfg.safe_url}"
    assert cfg.safe_url == cfg.url == "https://es.example.com:9200"
    assert cfg.username == "vigil" and cfg.password is not None
    assert cfg.password.get_secret_value() == "hunter2"
    with pytest.raises(ConfigError, match="keep one") as info:
        EsConfig.from_env({}, url="https://vigil:hunter2@es", api_key="c2VjcmV0LWtleQ==")
    assert "hunter2" not in str(info.value) and "c2VjcmV0" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        EsConfig.from_env({}, url="gopher://vigil:hunter2@es", api_key="c2VjcmV0LWtleQ==")
    assert "hunter2" not in str(info.value) and "c2VjcmV0" not in str(info.value)


def test_a_user_without_a_password_in_the_url_is_refused_and_the_last_at_ends_the_credentials():
    # basic auth with an empty password is never what was meant (it may be a key pasted as a user)
    with pytest.raises(ConfigError, match="names a user but no password") as info:
        EsConfig.from_env({}, url="https://c2VjcmV0LWtleQ==@es.example.com:9200")
    assert "c2VjcmV0" not in str(info.value) and "es.example.com:9200" in str(info.value)
    # an unencoded @ inside the password: everything before the last @ is user:password
    cfg = EsConfig.from_env({}, url="https://vigil:p@ss@es.example.com:9200")
    assert cfg.url == "https://es.example.com:9200" and cfg.username == "vigil"
    assert cfg.password is not None and cfg.password.get_secret_value() == "p@ss"


def test_api_key_is_sent(es_server):
    es_server.require_api_key("a2V5OnNlY3JldA==")
    cfg = EsConfig(url=es_server.url, api_key="a2V5OnNlY3JldA==", replicas=0)
    install(make_client(cfg), cfg)
    assert es_server.requests[-1].headers["authorization"] == "ApiKey a2V5OnNlY3JldA=="


def test_basic_auth_is_sent(es_server):
    es_server.require_basic_auth("vigil", "s3cret")
    cfg = EsConfig(url=es_server.url, username="vigil", password="s3cret", replicas=0)
    install(make_client(cfg), cfg)
    sent = es_server.requests[-1].headers["authorization"]
    assert base64.b64decode(sent.removeprefix("Basic ")) == b"vigil:s3cret"


def test_wrong_credentials_are_an_indexing_error_without_the_secret(es_server):
    es_server.require_api_key("right-key")
    cfg = EsConfig(url=es_server.url, api_key="wrong-key-123", max_retries=0)
    with pytest.raises(IndexingError, match="refused the credentials") as info:
        install(make_client(cfg), cfg)
    assert "wrong-key-123" not in str(info.value)
    assert info.value.exit_code == 4


@pytest.mark.parametrize(
    ("url", "suggested"),
    [
        ("http://localhost", "http://localhost:9200"),
        ("HTTP://localhost:", "http://localhost:9200"),  # an empty port is no port
        ("http://[::1]/", "http://[::1]:9200"),
        ("http://proxy.example.com/es/", "http://proxy.example.com:9200/es"),
        ("http://vigil:pw@es.example.com", "http://es.example.com:9200"),
    ],
)
def test_an_http_url_without_a_port_is_refused_with_one_that_has_it(url, suggested):
    # the client fills in no port for http:// (it would refuse the URL once the run holds the archive)
    with pytest.raises(ConfigError, match="has no port") as info:
        EsConfig.from_env({}, url=url)
    assert str(info.value).endswith(f"write it, e.g. {suggested}")
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost",
        "https://localhost:",
        "https://vigil:pw@es.example.com/es",
        "http://localhost:80",
        "http://[::1]:9200",
        "http://bücher.example:9200",
        "http://loc host:9200",
        "https://ex ample.com",
        "http://ex\\ample.com:9200",
        "http://[fe80::1%25eth0]:9200",
        "http://localhost:0009200",
        "http://local_host:9200/a b",
    ],
)
def test_a_url_vigil_accepts_is_one_the_client_accepts(url):
    # https:// gets 443 from the client; whatever the client refuses, Vigil refuses first, in one line
    try:
        cfg = EsConfig.from_env({}, url=url)
    except ConfigError as exc:
        assert "Elasticsearch settings: url:" in str(exc) and "\n" not in str(exc)
        return
    make_client(cfg).close()


def test_https_without_a_port_is_port_443():
    cfg = EsConfig.from_env({}, url="https://es.example.com")
    (node,) = make_client(cfg).transport.node_pool.all()
    assert (node.config.scheme, node.config.port) == ("https", 443)
