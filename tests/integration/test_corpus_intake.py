"""The whole real-mail corpus goes through intake, into SQLite and PostgreSQL, without one failure.

Each message goes through ``pipeline.process`` (parse, classify, correlate, apply, receipt) and
is committed; every one must end up stored on a case. The corpus (in ``tests/data/corpus/``)
holds bounces, spam, MIME torture tests, forwarded and broken mail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbot.app import App
from mailbot.cases.models import Case, InboundFailure, Message
from mailbot.mail.parse import dedupe_key
from tests.integration.test_header_properties import app_on, deliver
from tests.unit.test_corpus import FILES


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    instance = app_on(request, tmp_path)
    yield instance
    instance.close()


def test_every_corpus_message_goes_through_intake_onto_a_case(app: App) -> None:
    for path in FILES:
        deliver(app, path.read_bytes())

    with app.db.session() as s:
        stored = s.scalar(select(func.count(Message.id)).where(Message.direction == "in"))
        orphans = s.scalar(
            select(func.count(Message.id)).where(~Message.case_id.in_(select(Case.id)))
        )
        assert s.scalar(select(func.count()).select_from(InboundFailure)) == 0
    # Copies of one message in the corpus are one message (the dedupe key), never two.
    assert stored == len({dedupe_key(path.read_bytes()) for path in FILES})
    assert orphans == 0
