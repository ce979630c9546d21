"""DLP worst cases: how long the largest body the pipeline accepts takes when it is built to be slow.

Run:  .venv/bin/python tests/benchmarks/bench_dlp_worst.py [--policy dlp_rules/active.yaml]

Each text below repeats a short piece up to ``MAX_BODY_CHARS`` (64 KiB): a wall of digits, digits
with look-alike letters, Chinese numerals between ASCII digits, a chain that switches between
numerals and letters, card-shaped groups. For a quarter of that length and for the whole, it prints
the seconds ``normalize`` and ``Engine.inspect`` take, the ratio between the two lengths (4 means
linear: four times the text, four times the time; 16 would be quadratic), and the ratio against the
baseline: ordinary chat prose of the same length, inspected in the same process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import timed  # noqa: E402

from pipelines.dlp.engine import Engine  # noqa: E402
from pipelines.dlp.normalize import normalize  # noqa: E402
from pipelines.dlp.policy import load_policy_set  # noqa: E402
from pipelines.record import MAX_BODY_CHARS  # noqa: E402

BASELINE = "Thanks, I will call the client after lunch about the quarterly statement. "
#: name: (what the text starts with, the piece repeated after it[, what it ends with])
PIECES: dict[str, tuple[str, ...]] = {
    "digits": ("", "4012888888881881" * 3 + "13800138000"),
    "digits, one O": ("", "1O"),
    "numeral, digit": ("", "一1"),
    "phone, numeral": ("", "13800138000一"),
    "chain 一二三O": ("", "一二三O"),
    "1111, chain O一": ("1111", "O一"),  # each reading round takes two more characters
    "chain 一二三1O": ("", "一二三1O"),
    "groups 4O12|": ("", "4O12|"),
    "groups 4012 8888 ": ("", "4012 8888 "),
    # a word with an O read as 0 is also read with the O (an Italian IBAN's bank code): two copies
    "groups 4O12 8888 ": ("", "4O12 8888 "),
    # and a Cyrillic O in the next group: that word mixes scripts, so a third copy reads it as Latin
    "groups 4O12 8\u041e88 ": ("", "4O12 8\u041e88 "),
    # every word mixing Cyrillic and Latin letters: a second copy read as Latin
    "words p\u0430ss1 ": ("", "p\u0430ss1 "),
    "numeral, space": ("", "一1 "),
    "digit, space": ("", "7 "),
    "DE12 ": ("", "DE12 "),
    # one long local part: Presidio's unbounded one scanned from every word start to the @ (30 s)
    "e-mail a-a-…@x": ("", "a-", "@x"),
    "e-mail a.a.…@x.com": ("", "a.", "@x.com"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "dlp_rules" / "active.yaml"))
    args = parser.parse_args()
    engine = Engine(load_policy_set(args.policy))
    engine.inspect("warm up: card 4012 8888 8888 1881")
    sizes = (MAX_BODY_CHARS // 4, MAX_BODY_CHARS)

    def text(head: str, piece: str, size: int, tail: str = "") -> str:
        return (head + piece * (size // len(piece) + 1))[: size - len(tail)] + tail

    prose = [text("", BASELINE, s) for s in sizes]
    base = [timed(lambda t=t: engine.inspect(t)) for t in prose]
    print(f"policy {args.policy}; sizes {sizes[0]:,} and {sizes[1]:,} characters")
    print(f"baseline (chat prose): inspect {base[0]:.3f} s / {base[1]:.3f} s")
    print(f"{'text':22} {'normalize':>17} {'inspect':>17} {'x4 length':>10} {'vs prose':>9}")
    worst = 0.0
    for name, (head, piece, *tail) in PIECES.items():
        texts = [text(head, piece, s, *tail) for s in sizes]
        norm = [timed(lambda t=t: normalize(t)) for t in texts]
        insp = [timed(lambda t=t: engine.inspect(t)) for t in texts]
        worst = max(worst, insp[1])
        print(
            f"{name:22} {norm[0]:7.3f} {norm[1]:7.3f} s  {insp[0]:7.3f} {insp[1]:7.3f} s"
            f" {insp[1] / max(insp[0], 1e-9):9.1f}x {insp[1] / max(base[1], 1e-9):8.0f}x",
            flush=True,
        )
    print(f"slowest {MAX_BODY_CHARS:,}-character body: {worst:.2f} s")


if __name__ == "__main__":
    main()
