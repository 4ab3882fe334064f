"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

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
