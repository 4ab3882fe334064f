"""Which key is whose: the reporters' keys mailbot encrypts to, by address.

GnuPG's own lookup by user id is not used for this: a key can carry any user id, and a key
attached by one sender must never become the key mail to someone else is encrypted to. The
directory is a small JSON file in the GnuPG home (beside the keys it names), written whole and
replaced atomically. Keys imported by the operator (``keys import``) are pinned: a key arriving
by mail never replaces one.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "mailbot-reporters.json"
OPERATOR = "keys import"
_lock = threading.Lock()


@dataclass(frozen=True)
class Entry:
    address: str
    fingerprint: str
    source: str  # "attachment", "autocrypt", "keys import"
    at: str  # ISO-8601, when recorded

    @property
    def pinned(self) -> bool:
        return self.source == OPERATOR


class Directory:
    def __init__(self, home: str) -> None:
        self.path = Path(home) / FILE_NAME

    def all(self) -> dict[str, Entry]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        out = {}
        for address, item in data.items() if isinstance(data, dict) else ():
            if isinstance(item, dict) and isinstance(item.get("fingerprint"), str):
                out[address] = Entry(address, item["fingerprint"], str(item.get("source", "")),
                                     str(item.get("at", "")))
        return out

    def get(self, address: str) -> Entry | None:
        return self.all().get(address.lower())

    def put(self, entry: Entry) -> bool:
        """Record ``entry``; False when a pinned key for the address stands in its way."""
        with _lock:
            entries = self.all()
            current = entries.get(entry.address)
            if current is not None and current.pinned and not entry.pinned \
                    and current.fingerprint != entry.fingerprint:
                return False
            entries[entry.address] = entry
            data = {a: {"fingerprint": e.fingerprint, "source": e.source, "at": e.at}
                    for a, e in sorted(entries.items())}
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".reporters-")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
            os.replace(tmp, self.path)
            return True
