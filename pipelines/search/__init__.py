"""Compliance search: one query model, two engines, role-based views, an audited trail.

* ``query`` / ``parse``  — the :class:`~pipelines.search.query.Query` and its ``lark`` grammar
* ``text`` / ``match``   — what a word means (tokens, CJK substrings), as RE2 and Python patterns
* ``sql`` / ``embedded`` — DuckDB over the archive's committed Parquet files (the default engine)
* ``dsl`` / ``es_engine`` — Elasticsearch Query DSL, sent to the ``vigil-records`` alias
* ``access``             — roles (officer, reviewer, crm), identity from flags or TOML config
* ``results`` / ``render`` — hits, the table and JSON-lines output
* ``conversation``       — a conversation reconstructed in order, for the terminal or as HTML
* ``audit``              — every search, view and export appended to ``_ledger/audit.jsonl``

Typical use::

    from pipelines.search import embedded
    from pipelines.search.access import load_identity
    from pipelines.search.parse import parse_query

    result = embedded.search(archive, parse_query('"value date" channel:wechat'), load_identity())
"""
