"""Fixtures shared across test modules.

``es_server``: a fake Elasticsearch on 127.0.0.1 (see ``tests/fakes/es_server.py``), fresh per test.
"""

from fakes.es_server import es_server  # noqa: F401  (a fixture: pytest finds it by name)
