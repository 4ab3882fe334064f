"""The throwaway PostgreSQL cluster answers, and each test gets a database of its own."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

pytestmark = pytest.mark.servers


def test_select_one_through_sqlalchemy(pg_url: str) -> None:
    engine = create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            version = conn.execute(text("SHOW server_version_num")).scalar()
            address = conn.execute(text("SELECT host(inet_server_addr())")).scalar()
    finally:
        engine.dispose()

    assert int(str(version)) >= 150000
    assert address == "127.0.0.1"


def test_each_test_starts_with_an_empty_database(pg_url: str) -> None:
    engine = create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
            ).scalar()
            conn.execute(text("CREATE TABLE leftover (id int)"))
    finally:
        engine.dispose()

    assert tables == 0
