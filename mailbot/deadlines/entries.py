"""The values the deadline watch hands to the mail it writes (kept apart, so that composing a
reminder or a digest never imports the watch itself)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailbot.cases.models import Case


@dataclass(frozen=True)
class Deadline:
    """The promise a case is running: ``ack``, ``assessment`` or ``resolution``, and when."""

    name: str
    due: datetime



@dataclass(frozen=True)
class DigestEntry:
    """One open case in the digest, with the deadline it is running (if any) and its stage."""

    case: Case
    deadline: Deadline | None
    stage: str | None


@dataclass(frozen=True)
class PossibleDuplicate:
    """An open case whose report read like another case's when it arrived (``similarity``
    from 0 to 1): listed in the digest for the team to confirm with ``/duplicate`` or not."""

    case_id: str
    other_id: str
    similarity: float
