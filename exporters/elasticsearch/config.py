"""How Vigil reaches an Elasticsearch cluster, and the knobs of the index layout.

Elasticsearch is optional: nothing in this module imports the client until :func:`make_client` is
called, so ``vigil run`` without ``--es-url`` never loads it.

Secrets (API key, password) are :class:`pydantic.SecretStr`: they print as ``**********`` in
reprs, logs and error messages. URLs are shown through :attr:`EsConfig.safe_url`, which drops any
``user:password@`` part.
"""

from __future__ import annotations

import os
import shlex
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines.errors import ConfigError

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

#: Statuses worth retrying: overload (429) and a gateway or node that is briefly away.
RETRY_ON_STATUS: tuple[int, ...] = (429, 502, 503, 504)

#: Seven years (7 × 365 + 2 leap days), the usual books-and-records retention for broker-dealers.
DEFAULT_RETENTION_DAYS = 2557

#: Bulk request bodies are kept under this many bytes (Elasticsearch's guidance is a few to a few
#: tens of megabytes per bulk request; its own hard limit, ``http.max_content_length``, is 100mb).
DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024

#: Environment variables read by :meth:`EsConfig.from_env` (and by the CLI options).
ENV = {
    "url": "ES_URL",
    "api_key": "ES_API_KEY",
    "username": "ES_USERNAME",
    "password": "ES_PASSWORD",
    "ca_certs": "ES_CA_CERTS",
}


class EsConfig(BaseModel):
    """Connection, retry and layout settings. Frozen, picklable (Beam ships it to workers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Cluster URL, e.g. https://es.example.com:9200.")
    api_key: SecretStr | None = Field(None, description="API key (base64 'id:key' as Kibana shows it).")
    username: str | None = Field(None, description="Basic-auth user; needs password.")
    password: SecretStr | None = Field(None, description="Basic-auth password; needs username.")
    ca_certs: Path | None = Field(None, description="PEM bundle of the CA that signed the cluster's cert.")
    verify_certs: bool = Field(True, description="Turn off only for a throw-away test cluster.")
    request_timeout: float = Field(30.0, gt=0, description="Seconds before one HTTP request is abandoned.")
    max_retries: int = Field(5, ge=0, le=50, description="Retries after the first attempt, per request.")
    max_request_bytes: int = Field(
        DEFAULT_MAX_REQUEST_BYTES,
        ge=1024,
        le=2**31 - 1,
        description=(
            "Largest bulk request body; a batch above it goes out in several requests. Keep it "
            "under the cluster's http.max_content_length (100mb unless changed)."
        ),
    )
    retry_backoff: float = Field(1.0, gt=0, description="Seconds before the first retry; doubles each time.")
    retry_backoff_max: float = Field(30.0, gt=0, description="Longest wait between two retries, seconds.")
    index_prefix: str = Field(
        "vigil-records",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,200}$",
        description="Indices are <prefix>-YYYY.MM.01; the read alias is <prefix>.",
    )
    retention_days: int = Field(
        DEFAULT_RETENTION_DAYS, ge=1, description="Days a record stays searchable in Elasticsearch."
    )
    shards: int = Field(1, ge=1, le=1024, description="Primary shards per monthly index.")
    replicas: int = Field(1, ge=0, le=16, description="Replicas per shard (0 for a one-node cluster).")

    @model_validator(mode="before")
    @classmethod
    def _credentials_in_url(cls, data: Any) -> Any:
        """``https://user:password@host`` works (the client sends it as basic auth), but the
        password would then sit in ``url``, which reprs, logs and pickles show: move it into
        ``username``/``password`` (a :class:`SecretStr`) and keep ``url`` free of secrets."""
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        url = data["url"].strip()
        try:
            parts = urlsplit(url)
        except ValueError:
            return data  # the url validator says what is wrong
        if parts.username is None and parts.password is None:
            return data
        if any(data.get(k) is not None for k in ("username", "password", "api_key")):
            raise ValueError(
                "the URL carries a user:password@ and credentials are given as options too: keep one"
            )
        if parts.password is None:  # https://user@host: basic auth with an empty password
            raise ValueError(
                f"{_masked(url)!r} names a user but no password: write user:password@host "
                f"(percent-encoded), or pass --username and set {ENV['password']}"
            )
        return {
            **data,
            "url": _strip_userinfo(url),
            "username": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
        }

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        shown = _masked(value)
        if "@" in value and "://" in value:  # an @ left once user:password@ was taken out
            raise ValueError(
                f"{shown!r} has an @ that is not the end of user:password@host: percent-encode "
                "@ : / ? # in the user name and password (%40 %3A %2F %3F %23)"
            )
        try:
            parts = urlsplit(value)
            port = parts.port  # raises for a port that is not a number in 0-65535
        except ValueError:
            raise ValueError(
                f"{shown!r} is not a valid URL (check the port); e.g. https://localhost:9200"
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            hint = "e.g. https://localhost:9200"
            if "://" not in value:  # localhost:9200, es.example.com: the scheme was left out
                hint = f"add the scheme: https://{shown} (or http:// for a cluster without TLS)"
            raise ValueError(f"{shown!r} is not an http(s) URL; {hint}")
        if port == 0:
            raise ValueError(f"{shown!r} has port 0; e.g. https://localhost:9200")
        if parts.query or parts.fragment:
            raise ValueError(f"{shown!r} has a ?query or #fragment, which the client would ignore: remove it")
        if port is None and scheme == "http":  # the client fills in 443 for https://, nothing for http://
            host = parts.netloc.rpartition("@")[2].rstrip(":")
            raise ValueError(
                f"{shown!r} has no port, and the client assumes none for http://: write it, e.g. "
                f"http://{host}:9200{parts.path.rstrip('/')}"
            )
        # the scheme in lower case: make_client decides on TLS settings from it
        url = urlunsplit((scheme, parts.netloc, parts.path, "", "")).rstrip("/")
        _client_accepts(url, shown)
        return url

    @field_validator("ca_certs")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA bundle {str(value)!r} does not exist")
        return value

    @model_validator(mode="after")
    def _auth(self) -> EsConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "basic auth needs both a username and a password: set ES_PASSWORD (or pass "
                "--password), or leave out the username"
            )
        if self.api_key is not None and self.username is not None:
            raise ValueError("give either an API key or a username and password, not both")
        if self.retry_backoff_max < self.retry_backoff:
            raise ValueError("retry_backoff_max must be at least retry_backoff")
        tls_options = self.ca_certs is not None or not self.verify_certs
        if tls_options and not self.url.lower().startswith("https://"):
            raise ValueError(
                "--ca-certs and --no-verify-certs are TLS settings, and the URL is plain http://: "
                "use an https:// URL, or leave them out (ES_CA_CERTS too)"
            )
        if self.ca_certs is not None:
            _check_ca_bundle(self.ca_certs)
        return self

    @property
    def safe_url(self) -> str:
        """The URL without credentials, fit for messages and logs."""
        return _strip_userinfo(self.url)

    @property
    def alias(self) -> str:
        return self.index_prefix

    def reconnect_command(self, command: str) -> str:
        """``command`` (shell-quoted words) with the flags that reach this cluster again: a command
        a user or a script runs as it is. The secret is never in it (it would end up in logs and
        shell history); :attr:`secret_env` names the variable it must be in."""
        options = ["--es-url", self.safe_url]
        if self.username is not None:
            options += ["--username", self.username]
        if self.index_prefix != "vigil-records":
            options += ["--index-prefix", self.index_prefix]
        if self.ca_certs is not None:
            options += ["--ca-certs", str(self.ca_certs)]
        if not self.verify_certs:
            options.append("--no-verify-certs")
        return f"{command} {' '.join(shlex.quote(o) for o in options)}"

    @property
    def secret_env(self) -> str | None:
        """The environment variable a re-run needs this run's secret in (None: no secret)."""
        if self.api_key is not None:
            return ENV["api_key"]
        if self.password is not None:
            return ENV["password"]
        return None

    @classmethod
    def from_options(cls, **options: Any) -> EsConfig:
        """Build from CLI/keyword options; ``None`` values fall back to the environment, then defaults.

        Raises :class:`ConfigError` naming the option to fix.
        """
        return cls.from_env(os.environ, **options)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> EsConfig:
        values: dict[str, Any] = {}
        for name, var in ENV.items():
            if environ.get(var):
                values[name] = environ[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("url"):
            raise ConfigError("no Elasticsearch URL: pass --es-url URL or set ES_URL")
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"Elasticsearch settings: {problems}") from None


def _client_accepts(url: str, shown: str) -> None:
    """Refuse ``url`` if the client would: :func:`make_client` gives it this URL, and one it refuses
    when it is created (it parses the URL, and urllib3 the host) is a mistake to tell the user
    about now, with the other settings, not an unexpected error once a run holds the archive.
    Creating a client opens no connection."""
    from elasticsearch import Elasticsearch  # imported here: ES is optional (and in use: a URL is given)

    try:
        Elasticsearch(url).close()
    except ValueError as exc:
        raise ValueError(
            f"{shown!r} is not a URL the Elasticsearch client accepts ({exc}); e.g. https://localhost:9200"
        ) from None


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    # the host and port as written: an IPv6 host keeps its brackets, a port 0 stays to be refused
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _masked(url: str) -> str:
    """``url`` for a message: whatever comes before its last ``@`` may be a password, also in a URL
    too broken to parse (no scheme, or a password with an unencoded ``/``, ``?`` or ``#``)."""
    head, at, host = url.rpartition("@")
    if not at:
        return url
    scheme, sep, _ = head.partition("://")
    return f"{scheme}{sep}…@{host}" if sep else f"…@{host}"


def make_client(cfg: EsConfig) -> Elasticsearch:
    """An :class:`elasticsearch.Elasticsearch` client for ``cfg``.

    The transport retries 429/502/503/504, connection errors and timeouts with full-jitter
    exponential backoff. The bulk path (``exporters.elasticsearch.bulk``) turns those retries off
    and does its own, so that it can count them and dead-letter what still fails.
    """
    from elasticsearch import Elasticsearch  # imported here: ES is optional

    auth: dict[str, Any] = {}
    if cfg.api_key is not None:
        auth["api_key"] = cfg.api_key.get_secret_value()
    elif cfg.username is not None and cfg.password is not None:
        auth["basic_auth"] = (cfg.username, cfg.password.get_secret_value())
    tls: dict[str, Any] = {}
    if cfg.url.startswith("https"):
        tls["verify_certs"] = cfg.verify_certs
        if cfg.ca_certs is not None:
            tls["ca_certs"] = str(cfg.ca_certs)
        if not cfg.verify_certs:
            tls["ssl_show_warn"] = False
    return Elasticsearch(
        cfg.url,
        request_timeout=cfg.request_timeout,
        max_retries=cfg.max_retries,
        retry_on_status=RETRY_ON_STATUS,
        retry_on_timeout=True,
        retry_backoff_base=cfg.retry_backoff,
        retry_backoff_cap=cfg.retry_backoff_max,
        **auth,
        **tls,
    )


def _check_ca_bundle(path: Path) -> None:
    """Refuse, while settings are checked, a CA bundle TLS could not use: one that cannot be read
    or holds no PEM certificate (a DER file, a key, a file of something else). Otherwise the first
    request fails with a TLS error whose advice, "pass the CA bundle", is what the user just did."""
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        raise ValueError(
            f"CA bundle {str(path)!r} holds no usable PEM certificate ({exc.reason or exc}): pass the "
            "cluster's CA certificate(s) in PEM form (-----BEGIN CERTIFICATE-----)"
        ) from None
    except OSError as exc:
        raise ValueError(f"CA bundle {str(path)!r} cannot be read ({exc.strerror or exc})") from None
