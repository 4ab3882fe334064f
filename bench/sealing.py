"""The cost of sealing per message, alone: ``python -m bench.sealing [N]``.

The whole cycle's figure is the backlog's (encryption on and off, ``python -m bench``); this one
isolates the cryptography.

For each of N generated reports, what intake seals: the raw bytes (compressed first, in either
mode), the case and message subjects, the message details, the receipt in the outbox and its
subject, and the keyed dedupe hash. Printed per message, AES-256-GCM against ``encryption = "off"``.
"""

from __future__ import annotations

import json
import sys
import time
import zlib

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


def main() -> None:
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
