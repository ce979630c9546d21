"""Data loss prevention: policies as code, the engine that applies them, and views of the result.

Typical use::

    from pipelines.dlp import Engine, Scope, load_policy_set

    engine = Engine(load_policy_set("dlp_rules"))
    verdict = engine.inspect("card 4012 8888 8888 1881", Scope(channel="sms", direction="outbound"))
    verdict.action, verdict.redacted_text, verdict.findings

The names below are the public surface; everything else in the package is internal.
"""

from pipelines.dlp.engine import Engine, Scope, Verdict
from pipelines.dlp.policy import Policy, PolicySet, load_policy, load_policy_set
from pipelines.dlp.redact import view_text

__all__ = [
    "Engine",
    "Policy",
    "PolicySet",
    "Scope",
    "Verdict",
    "load_policy",
    "load_policy_set",
    "view_text",
]
