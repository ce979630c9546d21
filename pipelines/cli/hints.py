"""What the closing hints of a command print: lines a user can paste into a shell as they are."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def vigil_command() -> str:
    """How the user started vigil (``.venv/bin/vigil`` when run through the venv), else ``vigil``."""
    argv0 = sys.argv[0] if sys.argv else ""
    return shlex.quote(argv0) if Path(argv0).name == "vigil" else "vigil"


def quoted(path: object) -> str:
    return shlex.quote(str(path))
