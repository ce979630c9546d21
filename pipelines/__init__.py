"""Vigil: compliance archive, DLP and search for business messaging.

Modules, each small and named for what it does:

* ``record``       the archived record, defined once (Arrow schema and ES mapping derive from it)
* ``simulate``     deterministic multi-channel traffic following the channels' business rules
* ``automessages`` wording of channel and DLP notices (jinja2 templates, firm-overridable)
* ``ingest``       read → validate → DLP → de-duplicate → write: pure functions in a thin Beam shell
* ``dlp``          policies as code and the engine that applies them (Presidio underneath)
* ``archive``      the tamper-evident Parquet archive: ledger, writer, reader, verify, compact
* ``search``       one query model, two engines (DuckDB over the archive, Elasticsearch), roles, audit
* ``cli``          the ``vigil`` command
"""
