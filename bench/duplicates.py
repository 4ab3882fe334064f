"""Duplicate detection: precision and recall on real reports, and its cost at scale.

    python -m bench.duplicates CORPUS_DIR                 # the labelled set, per threshold
    python -m bench.duplicates CORPUS_DIR --scale 10000   # also the cost over 10,000 open cases

``CORPUS_DIR`` is a folder of ``.eml`` files (searched recursively). Posts to the oss-security
list among them (real vulnerability reports) are the *originals*; they are not redistributable,
so they are read from wherever they are and nothing of them is written anywhere.

The labelled set:

- the index holds each original as an open case;
- *positives*: six variants of each original, each of which should find its original and
  nothing else: reworded (sentences shuffled within paragraphs, words swapped for synonyms),
  shuffled words (neighbouring words swapped), the subject translated (German) over the same
  text, the report quoted in a forward ("> " lines under a forward header, with a short note),
  trimmed (the first 60 % of its lines), and retold (all of these at once, trimmed to 70 %,
  with another greeting and signature: a second reporter's own account);
- *negatives*: every other message in the folder (none of them should find anything), and
  every original that a variant of another post finds.

Precision = right matches / all matches; recall = positives that found their original / all
positives. Both use the same code intake uses (``mailbot.duplicates``), one index per threshold.

``--scale N`` fills a SQLite database with N open report cases (synthetic reports built from a
vocabulary of products, components and flaws), stored as intake stores them (compressed and
sealed with AES-256-GCM), then measures the first-use build of the index from the database (what
a start costs) and the time the check adds to each new message: signature and query alone, and
the whole hook as intake calls it (with the status look-up of the cases it hits).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailbot.duplicates.finder import most_similar
from mailbot.duplicates.index import SignatureIndex
from mailbot.duplicates.signature import signature
from mailbot.mail.parse import parse_message

THRESHOLDS = (0.2, 0.25, 0.3, 0.5)
MAX_BYTES = 26_214_400
_OSS = re.compile(rb"^(?:list-(?:id|post)|subject)\s*:.*oss-security", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Report:
    name: str
    subject: str
    body: str


# -- the labelled set ---------------------------------------------------------------------------


def read_corpus(folder: Path) -> tuple[list[Report], list[Report]]:
    """(oss-security posts, every other message) of the ``.eml`` files under ``folder``."""
    posts: list[Report] = []
    others: list[Report] = []
    for path in sorted(folder.rglob("*.eml")):
        raw = path.read_bytes()
        msg = parse_message(raw, max_bytes=MAX_BYTES)
        report = Report(path.name, msg.subject, msg.text_body)
        (posts if _OSS.search(raw[:20_000]) else others).append(report)
    return posts, others


SYNONYMS = {
    "vulnerability": "weakness", "vulnerabilities": "weaknesses", "issue": "problem",
    "issues": "problems", "bug": "defect", "allows": "lets", "allow": "let",
    "attacker": "adversary", "attackers": "adversaries", "found": "discovered",
    "discovered": "found", "fix": "patch", "fixed": "patched", "version": "release",
    "versions": "releases", "affected": "impacted", "affects": "impacts", "execute": "run",
    "arbitrary": "any", "information": "details", "crash": "abort", "overflow": "overrun",
    "function": "routine", "reported": "disclosed", "remote": "network", "user": "account",
    "users": "accounts", "memory": "heap", "access": "reach", "request": "query",
    "requests": "queries", "server": "host", "application": "program", "upstream": "project",
    "because": "since", "however": "but", "use": "employ", "uses": "employs", "used": "employed",
    "send": "transmit", "sends": "transmits", "check": "validation", "missing": "absent",
    "possible": "feasible", "potential": "possible", "cause": "trigger", "causes": "triggers",
    "leads": "results", "via": "through", "contains": "holds", "data": "content",
    "malicious": "crafted", "crafted": "malicious", "release": "version", "patch": "fix",
    "code": "logic", "file": "document", "files": "documents", "read": "access",
}
SUBJECT_DE = {
    "vulnerability": "Sicherheitslücke", "vulnerabilities": "Sicherheitslücken",
    "request": "Anfrage", "buffer": "Puffer", "overflow": "Überlauf", "overflows": "Überläufe",
    "privilege": "Rechte", "escalation": "Ausweitung", "read": "Lesen", "out": "außerhalb",
    "of": "der", "bounds": "Grenzen", "in": "in", "user": "Benutzer", "registration": "Anmeldung",
    "is": "ist", "not": "nicht", "effective": "wirksam", "disabling": "Abschalten",
    "critical": "kritische", "null": "Null", "pointer": "Zeiger", "dereference": "Dereferenz",
    "when": "wenn", "using": "mit", "memory": "Speicher", "global": "globaler",
    "affecting": "betrifft", "issue": "Problem", "confidentiality": "Vertraulichkeit",
    "infinite": "endlose", "loop": "Schleife", "parsing": "Auswertung", "extension": "Erweiterung",
    "via": "über", "builtin": "eingebaute", "functions": "Funktionen", "and": "und",
    "disclosure": "Offenlegung", "information": "Informationen", "remote": "entfernte",
    "code": "Code", "execution": "Ausführung", "universal": "universelle", "in the": "im",
}
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z]+")


def reworded(report: Report, rng: random.Random) -> Report:
    """Sentences shuffled within each paragraph; words swapped for synonyms."""
    paragraphs = []
    for paragraph in report.body.split("\n\n"):
        sentences = _SENTENCE.split(" ".join(paragraph.split("\n")))
        rng.shuffle(sentences)
        paragraphs.append(" ".join(sentences))
    body = "\n\n".join(paragraphs)
    body = _WORD.sub(lambda m: _synonym(m.group(0), rng), body)
    return Report(report.name + "~reworded", _WORD.sub(lambda m: _synonym(m.group(0), rng),
                                                       report.subject), body)


def _synonym(word: str, rng: random.Random) -> str:
    other = SYNONYMS.get(word.lower())
    if other is None or rng.random() < 0.3:
        return word
    return other.capitalize() if word[0].isupper() else other


def shuffled_words(report: Report, rng: random.Random) -> Report:
    """Neighbouring words swapped (one pair in five), line by line."""
    lines = []
    for line in report.body.split("\n"):
        words = line.split(" ")
        for i in range(0, len(words) - 1, 2):
            if rng.random() < 0.2:
                words[i], words[i + 1] = words[i + 1], words[i]
        lines.append(" ".join(words))
    return Report(report.name + "~shuffled", report.subject, "\n".join(lines))


def translated_subject(report: Report, rng: random.Random) -> Report:
    words = [SUBJECT_DE.get(w.lower(), w) for w in report.subject.split()]
    return Report(report.name + "~translated", "WG: " + " ".join(words), report.body)


def forwarded(report: Report, rng: random.Random) -> Report:
    quoted = "".join(f"> {line}\n" if line else ">\n" for line in report.body.split("\n"))
    body = ("Hi, forwarding this in case you have not seen it yet.\n\n"
            "---------- Forwarded message ---------\n"
            "From: Someone <someone@example.org>\n"
            "Date: Mon, 1 Dec 2026 at 10:00\n"
            f"Subject: {report.subject}\n"
            "To: <security@example.test>\n\n" + quoted)
    return Report(report.name + "~forwarded", "Fwd: " + report.subject, body)


def trimmed(report: Report, rng: random.Random) -> Report:
    lines = report.body.split("\n")
    return Report(report.name + "~trimmed", report.subject,
                  "\n".join(lines[: max(1, int(len(lines) * 0.6))]))


def retold(report: Report, rng: random.Random) -> Report:
    """The hardest: all of the above at once, as a second reporter's own account might differ:
    reworded, words shuffled, trimmed to 70 %, with their own greeting and signature."""
    changed = shuffled_words(reworded(report, rng), rng)
    lines = changed.body.split("\n")
    body = "\n".join(["Hello security team,", "", *lines[: max(1, int(len(lines) * 0.7))],
                      "", "-- ", "Another Reporter"])
    return Report(report.name + "~retold", changed.subject, body)


VARIANTS = (reworded, shuffled_words, translated_subject, forwarded, trimmed, retold)


@dataclass
class Score:
    threshold: float
    right: int = 0  # a positive found its original
    wrong: int = 0  # anything else that was found
    positives: int = 0
    negatives: int = 0
    negatives_matched: int = 0

    @property
    def precision(self) -> float:
        found = self.right + self.wrong
        return self.right / found if found else 1.0

    @property
    def recall(self) -> float:
        return self.right / self.positives if self.positives else 0.0


def labelled_set(posts: Sequence[Report], others: Sequence[Report], seed: int = 1
                 ) -> tuple[list[Report], list[tuple[Report, str | None]]]:
    """(the originals to index, the queries each with the original it should find or None)."""
    rng = random.Random(seed)
    queries: list[tuple[Report, str | None]] = [
        (variant(post, rng), post.name) for post in posts for variant in VARIANTS]
    queries += [(other, None) for other in others]
    return list(posts), queries


def evaluate(originals: Sequence[Report], queries: Sequence[tuple[Report, str | None]],
             threshold: float) -> Score:
    index = SignatureIndex(threshold)
    for report in originals:
        held = signature(report.subject, report.body)
        if held is not None:
            index.add(report.name, held)
    score = Score(threshold)
    for query, expected in queries:
        if expected is None:
            score.negatives += 1
        else:
            score.positives += 1
        mine = signature(query.subject, query.body)
        found = [c for c, _ in most_similar(index, mine, threshold)] if mine is not None else []
        score.right += sum(1 for c in found if c == expected)
        score.wrong += sum(1 for c in found if c != expected)
        if expected is None and found:
            score.negatives_matched += 1
    return score


def print_scores(posts: Sequence[Report], others: Sequence[Report]) -> list[Score]:
    originals, queries = labelled_set(posts, others)
    scores = [evaluate(originals, queries, t) for t in THRESHOLDS]
    positives = scores[0].positives
    print(f"labelled set: {len(originals)} oss-security posts indexed; {positives} variants "
          f"({len(VARIANTS)} of each) that should find their post; {scores[0].negatives} "
          "other messages that should find nothing")
    print(f"{'threshold':>9}  {'precision':>9}  {'recall':>6}  {'right':>5}  {'wrong':>5}  "
          f"negatives matched")
    for s in scores:
        print(f"{s.threshold:>9.2f}  {s.precision:>9.2f}  {s.recall:>6.2f}  {s.right:>5}  "
              f"{s.wrong:>5}  {s.negatives_matched}/{s.negatives}")
    weakest, closest = _margins(originals, queries)
    print("weakest positive per variant: " + ", ".join(
        f"{kind} {value:.2f}" for kind, value in weakest.items()))
    print(f"closest negative (a message and a post that are not the same report): {closest:.2f}")
    return scores


def _margins(originals: Sequence[Report], queries: Sequence[tuple[Report, str | None]]
             ) -> tuple[dict[str, float], float]:
    """The lowest similarity of each kind of variant to its own post, and the highest of any
    query to a post it is not a variant of."""
    held = {r.name: signature(r.subject, r.body) for r in originals}
    weakest: dict[str, float] = {}
    closest = 0.0
    for query, expected in queries:
        mine = signature(query.subject, query.body)
        for name, theirs in held.items():
            similarity = mine.jaccard(theirs) if mine is not None and theirs is not None else 0.0
            if name == expected:
                kind = query.name.rsplit("~", 1)[1]
                weakest[kind] = min(weakest.get(kind, 1.0), similarity)
            else:
                closest = max(closest, similarity)
    return weakest, closest


# -- the scale benchmark ------------------------------------------------------------------------

PRODUCTS = ["Acme Portal", "OpenGate", "NimbusDB", "Fernweh CMS", "Quillmail", "Tessera",
            "Lumen Router", "Harbor Sync", "PixelForge", "Kestrel API", "Marlin VPN", "Orchid",
            "Sable Auth", "Juniper Wiki", "Cobalt Shop", "Atlas Monitor", "Brightline", "Zephyr",
            "Granite Backup", "Helix Chat"]
COMPONENTS = ["login form", "password reset", "file upload", "image resizer", "XML importer",
              "session handling", "admin panel", "REST API", "search endpoint", "PDF export",
              "template engine", "OAuth callback", "webhook handler", "CSV parser",
              "backup download", "comment preview", "invite flow", "SAML consumer",
              "config loader", "plugin installer"]
FLAWS = [
    ("stored cross-site scripting", "renders user input without escaping it"),
    ("SQL injection", "builds a query by concatenating the request parameter"),
    ("path traversal", "joins the file name to the base directory without normalising it"),
    ("server-side request forgery", "fetches any URL the client supplies"),
    ("open redirect", "redirects to the next parameter without checking its host"),
    ("authentication bypass", "accepts a token whose signature it never verifies"),
    ("XML external entity injection", "parses uploaded XML with external entities enabled"),
    ("remote code execution", "deserialises the cookie with an unsafe loader"),
    ("insecure direct object reference", "returns any record whose id is in the URL"),
    ("denial of service", "loops forever on a malformed length field"),
    ("heap buffer overflow", "copies the header into a fixed buffer without a length check"),
    ("information disclosure", "includes the stack trace and environment in error pages"),
    ("CSRF", "changes the e-mail address on a GET request without a token"),
    ("privilege escalation", "lets a member change their own role through the profile API"),
]
IMPACTS = ["An attacker can take over any account.", "Any logged-in user can read other "
           "users' data.", "An unauthenticated attacker can run commands on the server.",
           "This exposes the session cookie of administrators.", "The service stops "
           "answering until it is restarted.", "Internal hosts can be reached from outside."]
OPENINGS = ["Hello,", "Hi team,", "Dear security team,", "Good morning,", "Hi,"]
CLOSINGS = ["Best regards,", "Thanks,", "Kind regards,", "Cheers,", "Regards,"]
NAMES = ["Ana", "Bao", "Chidi", "Dana", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas"]


def sentence_pool(reports: Sequence[Report]) -> list[str]:
    """Sentences of real mail (6 to 40 words), the filling of the synthetic reports."""
    pool = []
    for report in reports:
        for sentence in _SENTENCE.split(" ".join(report.body.split())):
            if 6 <= len(sentence.split()) <= 40:
                pool.append(sentence)
    return pool


def synthetic_report(n: int, rng: random.Random, pool: Sequence[str]) -> Report:
    """A report of one flaw in one product: a templated account (product, component, flaw,
    cause, impact, versions) filled out with five to twelve sentences of real mail."""
    product, component = f"{rng.choice(PRODUCTS)} {_name(rng)}", rng.choice(COMPONENTS)
    flaw, cause = rng.choice(FLAWS)
    version = f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
    param = rng.choice(["id", "next", "file", "url", "name", "q", "token", "path", "redirect"])
    subject = f"{flaw.capitalize()} in the {component} of {product} {version}"
    filling = rng.sample(pool, k=min(len(pool), rng.randint(5, 12)))
    account = rng.choice([
        f"I found a {flaw} vulnerability in the {component} of {product} {version}. The handler "
        f"{cause}, so a crafted {param} parameter reaches the vulnerable code.",
        f"While testing {product} I noticed that its {component} {cause}. Sending a request with "
        f"a modified {param} value gives {flaw}.",
        f"{product} {version}: {flaw} via the {param} parameter of the {component}.",
        f"Our scanner flagged {product}'s {component} and manual review confirmed it: the code "
        f"{cause}.",
    ])
    body = "\n\n".join([
        rng.choice(OPENINGS),
        f"{account} {rng.choice(IMPACTS)}",
        " ".join(filling[: len(filling) // 2]),
        " ".join(filling[len(filling) // 2:]),
        f"{rng.choice(CLOSINGS)}\n{rng.choice(NAMES)}",
    ])
    return Report(f"synthetic-{n}", subject, body)


def _name(rng: random.Random) -> str:
    """A made-up product or module name, so that reports of the same flaw differ as real ones
    do, in what they are about."""
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def synthetic_raw(report: Report, n: int, at: datetime) -> bytes:
    from email.message import EmailMessage
    from email.policy import SMTP
    from email.utils import format_datetime

    msg = EmailMessage()
    msg["From"] = f"Reporter {n} <reporter{n}@example.org>"
    msg["To"] = "security@example.test"
    msg["Subject"] = report.subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = f"<synthetic-{n}@example.org>"
    msg.set_content(report.body)
    return msg.as_bytes(policy=SMTP)


def run_scale(cases: int, probes: Sequence[Report], pool: Sequence[str], workdir: Path,
              seed: int = 1) -> dict[str, Any]:
    """Fill a database with ``cases`` open report cases; time the build and the check."""
    from bench.settings import Imap, bench_settings
    from mailbot.app import App
    from mailbot.duplicates.wiring import IndexedReports
    from mailbot.store import migrate

    settings = bench_settings(Imap(0, "bench@example.test", ""), 0,
                              f"sqlite:///{workdir / 'duplicates.db'}")
    app = App(settings)
    try:
        migrate(app.db)
        app.prepare_storage()
        rng = random.Random(seed)
        started = time.perf_counter()
        _fill(app, cases, rng, pool)
        fill = time.perf_counter() - started
        import datasketch  # noqa: F401  (imported once per process; timed apart from the build)

        finder = IndexedReports(app.db, threshold=0.25, max_bytes=MAX_BYTES)
        with app.db.session() as session:
            started, cpu = time.perf_counter(), time.process_time()
            held = finder.build(session)
            build, build_cpu = time.perf_counter() - started, time.process_time() - cpu
        pure = _time_pure(cases, probes, random.Random(seed), pool)
        hook: list[float] = []
        hook_cpu: list[float] = []
        flagged = {"synthetic": 0, "corpus": 0}
        with app.db.session() as session:
            for n, probe in enumerate(probes):
                started, cpu = time.perf_counter(), time.process_time()
                found = finder.similar(session, f"SEC-2099-{n:05d}", probe.subject, probe.body)
                hook.append(time.perf_counter() - started)
                hook_cpu.append(time.process_time() - cpu)
                if found:
                    flagged["synthetic" if probe.name.startswith("synthetic") else "corpus"] += 1
            session.rollback()
        return {"cases": cases, "indexed": held, "fill_seconds": fill, "build_seconds": build,
                "build_cpu_seconds": build_cpu, "pure_ms": _ms(pure[0]),
                "pure_cpu_ms": _ms(pure[1]), "hook_ms": _ms(hook), "hook_cpu_ms": _ms(hook_cpu),
                "probes": len(probes), "probes_flagged": flagged}
    finally:
        app.close()


def _fill(app: Any, count: int, rng: random.Random, pool: Sequence[str]) -> None:
    from mailbot.cases.models import Case, Message

    now = datetime.now(UTC)
    with app.db.session() as session:
        for n in range(count):
            report = synthetic_report(n, rng, pool)
            at = now - timedelta(minutes=count - n)
            case_id = f"SEC-2026-{n + 1:05d}"
            session.add(Case(id=case_id, status="new", reporter=f"reporter{n}@example.org",
                             reporter_name="", subject=report.subject, flags=[],
                             mentioned_tag="", received_at=at, created_at=at, updated_at=at,
                             ack_due=at + timedelta(days=3), cve=[]))
            raw_id = app.db.raw_store.put(session, synthetic_raw(report, n, at))
            session.add(Message(case_id=case_id, direction="in", kind="report",
                                dedupe_key=f"synthetic-{n}", message_id=f"<synthetic-{n}@x>",
                                from_addr=f"reporter{n}@example.org",
                                to_addrs=["security@example.test"], subject=report.subject,
                                date=at, received_at=at, folder="INBOX", uid=n + 1, flags=[],
                                details={}, raw_id=raw_id))
            if n % 1000 == 999:
                session.flush()


def _time_pure(cases: int, probes: Sequence[Report], rng: random.Random, pool: Sequence[str]
               ) -> tuple[list[float], list[float]]:
    """Signature and query alone, over an index of ``cases`` synthetic reports in memory."""
    index = SignatureIndex(0.25)
    for n in range(cases):
        report = synthetic_report(n, rng, pool)
        held = signature(report.subject, report.body)
        if held is not None:
            index.add(f"S{n}", held)
    wall, cpu = [], []
    for probe in probes:
        started, used = time.perf_counter(), time.process_time()
        mine = signature(probe.subject, probe.body)
        if mine is not None:
            most_similar(index, mine, 0.25)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    return wall, cpu


def _ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"mean": 1000 * statistics.fmean(ordered),
            "median": 1000 * statistics.median(ordered),
            "p95": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
            "max": 1000 * ordered[-1]}


def probes_for(posts: Sequence[Report], others: Sequence[Report], rng: random.Random,
               pool: Sequence[str], count: int = 200) -> list[Report]:
    """New messages to check: variants of the posts, other corpus mail, and fresh synthetic
    reports (which the synthetic cases make the hardest, most-candidates case)."""
    probes = [variant(p, rng) for p in posts for variant in VARIANTS] + list(others)
    rng.shuffle(probes)
    probes = probes[: count // 2]
    probes += [synthetic_report(10**6 + n, rng, pool) for n in range(count - len(probes))]
    return probes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.duplicates", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="a folder of .eml files with oss-security posts")
    parser.add_argument("--scale", type=int, default=0, metavar="N",
                        help="also time the check over N open cases (10000 for the figures)")
    args = parser.parse_args(argv)
    posts, others = read_corpus(args.corpus)
    if not posts:
        parser.error(f"no oss-security posts under {args.corpus}")
    print_scores(posts, others)
    if args.scale:
        with tempfile.TemporaryDirectory(prefix="bench-duplicates-") as workdir:
            pool = sentence_pool(others)  # not the posts: their variants are probes
            result = run_scale(args.scale, probes_for(posts, others, random.Random(2), pool),
                               pool, Path(workdir))
        print(f"\nover {result['cases']} open cases ({result['indexed']} indexed; filling the "
              f"database took {result['fill_seconds']:.1f} s):")
        print(f"  building the index from the database (first use after a start): "
              f"{result['build_seconds']:.2f} s ({result['build_cpu_seconds']:.2f} s of CPU)")
        for key, label in (("pure_ms", "signature + query (wall)"),
                           ("pure_cpu_ms", "signature + query (CPU)"),
                           ("hook_ms", "the whole check as intake calls it (wall)"),
                           ("hook_cpu_ms", "the whole check as intake calls it (CPU)")):
            t = result[key]
            print(f"  {label}, per message ({result['probes']} messages): mean {t['mean']:.2f} "
                  f"ms, median {t['median']:.2f} ms, p95 {t['p95']:.2f} ms, max {t['max']:.2f} ms")
        flagged = result["probes_flagged"]
        print(f"  flagged among them: {flagged['corpus']} of the corpus messages and variants, "
              f"{flagged['synthetic']} of the new synthetic reports")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
