"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mailbot.cases.models import Base
from mailbot.store import Database, latest_schema_version, migrate, schema_version


def assert_schema_matches_models(db: Database) -> None:
    assert migrate(db) == latest_schema_version()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert migrate(db) == schema_version(db)  # a second migrate is a no-op
    db.dispose()


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    assert_schema_matches_models(Database(f"sqlite:///{tmp_path / 'm.db'}"))


def test_migrations_match_the_models_on_postgresql(pg_url: str) -> None:
    pytest.importorskip("psycopg")
    assert_schema_matches_models(Database(pg_url))


def tag_clear_values_of_0007(db: Database) -> None:
    """0007 keeps each credit, event detail and source and failure text, tagged as clear (0x00
    in front), keeps an absent credit absent, and marks the database for sealing."""
    import json

    from alembic import command
    from sqlalchemy import text

    from mailbot.store import _alembic_config

    with db.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0006")
    detail = {"consent": "named", "name": "Jane Doe, Ex Labs"}
    with db.engine.begin() as conn:
        for case_id, credit in (("SEC-2026-0001", "Jane Doe, Ex Labs"), ("SEC-2026-0002", None)):
            conn.execute(text(
                "INSERT INTO cases (id, status, reporter, reporter_name, subject, flags,"
                " mentioned_tag, received_at, created_at, updated_at, cve, reminder_rank, credit)"
                " VALUES (:id, 'new', '', '', :s, '[]', '', '2026-11-23 09:00:00',"
                " '2026-11-23 09:00:00', '2026-11-23 09:00:00', '[]', 0, :c)"),
                {"id": case_id, "s": b"\x00subject", "c": credit})
        conn.execute(text(
            "INSERT INTO events (case_id, at, actor, action, detail, source) VALUES"
            " ('SEC-2026-0001', '2026-11-23 09:00:00', 'cli:root', 'credit', :d, :src)"),
            {"d": json.dumps(detail), "src": "cli:cases credit SEC-2026-0001 Jane Doe, Ex Labs"})
        conn.execute(text(
            "INSERT INTO inbound_failures (folder, uidvalidity, uid, attempts, last_error,"
            " quarantined, updated_at) VALUES ('INBOX', 1, 7, 1, 'ValueError: ö', :q,"
            " '2026-11-23 09:00:00')"), {"q": False})
    assert migrate(db) == "0008"  # the head
    with db.engine.connect() as conn:
        credits: dict[str, Any] = {
            row[0]: row[1] for row in conn.execute(text("SELECT id, credit FROM cases"))}
        [(stored_detail, source)] = conn.execute(text("SELECT detail, source FROM events")).all()
        [(error,)] = conn.execute(text("SELECT last_error FROM inbound_failures")).all()
        marked = conn.execute(text("SELECT value FROM meta WHERE key = 'storage.unsealed'")).all()
    assert bytes(credits["SEC-2026-0001"]) == b"\x00Jane Doe, Ex Labs"
    assert credits["SEC-2026-0002"] is None
    assert bytes(stored_detail)[:1] == b"\x00" and json.loads(bytes(stored_detail)[1:]) == detail
    assert bytes(source) == b"\x00cli:cases credit SEC-2026-0001 Jane Doe, Ex Labs"
    assert bytes(error) == "\x00ValueError: ö".encode()
    assert marked == [("1",)]
    db.dispose()


def test_0007_tags_the_credit_events_and_failures_as_clear_on_sqlite(tmp_path: Path) -> None:
    tag_clear_values_of_0007(Database(f"sqlite:///{tmp_path / 'm.db'}"))


def test_0007_tags_the_credit_events_and_failures_as_clear_on_postgresql(pg_url: str) -> None:
    tag_clear_values_of_0007(Database(pg_url))


def test_the_per_sender_receipt_count_reads_that_senders_rows_only(tmp_path: Path) -> None:
    """Counted for every receipt: through the day's receipts of everyone it slowed a backlog
    with every receipt queued. SQLite without statistics, as a new database is."""
    from mailbot.outbox import _RECEIPTS_TO

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(db)
    with db.engine.connect() as conn:
        compiled = _RECEIPTS_TO.compile(conn, compile_kwargs={"render_postcompile": True})
        plan = conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}",
            tuple(compiled.construct_params(
                {"key": "rita@reporter.example", "since": datetime(2026, 12, 1)}).values()),
        ).all()
    db.dispose()
    assert "ix_outbox_recipient_kind_created (first_recipient=?" in " ".join(
        str(step[-1]) for step in plan)
