"""``mailbot quarantine list|show|retry``: text out, the work in ``service``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from mailbot.quarantine import service

if TYPE_CHECKING:
    from mailbot.app import App

EXIT_OK, EXIT_FAILURE = 0, 1


def quarantine_command(app: App, action: str, entry_id: int | None, as_json: bool) -> int:
    if action == "list":
        entries = service.list_quarantined(app.db)
        if as_json:
            print(json.dumps([asdict(e) for e in entries], indent=2, default=str))
            return EXIT_OK
        if not entries:
            print("nothing quarantined")
        for e in entries:
            print(f"{e.id:<6} {e.folder} uid {e.uid:<8} {e.since:%Y-%m-%d %H:%M} "
                  f"{e.tries} tries  {_one_line(e.error)[:80]}")
        return EXIT_OK
    assert entry_id is not None
    if action == "show":
        detail = service.show(app.db, app.intake, entry_id)
        e = detail.entry
        if as_json:
            print(json.dumps({**asdict(e), "headers": dict(detail.headers)}, indent=2,
                             default=str))
            return EXIT_OK
        print(f"quarantined message {e.id}: {e.folder} uid {e.uid} (uidvalidity {e.uidvalidity})")
        print(f"  since    {e.since.isoformat()}")
        print(f"  tries    {e.tries}")
        print(f"  size     {e.size if e.size is not None else '-'} bytes")
        print(f"  error    {_one_line(e.error)}")
        for name, value in detail.headers:
            print(f"  {name + ':':<9}{value}")
        print(f"\nafter a fix: mailbot quarantine retry {e.id}")
        return EXIT_OK
    result = service.retry(app.db, app.intake, entry_id)
    if result.outcome == "failed":
        print(f"quarantined message {entry_id} failed again; it stays quarantined: "
              f"{_one_line(result.error)}")
        return EXIT_FAILURE
    what = {"opened": "opened as", "added": "added to",
            "duplicate": "was already on"}[result.outcome]
    print(f"quarantined message {entry_id} {what} {result.case_id}; it left the quarantine"
          + ("; the daemon sends its receipt" if result.outcome == "opened" else ""))
    return EXIT_OK


def _one_line(text: str) -> str:
    return " ".join(text.split())
