"""Parts of Beam that come with an extra (``pip install 'apache-beam[gcp]'``): the file systems
of remote inputs and the runners that need a cloud client. Vigil installs Beam without extras;
using one of these parts without its extra is a mistake the user fixes by installing it, said in
one line before the archive is touched (Beam would fail half-way, with its own words)."""

from __future__ import annotations

import importlib
import re
from typing import Any

from pipelines.errors import causes

#: URL scheme -> (Beam extra, a module Beam's file system for it imports, absent without the extra)
FILESYSTEMS: dict[str, tuple[str, str]] = {
    "gs": ("gcp", "google.cloud.storage"),
    "s3": ("aws", "boto3"),
    "azfs": ("azure", "azure.storage.blob"),
    "hdfs": ("hadoop", "hdfs"),
}

#: runner class -> (Beam extra, a module the runner imports only when it starts a job)
RUNNERS: dict[str, tuple[str, str]] = {
    "DataflowRunner": ("gcp", "apache_beam.runners.dataflow.internal.apiclient"),
}

#: "please install apache_beam[gcp]", "pip install apache-beam[gcp]": how Beam names an extra
_NAMED = re.compile(r"apache[-_]beam\[([a-z0-9][a-z0-9_-]*)\]")


def pip_install(extra: str) -> str:
    """The command that adds ``extra`` to the Beam that Vigil pins (another version would replace it)."""
    from apache_beam.version import __version__

    return f"pip install 'apache-beam[{extra}]=={__version__}'"


def importable(module: str) -> bool:
    """Whether ``module`` imports (it may be there and still fail for lack of what it imports)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def missing_for_filesystem(scheme: str) -> str | None:
    """The Beam extra a ``scheme://`` path needs and that is not installed (None: installed, or
    no extra Vigil knows of)."""
    extra, module = FILESYSTEMS.get(scheme, (None, None))
    return extra if module is not None and not importable(module) else None


def missing_for_runner(runner: Any) -> str | None:
    """The Beam extra ``runner`` (a runner instance) needs when it starts a job and that is not
    installed: Beam imports it only then, once the run holds the archive."""
    for cls in type(runner).__mro__:
        extra, module = RUNNERS.get(cls.__name__, (None, None))
        if module is not None and not importable(module):
            return extra
    return None


def missing_extra(exc: BaseException) -> str | None:
    """The Beam extra an :class:`ImportError` in ``exc`` (or what it was raised from) says is
    missing: named in Beam's message (``please install apache_beam[interactive]``), or the one
    whose packages hold the module that could not be imported (``dask``). None: not that."""
    for cause in causes(exc):
        if not isinstance(cause, ImportError):
            continue
        if named := _NAMED.search(str(cause)):
            return named.group(1)
        if cause.name and (extra := _extra_providing(cause.name.split(".")[0])):
            return extra
    return None


def _extra_providing(module: str) -> str | None:
    """The one extra of Beam that requires a package named ``module`` (tests and docs left out)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires("apache-beam") or []
    except PackageNotFoundError:
        return None
    wanted = _normal(module)
    extras = set()
    for requirement in requirements:
        name = _normal(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
        found = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        if name == wanted and found and not re.search(r"(^|-)(test|dev|docs)$", found.group(1)):
            extras.add(found.group(1))
    return extras.pop() if len(extras) == 1 else None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
