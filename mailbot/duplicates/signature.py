"""A report's text -> the words that say what it reports -> a MinHash of its word shingles.

Pure. What two reports of the same problem share is their account of it; what they do not share
(greetings, signatures, the quoting and header blocks of a forward, links, timestamps, list
tags) would only lower their likeness, and what every report shares (function words) would
raise the likeness of unrelated ones. Normalising removes both:

- a PGP armour block (a clear-signed report's signature) and everything after a ``-- ``
  signature line;
- the header block and attribution line of a forward or reply ("From: ... Sent: ...",
  "-----Original Message-----", "On ... wrote:");
- quoted lines (``> ``) when the sender wrote enough of their own; when they wrote little (a
  forward with "FYI"), the quoted text *is* the report, and is kept without its markers;
- URLs, e-mail addresses, long numbers and hex strings, reply/forward prefixes and list tags
  in the subject, and common English function words.

CVE ids are kept whole: two reports naming the same CVE say the same about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from datasketch import MinHash

NUM_PERM = 128
SHINGLE_WORDS = 2  # word pairs: robust to reordered sentences, yet more telling than words
MIN_WORDS = 20  # fewer words than this (after normalising) say too little to match on
MAX_CHARS = 16 * 1024  # of a report's text looked at: what it reports comes first
MIN_OWN_WORDS = 40  # a sender who wrote fewer words than this forwards what they quote
SEED = 1

_ARMOUR = re.compile(r"^-----BEGIN PGP (?:SIGNATURE|PUBLIC KEY BLOCK)-----$.*?"
                     r"^-----END PGP (?:SIGNATURE|PUBLIC KEY BLOCK)-----$",
                     re.MULTILINE | re.DOTALL)
_ARMOUR_HEAD = re.compile(r"^-----BEGIN PGP SIGNED MESSAGE-----\n(?:Hash:.*\n)*", re.MULTILINE)
_SEPARATOR = re.compile(
    r"^(?:-{2,}\s*(?:original|forwarded)\s+message\s*-{2,}|begin\s+forwarded\s+message\s*:"
    r"|_{10,}|-{5,}\s*(?:weitergeleitete\s+nachricht|message\s+transf[ée]r[ée]|"
    r"mensaje\s+reenviado)\s*-{5,})\s*$",
    re.IGNORECASE)
_SEPARATOR_STARTS = frozenset("-_bB")
_ATTRIBUTION = re.compile(
    r"^(?:on|am|le|el|il|op)\s.{0,400}(?:wrote|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef)"
    r"(?:\s.{0,200})?\s*:$", re.IGNORECASE)
_HEADER = re.compile(r"^(?:from|sent|date|to|cc|subject|reply-to|von|gesendet|an|betreff|de|"
                     r"envoyé|à|objet|objeto|para|enviado|asunto)\s*:\s", re.IGNORECASE)
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|tr|rv|sv|vs|antw)\s*(?:\[\d+\])?\s*:\s*|\[[^\]]{0,60}\]\s*)+",
    re.IGNORECASE)
_TOKEN = re.compile(r"cve-\d{4}-\d{4,19}|[^\W\d_]{2,}|(?<!\w)\d{1,4}(?!\w)", re.IGNORECASE)

_FUNCTION_WORDS = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers him his how i if in into is it its itself just me
more most my no nor not now of off on once only or other our ours out over own same she should
so some such than that the their theirs them then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you
your yours hi hello dear regards thanks thank best cheers please
"""
STOPWORDS = frozenset(_FUNCTION_WORDS.split())


def subject_words(subject: str) -> str:
    """The subject without reply/forward prefixes and list tags."""
    return _SUBJECT_PREFIX.sub("", subject)


def report_lines(body: str) -> list[str]:
    """The lines of ``body`` that report something (see the module's docstring)."""
    body = body[:MAX_CHARS].replace("\r\n", "\n")
    if "-----BEGIN PGP" in body:
        body = _ARMOUR.sub("", _ARMOUR_HEAD.sub("", body))
    own: list[str] = []
    quoted: list[str] = []
    header_block = False
    quoted_signature = False
    for line in body.split("\n"):
        is_quoted = bool(_QUOTE.match(line))
        text = _QUOTE.sub("", line).strip() if is_quoted else line.strip()
        if text == "--" and line.rstrip().endswith("--"):  # "-- ", the signature line
            if not is_quoted:
                break
            quoted_signature = True  # a forwarded report's signature: its quote ends here
            continue
        if is_quoted and quoted_signature:
            continue
        # The cheap look first: most lines are none of these.
        if (text[:1] in _SEPARATOR_STARTS and _SEPARATOR.match(text)) \
                or (text.endswith(":") and _ATTRIBUTION.match(text)):
            header_block = True
            continue
        if ":" in text[:12] and _HEADER.match(text) \
                and (header_block or text.lower().startswith("from:")):
            header_block = True  # an Outlook block may come without a separator line
            continue
        header_block = False
        if text:
            (quoted if is_quoted else own).append(text)
    if sum(len(line.split()) for line in own) >= MIN_OWN_WORDS:
        return own
    return own + quoted


def words(text: str) -> list[str]:
    """Lower-case tokens of ``text``, without links, addresses, long numbers and function words."""
    if "://" in text or "www." in text:
        text = _URL.sub(" ", text)
    if "@" in text:
        text = _EMAIL.sub(" ", text)
    return [w for w in (t.lower() for t in _TOKEN.findall(text)) if w not in STOPWORDS]


def normalise(subject: str, body: str) -> list[str]:
    """The words of a report, subject first, as the signature sees them."""
    return words(subject_words(subject)) + words("\n".join(report_lines(body)))


def shingles(tokens: list[str], size: int = SHINGLE_WORDS) -> set[bytes]:
    if len(tokens) < size:
        return {" ".join(tokens).encode()} if tokens else set()
    return {" ".join(tokens[i:i + size]).encode() for i in range(len(tokens) - size + 1)}


_EMPTY = MinHash(num_perm=NUM_PERM, seed=SEED)  # copied: making the permutations costs 1 ms


def minhash(items: Iterable[bytes]) -> MinHash:
    m = _EMPTY.copy()
    batch = list(items)
    if batch:
        m.update_batch(batch)
    return m


def signature(subject: str, body: str) -> MinHash | None:
    """The report's MinHash; None when it has too few words to be matched on."""
    tokens = normalise(subject, body)
    if len(tokens) < MIN_WORDS:
        return None
    return minhash(shingles(tokens))


def split_text(text: str) -> tuple[str, str]:
    """``subject\\nbody`` (the form the intake hook hands over) -> (subject, body)."""
    subject, _, body = text.partition("\n")
    return subject, body
