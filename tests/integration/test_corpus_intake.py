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
from mailbot.config import MailboxSettings, SmtpSettings
from mailbot.mail.parse import dedupe_key
from tests import factories
from tests.integration.test_header_properties import OWN, deliver
from tests.unit.test_corpus import FILES


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    url = None
    if request.param == "postgresql":
        pytest.importorskip("psycopg")
        url = request.getfixturevalue("pg_url")
    instance = factories.app(
        factories.settings(
            tmp_path,
            MailboxSettings(host="127.0.0.1", username=OWN),
            SmtpSettings(host="127.0.0.1", from_address=f"Example Security <{OWN}>"),
            database_url=url,
        )
    )
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
