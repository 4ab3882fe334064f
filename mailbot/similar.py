"""The hook through which intake asks whether a new report repeats an open case.

Intake knows nothing of how similarity is measured. The app may hand it a ``SimilarReports``:
given a new report case's id and the report's text (its subject and body text, decrypted
when intake could decrypt it), it answers with open cases whose reports say nearly the same, best
first, and remembers the new case for the reports that follow. Intake then flags the new case
``possible-duplicate`` and records one ``possible-duplicate`` event per candidate; nothing is
merged: the team confirms with ``/duplicate``.

``mailbot.duplicates`` implements the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from mailbot.cases import service
from mailbot.cases.models import Case
from mailbot.cases.service import Actor
from mailbot.cases.vocabulary import POSSIBLE_DUPLICATE


@dataclass(frozen=True)
class Candidate:
    """An open case whose report is like the new one; ``similarity`` from 0 to 1."""

    case_id: str
    similarity: float


class SimilarReports(Protocol):
    """Finds open report cases like a new one, and remembers the new one."""

    @property
    def signer(self) -> Callable[[str, str], object]:
        """What ``similar`` works out from a report's subject and body alone, as a function of
        a module (picklable): intake's parse processes work it out ahead of time."""
        ...

    def similar(self, session: Session, case_id: str, subject: str, body: str,
                signed: tuple[object] | None = None) -> list[Candidate]:
        """Candidates for the new report case ``case_id``, best first (none: an empty list).
        Runs in intake's transaction, which ``session`` is; must not raise on any text.
        ``signed``: ``(signer(subject, body),)`` when worked out ahead."""
        ...


def note_possible_duplicates(
    session: Session, case: Case, subject: str, body: str, finder: SimilarReports,
    at: datetime, signed: tuple[object] | None = None,
) -> list[Candidate]:
    """Flag ``case`` and record an event for each open case its report is like."""
    found = finder.similar(session, case.id, subject, body, signed)
    if found:
        service.add_flags(case, POSSIBLE_DUPLICATE)
    for candidate in found:
        service.record(session, case, Actor("mailbot", "intake"), POSSIBLE_DUPLICATE,
                       {"case": candidate.case_id,
                        "similarity": round(candidate.similarity, 2)}, at)
    return found
