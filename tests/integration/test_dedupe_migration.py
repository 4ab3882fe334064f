"""Migration 0003 recomputes the stored dedupe keys from the stored raw bytes, so that mail read
before the canonical key still recognises its copies from .eml files and mboxes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from mailbot.mail.parse import dedupe_key
from mailbot.store import CompressedRawStore, Database, _alembic_config, migrate

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
IMAP_COPY = (
    b"Return-Path: <rita@reporter.example>\r\n"
    b"From: Rita Reporter <rita@reporter.example>\r\n"
    b"To: security@example.test\r\n"
    b"Subject: XSS in the login form\r\n"
    b"Message-ID: <r1@reporter.example>\r\n"
    b"\r\n"
    b"The next parameter reflects.\r\n"
    b"From the login page.\r\n"
)
MBOX_COPY = IMAP_COPY.replace(b"\r\n", b"\n").replace(b"\nFrom the", b"\n>From the") + b"\n"
OTHER = IMAP_COPY.replace(b"reflects", b"redirects").replace(b"<r1@", b"<r2@")

_cases = sa.table(
    "cases", *(sa.column(c) for c in ("id", "status", "reporter", "reporter_name", "subject",
                                       "flags", "mentioned_tag", "received_at", "created_at",
                                       "updated_at", "cve")))
_messages = sa.table(
    "messages", *(sa.column(c) for c in ("id", "case_id", "direction", "kind", "dedupe_key",
                                          "message_id", "from_addr", "to_addrs", "subject",
                                          "received_at", "folder", "flags", "details",
                                          "raw_id")))


def _old_key(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()  # what an older mailbot stored: the bytes as they were


def _store_at_0002(db: Database, raws: list[bytes]) -> None:
    with db.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0002")
    with db.session() as s:
        for n, raw in enumerate(raws, 1):
            raw_id = CompressedRawStore().put(s, raw)
            naive = db.is_sqlite
            at = NOW.replace(tzinfo=None) if naive else NOW
            s.execute(_cases.insert().values(
                id=f"SEC-2026-{n:04d}", status="new", reporter="rita@reporter.example",
                reporter_name="", subject="x", flags="[]" if naive else [], mentioned_tag="",
                received_at=at, created_at=at, updated_at=at, cve="[]" if naive else []))
            s.execute(_messages.insert().values(
                id=n, case_id=f"SEC-2026-{n:04d}", direction="in", kind="report",
                dedupe_key=_old_key(raw), message_id="", from_addr="", to_addrs="[]",
                subject="", received_at=at, folder="INBOX", flags="[]", details="{}",
                raw_id=raw_id))


def _keys(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.scalars(sa.select(_messages.c.dedupe_key).order_by(_messages.c.id)))


def _check(db: Database) -> None:
    _store_at_0002(db, [IMAP_COPY, MBOX_COPY, OTHER])
    migrate(db)
    imap, mbox, other = _keys(db)
    # The first copy gets the canonical key, the same a new .eml or mbox copy will have; the
    # second copy (stored twice before) keeps its old key; another message is another.
    assert imap == dedupe_key(IMAP_COPY) == dedupe_key(MBOX_COPY)
    assert mbox == _old_key(MBOX_COPY)
    assert other == dedupe_key(OTHER) != imap
    db.dispose()


def test_stored_keys_are_recomputed_on_sqlite(tmp_path: Path) -> None:
    _check(Database(f"sqlite:///{tmp_path / 'm.db'}"))


def test_stored_keys_are_recomputed_on_postgresql(pg_url: str) -> None:
    pytest.importorskip("psycopg")
    _check(Database(pg_url))
