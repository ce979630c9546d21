"""Fixtures and settings shared across test modules.

``es_server``: a fake Elasticsearch on 127.0.0.1 (see ``tests/fakes/es_server.py``), fresh per test.

Every temporary file the suite's processes make (Beam's ``beam-pipeline-temp*`` folders among
them, which a run the tests kill on purpose cannot remove) goes under pytest's own temporary
folder, which pytest prunes, rather than accumulating in the system's.
"""

import os
import tempfile
from collections.abc import Iterator

import pytest
from fakes.es_server import es_server  # noqa: F401  (a fixture: pytest finds it by name)
from hypothesis import settings

# Property tests draw the same examples on every run, so the suite (and CI) passes or fails the
# same way each time; HYPOTHESIS_PROFILE=explore draws new ones, to look for texts that break a
# property (add any it finds to the test's list of texts found before).
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_under_pytest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = str(tmp_path_factory.mktemp("tmp"))
    saved_env, saved_dir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = folder, folder
    yield
    tempfile.tempdir = saved_dir
    if saved_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved_env
