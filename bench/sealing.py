"""The cost of sealing per message: ``python -m bench.sealing [N]`` (the cryptography alone) and
``python -m bench.sealing --intake [N]`` (intake into fresh SQLite databases, no IMAP, encryption
on and off alternating, three runs each).

The whole cycle's figure is the backlog's (encryption on and off, ``python -m bench``); this one
isolates the cryptography.

For each of N generated reports, what intake seals: the raw bytes (compressed first, in either
mode), the case and message subjects, the message details, the receipt in the outbox and its
subject, and the keyed dedupe hash. Printed per message, AES-256-GCM against ``encryption = "off"``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import zlib
from pathlib import Path

from bench.corpus import report
from mailbot.crypto.aead import AesGcmSealer
from mailbot.crypto.keys import new_key_text, parse_key
from mailbot.mail.parse import dedupe_key, parse_message
from mailbot.sealing import ClearSealer, Sealer


def per_message(sealer: Sealer, messages: list[bytes]) -> float:
    """Seconds per message for everything intake seals (parsing and compressing, which happen
    in either mode, are done beforehand and not counted)."""
    receipt = b"x" * 1800  # a receipt as composed: about this size
    prepared = []
    for raw in messages:
        msg = parse_message(raw)
        details = json.dumps({"attachments": [a.filename for a in msg.attachments]}).encode()
        prepared.append((zlib.compress(raw, 6), msg.subject.encode(), details, dedupe_key(raw)))
    started = time.perf_counter()
    for n, (packed, subject, details, digest) in enumerate(prepared):
        sealer.seal(packed, f"raw_messages.data:{n}")
        sealer.seal(subject, f"cases.subject:SEC-2026-{n:04d}")
        sealer.seal(subject, f"messages.subject:{2 * n}")
        sealer.seal(details, f"messages.details:{2 * n}")
        sealer.seal(receipt, f"outbox.data:{n}")
        sealer.seal(subject, f"messages.subject:{2 * n + 1}")
        sealer.index_keys(digest)
    return (time.perf_counter() - started) / len(messages)


def intake_seconds(encryption: str, messages: list[bytes], workdir: Path) -> float:
    """CPU seconds to ingest ``messages`` into a fresh database."""
    from datetime import UTC, datetime

    from mailbot.app import App
    from mailbot.config import DatabaseSettings, MailboxSettings, Settings, SmtpSettings
    from mailbot.config_storage import StorageSettings
    from mailbot.ingest import ingest
    from mailbot.mail.message import FetchedMessage
    from mailbot.store import migrate

    directory = Path(tempfile.mkdtemp(dir=workdir))
    settings = Settings(
        mailbox=MailboxSettings(host="127.0.0.1", username="security@example.test"),
        smtp=SmtpSettings(host="127.0.0.1", from_address="security@example.test"),
        database=DatabaseSettings(url=f"sqlite:///{directory / 'bench.db'}"),
        storage=StorageSettings(encryption=encryption))
    app = App(settings)
    migrate(app.db)
    app.prepare_storage()
    now = datetime.now(UTC)
    fetched = [FetchedMessage(raw=m, folder="INBOX", uidvalidity=1, uid=n + 1, internal_date=now)
               for n, m in enumerate(messages)]
    started = time.process_time()
    ingest(app.db, app.intake, fetched, lambda: None)
    spent = time.process_time() - started
    app.close()
    return spent


def compare_intake(count: int) -> None:
    messages = [report(n, "intake") for n in range(count)]
    runs: dict[str, list[float]] = {"aes-256-gcm": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="bench-sealing-") as tmp:
        for n in range(3):
            for mode in ("aes-256-gcm", "off") if n % 2 == 0 else ("off", "aes-256-gcm"):
                runs[mode].append(intake_seconds(mode, messages, Path(tmp)))
    on, off = sorted(runs["aes-256-gcm"]), sorted(runs["off"])
    print(f"intake of {count} messages, CPU seconds (3 runs each, alternating):")
    print(f"  AES-256-GCM:    {', '.join(f'{v:.2f}' for v in on)}")
    print(f"  encryption off: {', '.join(f'{v:.2f}' for v in off)}")
    print(f"  median {on[1] / off[1] - 1:+.1%}, best {on[0] / off[0] - 1:+.1%}")


def main() -> None:
    if "--intake" in sys.argv:
        args = [a for a in sys.argv[1:] if a != "--intake"]
        compare_intake(int(args[0]) if args else 1500)
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    messages = [report(n, "sealing") for n in range(count)]
    per_message(ClearSealer(), messages[:50])  # warm up
    clear = min(per_message(ClearSealer(), messages) for _ in range(3))
    sealed = min(per_message(AesGcmSealer([parse_key(new_key_text(), "bench")]), messages)
                 for _ in range(3))
    size = sum(map(len, messages)) / count
    print(f"{count} messages of {size:.0f} bytes on average")
    print(f"encryption off: {clear * 1e6:.0f} µs per message")
    print(f"AES-256-GCM:    {sealed * 1e6:.0f} µs per message")
    print(f"sealing alone:  {(sealed - clear) * 1e6:.1f} µs per message")


if __name__ == "__main__":
    main()
