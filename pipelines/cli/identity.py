"""``--config``, ``--role``, ``--user``: who is asking, for the commands that show or export
records (``vigil search``, ``vigil conversation``, ``vigil es index``, ``vigil dlp dry-run``) and
log it in the access log.

A module of its own so that ``pipelines.cli.es`` and ``pipelines.cli.search`` (which imports the
Elasticsearch connection options from ``es``) can both use it without importing each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def identity_options(func: Any) -> Any:
    """Add ``--config``, ``--role`` and ``--user`` to a click command."""
    func = click.option("--user", default=None, help="Who is asking, for the audit log [config: user].")(func)
    func = click.option(
        "--role",
        type=click.Choice(["officer", "reviewer", "crm"], case_sensitive=False),
        default=None,
        help="What you may see [config: role].",
    )(func)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TOML file with user and role [default: $VIGIL_CONFIG, else ~/.config/vigil/config.toml].",
    )(func)
