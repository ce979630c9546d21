"""Nothing in DLP reaches the network: loading policies, the spaCy model, Presidio, tldextract.

Runs in a fresh interpreter with every socket connection refused, so nothing cached by earlier
tests can hide a download.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

RULES = Path(__file__).parent.parent / "dlp_rules"

SCRIPT = textwrap.dedent(
    """
    import socket, sys

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network use is not allowed in this test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from pipelines.dlp import Engine, Scope, load_policy_set

    texts = [
        "mail maria@example.co.uk or bob@corp.example.com",  # tldextract's suffix list
        "Please send it to Maria Gonzalez in Madrid",  # the spaCy model
        "card 4012 8888 8888 1881, IBAN DE89370400440532013000, call +44 20 7946 0958",
    ]
    for policy in sys.argv[1:]:
        engine = Engine(load_policy_set(policy))
        verdicts = engine.inspect_many([(t, Scope()) for t in texts])
        assert verdicts[0].findings, "e-mail validation must work from the bundled suffix list"
    print("attempts", len(attempts))
    """
)


def test_no_network_while_loading_and_analysing() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(RULES / "presidio_patterns.yaml"),
            str(RULES / "presidio_default.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "attempts 0" in result.stdout
