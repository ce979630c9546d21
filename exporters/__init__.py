"""Where archived records go besides the Parquet archive.

Today: ``exporters.elasticsearch`` (the scalable search index). Planned here, on the same record
model and views: RFC 5322 transcripts per conversation-day for SMTP journaling, and CRM activity
logs (Salesforce, Dynamics, webhooks) with an exactly-once ledger (see the README's "What comes
next").
"""
