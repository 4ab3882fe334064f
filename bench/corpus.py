"""The benchmark's mail: real messages from a corpus folder, repeated, each copy made unique.

A copy differs from its original only in its Message-ID (a fresh one replaces any it had), so
every copy is a different message to mailbot's dedupe and a new report to its correlation.
"""

from __future__ import annotations

import base64
import itertools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / "tests" / "data" / "corpus"
MANIFEST = "MANIFEST.tsv"
NOT_MAIL = {".md", ".tsv"}
NOT_MAIL_NAMES = ("license", "copying", "readme")

_MESSAGE_ID_FIELD = re.compile(rb"^message-id[ \t]*:", re.IGNORECASE)


@dataclass(frozen=True)
class Corpus:
    folder: Path
    files: tuple[Path, ...]

    @classmethod
    def load(cls, folder: Path) -> Corpus:
        folder = folder.resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"no corpus folder at {folder} (use --corpus PATH)")
        manifest = folder / MANIFEST
        if manifest.is_file():
            rows = manifest.read_text(encoding="utf-8").splitlines()[1:]
            files = [folder / row.split("\t", 1)[0] for row in rows if row.strip()]
        else:
            files = sorted(p for p in folder.rglob("*") if p.is_file() and _looks_like_mail(p))
        files = [p for p in files if p.is_file()]
        if not files:
            raise FileNotFoundError(f"no messages in {folder}")
        return cls(folder, tuple(files))

    def messages(self, count: int, tag: str) -> Iterator[bytes]:
        """``count`` messages: the corpus over and over, each copy with a fresh Message-ID."""
        raws = [p.read_bytes() for p in self.files]
        for n, raw in zip(range(count), itertools.cycle(raws), strict=False):
            yield with_message_id(raw, f"<bench-{tag}-{n}@bench.mailbot.test>")

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def _looks_like_mail(path: Path) -> bool:
    name = path.name.lower()
    return path.suffix.lower() not in NOT_MAIL and not name.startswith(NOT_MAIL_NAMES)


def with_message_id(raw: bytes, message_id: str) -> bytes:
    """``raw`` with every Message-ID field of its header block replaced by one new field.

    The new field goes first (after an mbox ``From `` line, if any), in the message's own line
    ending, so the rest of the bytes stay as they were.
    """
    newline = _newline(raw)
    start = 0
    if raw.startswith(b"From "):
        first = raw.find(newline)
        start = first + len(newline) if first != -1 else len(raw)
    end = raw.find(newline + newline, start)
    end = len(raw) if end == -1 else end + len(newline)
    kept: list[bytes] = []
    skipping = False
    for line in raw[start:end].split(newline):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = bool(_MESSAGE_ID_FIELD.match(line))
        if not skipping:
            kept.append(line)
    field = b"Message-ID: " + message_id.encode() + newline
    return raw[:start] + field + newline.join(kept) + raw[end:]


def _newline(raw: bytes) -> bytes:
    lf = raw.find(b"\n")
    if lf == -1:
        return b"\r" if b"\r" in raw else b"\n"
    return b"\r\n" if lf > 0 and raw[lf - 1 : lf] == b"\r" else b"\n"


def report(n: int, tag: str, *, sender: str | None = None) -> bytes:
    """A small plain report from its own sender (so the per-sender receipt limit never bites)."""
    sender = sender or f"Reporter {n} <reporter-{tag}-{n}@reporter.example>"
    return (
        f"From: {sender}\r\n"
        "To: security@example.test\r\n"
        f"Subject: Benchmark report {n}: XSS in the search box\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: <bench-{tag}-{n}@reporter.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "The search box reflects the q parameter without escaping it.\r\n"
    ).encode()


def large_report(size: int, tag: str = "large") -> bytes:
    """A report of about ``size`` bytes: a short text part and one base64 attachment."""
    head = (
        "From: Rita Reporter <rita@reporter.example>\r\n"
        "To: security@example.test\r\n"
        "Subject: Crash dump attached\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: <bench-{tag}@reporter.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="bench-boundary"\r\n'
        "\r\n"
        "--bench-boundary\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "The service crashes on the attached input; the core dump is attached.\r\n"
        "--bench-boundary\r\n"
        "Content-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="core.dump"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
    ).encode()
    tail = b"--bench-boundary--\r\n"
    # base64 lines of 76 characters plus CRLF carry 57 bytes each.
    lines = max(1, (size - len(head) - len(tail)) // 78)
    # Random bytes, as in a compressed archive or a pcap: zlib cannot shrink them much.
    payload = random.Random(size).randbytes(lines * 57)
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return head + encoded + tail
